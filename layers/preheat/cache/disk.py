"""The disk tier: verified versions under cache_dir, evicted least-recently-used within a budget.

Layout under cache_dir:
  versions/<key>/          a complete, verified artifact; it appears by one rename
  meta/<key>.json          what was verified: size, mtime and inode of every file;
                           the file's own mtime records the version's last use
  locks/<key>.lock         held by the one process downloading or repairing the version
  locks/<key>.hold         a shared flock held by every process using the version for as
                           long as it lives; eviction needs it exclusively, so never evicts
                           a version in use
  locks/cache.lock         serialises budget accounting, eviction and commits
  tmp/<key>~<pid>~<n>/     a version being written; `.reserve` beside it holds its bytes

The cheap check on a hit: every file's size, mtime and inode must equal what was recorded
right after its hash was verified. Writing into a file changes its mtime and replacing it
changes its inode, so either is caught and only that file is hashed again; a file whose
hash no longer matches is fetched again. Bytes flipped with the mtime forged back are not
caught by this check (`verify_dir` is the full check, at the cost of reading every byte).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.exceptions import CacheFullError, ConfigurationError, FetchError, ManifestError
from preheat.uri import ModelURI

log = logging.getLogger("preheat")

# A download of a few hundred MB takes seconds; a lock held this long means a stuck process.
LOCK_TIMEOUT_S = 900.0

_held_lock = threading.Lock()
_held: dict[tuple[str, str], int] = {}  # (cache root, key) -> fd holding the shared flock
_counter = itertools.count()


def version_key(uri: ModelURI) -> str:
    """A directory name for a version: readable, and distinct per bucket and prefix.

    '@' and '~' never occur in names or versions (see uri.check_name), so they separate.
    """
    assert uri.name is not None and uri.version is not None
    where = hashlib.sha256(f"{uri.bucket}/{uri.prefix}".encode()).hexdigest()[:12]
    return f"{uri.name}@{uri.version}@{where}"


def source_of(uri: ModelURI) -> str:
    return f"s3://{uri.bucket}/{uri.prefix}"


@dataclass(frozen=True)
class Hit:
    """A version found on disk; `bad` lists files that failed the check and need fetching."""

    key: str
    directory: Path
    manifest: mf.Manifest
    bad: tuple[mf.FileEntry, ...]


@dataclass(frozen=True)
class Entry:
    key: str
    name: str
    version: str
    source: str
    bytes: int
    last_use: float


def _stat_record(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _no_link(path: Path) -> Path:
    """`path`, with a symlink planted there removed: opening a lock file truncates its target."""
    if path.is_symlink():
        path.unlink()
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class DiskCache:
    """One cache directory, shared safely by every process and thread that opens it."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock
        try:
            for sub in ("versions", "meta", "locks", "tmp", "trash"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                c.ENV_CACHE_DIR, str(root), f"use a writable directory ({exc.strerror})"
            ) from None
        for sub in ("versions", "meta", "locks", "tmp", "trash"):
            # A planted link would send every write (and the served model) outside the cache.
            if (root / sub).is_symlink():
                raise ConfigurationError(
                    c.ENV_CACHE_DIR,
                    str(root),
                    f"{sub}/ inside it is a symlink; remove it or use another directory",
                )

    # ------------------------------------------------------------------ paths

    def directory(self, key: str) -> Path:
        return self.root / "versions" / key

    def _meta(self, key: str) -> Path:
        return self.root / "meta" / f"{key}.json"

    def _lockfile(self, key: str, kind: str) -> Path:
        return _no_link(self.root / "locks" / f"{key}.{kind}")

    # ------------------------------------------------------------------ holding

    def hold(self, key: str) -> None:
        """Protect `key` from eviction for the rest of this process's life."""
        ident = (str(self.root), key)
        with _held_lock:
            if ident in _held:
                return
            fd = os.open(self._lockfile(key, "hold"), os.O_RDWR | os.O_CREAT, 0o644)
            # Blocks only while an evictor is removing this very version.
            fcntl.flock(fd, fcntl.LOCK_SH)
            _held[ident] = fd

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[None]:
        """The per-version lock: one process downloads or repairs, the others wait."""
        lock = FileLock(self._lockfile(key, "lock"), timeout=LOCK_TIMEOUT_S)
        try:
            lock.acquire()
        except Timeout:
            raise FetchError(
                f"{key} in {self.root}",
                f"another process has held its download lock for {LOCK_TIMEOUT_S:.0f} s",
                1,
            ) from None
        try:
            # Temp dirs for this key are leftovers of a process that died: we hold the lock.
            for stale in (self.root / "tmp").glob(f"{key}~*"):
                self._remove(stale)
            yield
        finally:
            lock.release()

    # ------------------------------------------------------------------ reading

    def lookup(self, key: str) -> Hit | None:
        """The version if it is on disk, with the files failing the cheap check in `bad`."""
        directory = self.directory(key)
        if directory.is_symlink():
            # Only a directory this cache wrote is served, never one a link points at.
            log.warning("discarding %s from the disk cache: it is a symlink", key)
            with contextlib.suppress(FileNotFoundError):
                directory.unlink()
            return None
        if not (directory / c.MANIFEST_NAME).is_file():
            return None
        try:
            manifest = mf.read(directory)
        except ManifestError as exc:
            log.warning("discarding %s from the disk cache: %s", key, exc)
            self._discard(key)
            return None
        meta = self._read_meta(key)
        recorded: dict[str, Any] = meta.get("files", {}) if meta else {}
        bad: list[mf.FileEntry] = []
        changed = False
        for entry in manifest.files:
            path = directory / entry.path
            try:
                now = _stat_record(path)
            except FileNotFoundError:
                bad.append(entry)
                continue
            if now[0] == entry.size and recorded.get(entry.path) == now:
                continue
            # Unknown or changed since verified: hash it once more.
            sha = (
                mf.hash_file(path, manifest.chunk_size)[0]
                if now[0] == entry.size and not path.is_symlink()
                else ""
            )
            if sha == entry.sha256:
                recorded[entry.path] = now
                changed = True
            else:
                bad.append(entry)
        if changed or meta is None:
            self._write_meta(key, manifest, recorded)
        return Hit(key, directory, manifest, tuple(bad))

    def touch(self, key: str) -> None:
        """Record a use now (the LRU order)."""
        now = self._clock()
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._meta(key), (now, now))

    def entries(self) -> list[Entry]:
        """Every complete version on disk, least recently used first."""
        out: list[Entry] = []
        for meta_path in (self.root / "meta").glob("*.json"):
            key = meta_path.name[: -len(".json")]
            if not (self.directory(key) / c.MANIFEST_NAME).is_file():
                continue
            try:
                meta = orjson.loads(meta_path.read_bytes())
                last_use = meta_path.stat().st_mtime
            except (OSError, orjson.JSONDecodeError):
                continue
            out.append(
                Entry(
                    key,
                    str(meta.get("name", "")),
                    str(meta.get("version", "")),
                    str(meta.get("source", "")),
                    int(meta.get("bytes", 0)),
                    last_use,
                )
            )
        return sorted(out, key=lambda e: e.last_use)

    def _read_meta(self, key: str) -> dict[str, Any] | None:
        try:
            meta = orjson.loads(self._meta(key).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return meta if isinstance(meta, dict) else None

    def _write_meta(
        self, key: str, manifest: mf.Manifest, files: dict[str, Any], source: str = ""
    ) -> None:
        old = self._read_meta(key) or {}
        meta = {
            "name": manifest.name,
            "version": manifest.version,
            "source": source or old.get("source", ""),
            "bytes": manifest.total_bytes,
            "files": files,
        }
        _write_atomic(self._meta(key), orjson.dumps(meta))

    # ------------------------------------------------------------------ writing

    def new_tmp(self, key: str, reserve: int = 0) -> Path:
        name = f"{key}~{os.getpid()}~{next(_counter)}"
        tmp = self.root / "tmp" / name
        tmp.mkdir()
        if reserve:
            (self.root / "tmp" / f"{name}.reserve").write_text(str(reserve))
        return tmp

    def commit(self, tmp: Path, key: str, manifest: mf.Manifest, source: str) -> Path:
        """Make a fully written and verified temp dir the version `key`, in one rename."""
        manifest.write(tmp)
        files = {f.path: _stat_record(tmp / f.path) for f in manifest.files}
        target = self.directory(key)
        with self._global():
            if target.exists():
                self._to_trash(target)
            self._write_meta(key, manifest, files, source)
            os.rename(tmp, target)
            # In the same hold of the global lock: from the rename on, the version's bytes
            # count as an entry, and a reserve() in between would count them twice.
            self._remove(tmp.with_name(tmp.name + ".reserve"))
        return target

    def replace_files(self, key: str, tmp: Path, manifest: mf.Manifest, paths: list[str]) -> None:
        """Swap repaired files into a live version, each by one rename."""
        directory = self.directory(key)
        meta = self._read_meta(key) or {}
        files: dict[str, Any] = dict(meta.get("files", {}))
        for rel in paths:
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, directory / rel)
            files[rel] = _stat_record(directory / rel)
        self._write_meta(key, manifest, files)
        self._remove(tmp)

    def discard_tmp(self, tmp: Path) -> None:
        self._remove(tmp)
        self._remove(tmp.with_name(tmp.name + ".reserve"))

    # ------------------------------------------------------------------ budget

    def reserve(self, key: str, needed: int, max_bytes: int | None, free_budget: int) -> Path:
        """Make room for `needed` bytes (evicting LRU versions no one holds); a temp dir.

        `max_bytes` None means the budget is what the cache holds now plus `free_budget`.
        """
        with self._global():
            self._clean_tmp()
            entries = self.entries()
            reserved = self._reserved()
            usage = sum(e.bytes for e in entries) + reserved
            budget = max_bytes if max_bytes is not None else usage + free_budget
            for entry in entries:  # least recently used first
                if usage + needed <= budget:
                    break
                if entry.key != key and self._evict(entry.key):
                    usage -= entry.bytes
            if usage + needed > budget:
                raise CacheFullError(
                    str(self.root),
                    needed,
                    max(0, budget - usage),
                    f"raise {c.ENV_CACHE_MAX_BYTES} or the function's ephemeral storage, "
                    "or ship a smaller artifact (`preheat slim`)",
                )
            return self.new_tmp(key, reserve=needed)

    def _reserved(self) -> int:
        total = 0
        for r in (self.root / "tmp").glob("*.reserve"):
            with contextlib.suppress(OSError, ValueError):
                total += int(r.read_text())
        return total

    def _clean_tmp(self) -> None:
        """Drop temp dirs whose writer is gone (its per-version lock is free), and
        reservations left without their temp dir. Called with the global lock held."""
        for tmp in (self.root / "tmp").iterdir():
            if tmp.name.endswith(".reserve"):
                # A reservation is made after its dir, under the global lock (new_tmp in
                # reserve), so one without a dir is a leftover: its writer was killed after
                # its dir was committed or removed, and its bytes are counted as a version
                # or free. Kept, it would hold budget that no one uses, for good.
                if not tmp.with_name(tmp.name.removesuffix(".reserve")).exists():
                    tmp.unlink(missing_ok=True)
                continue
            if "~" not in tmp.name:
                continue
            key = tmp.name.split("~", 1)[0]
            lock = FileLock(self._lockfile(key, "lock"), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue  # a live writer
            try:
                self.discard_tmp(tmp)
            finally:
                lock.release()

    def _evict(self, key: str) -> bool:
        fd = os.open(self._lockfile(key, "hold"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # some process is using it
            target = self.directory(key)
            if target.exists():
                self._to_trash(target)
            self._meta(key).unlink(missing_ok=True)
        finally:
            os.close(fd)
        log.info("evicted %s from the disk cache", key)
        self._empty_trash()
        return True

    def _discard(self, key: str) -> None:
        with self._global():
            target = self.directory(key)
            if target.exists():
                self._to_trash(target)
            self._meta(key).unlink(missing_ok=True)
        self._empty_trash()

    # ------------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def _global(self) -> Iterator[None]:
        with FileLock(_no_link(self.root / "locks" / "cache.lock"), timeout=LOCK_TIMEOUT_S):
            yield

    def _to_trash(self, path: Path) -> None:
        os.rename(path, self.root / "trash" / f"{path.name}~{os.getpid()}~{next(_counter)}")

    def _empty_trash(self) -> None:
        for p in (self.root / "trash").iterdir():
            self._remove(p)

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
