"""The S3 tier: read manifests and aliases, and fetch a version's chunks in parallel.

Each chunk is one whole-object GET of `<prefix>/blobs/sha256/<hex>`, checked against its
hash, retried alone, and written at its offset into `<path>.part`; the file is renamed
to its name only when every one of its chunks has been verified and the whole file matches
the manifest's own SHA-256 too. The whole-file hash is fed in order as the file's leading
chunks arrive (re-read from the page cache), so it runs alongside the downloads instead of
after them; it catches a manifest whose file hash disagrees with its chunks, which would
otherwise be served and then fail every later check on disk.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.cache.engine import Engine, Missing
from preheat.cache.engine_botocore import classify
from preheat.cache.retry import GaveUp, Retryable, with_retries
from preheat.exceptions import (
    ArtifactNotFound,
    FetchError,
    IntegrityError,
    ManifestError,
)
from preheat.uri import ModelURI, check_name

log = logging.getLogger("preheat")

PART_SUFFIX = ".part"
# The botocore engine's names, kept here for callers that map errors themselves.
_Missing = Missing
_classify = classify


def blob_key(prefix: str, sha256: str) -> str:
    return "/".join(p for p in (prefix, "blobs", "sha256", sha256) if p)


class StallWatch:
    """When a fetch last made progress; a retry that would end past the stall limit is not made.

    Retries help against a failure here and there while chunks keep arriving; when nothing
    has arrived for FETCH_STALL_LIMIT_S, S3 is down or stalled, and failing now (with a
    message) beats being cut off by Lambda's INIT limit (without one).
    """

    def __init__(
        self,
        attempt_s: float,
        limit_s: float = c.FETCH_STALL_LIMIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._attempt_s = attempt_s
        self._limit_s = limit_s
        self._clock = clock
        self._last = clock()

    def progress(self) -> None:
        self._last = self._clock()

    def give_up(self, delay: float) -> str | None:
        idle = self._clock() - self._last
        if idle + delay + self._attempt_s > self._limit_s:
            return (
                f"no progress for {idle:.1f} s, and a retry could take {self._attempt_s:g} s more"
            )
        return None


def read_small(
    engine: Engine,
    bucket: str,
    key: str,
    retries: int,
    what: str,
    attempt_s: float = c.DEFAULT_FETCH_TIMEOUT_S,
) -> bytes:
    """A small object (manifest, alias) with retries; ArtifactNotFound or FetchError."""
    uri = f"s3://{bucket}/{key}"
    watch = StallWatch(attempt_s)
    try:
        return bytes(with_retries(lambda: engine.get(bucket, key), retries, give_up=watch.give_up))
    except _Missing:
        raise ArtifactNotFound(what, f"{uri} does not exist") from None
    except GaveUp as exc:
        raise FetchError(uri, exc.cause, exc.attempts) from None
    except Exception as exc:
        raise FetchError(uri, f"{type(exc).__name__}: {exc}", 1) from exc


def read_manifest(
    engine: Engine, uri: ModelURI, retries: int, attempt_s: float = c.DEFAULT_FETCH_TIMEOUT_S
) -> mf.Manifest:
    assert uri.bucket is not None
    data = read_small(engine, uri.bucket, uri.manifest_key, retries, str(uri), attempt_s)
    manifest = mf.loads(data)
    if manifest.name != uri.name or manifest.version != uri.version:
        raise ManifestError(
            f"manifest at {uri} says {manifest.name}/{manifest.version}; "
            "push the version again with `preheat push`"
        )
    return manifest


def read_alias(
    engine: Engine, uri: ModelURI, retries: int, attempt_s: float = c.DEFAULT_FETCH_TIMEOUT_S
) -> str:
    assert uri.bucket is not None
    data = read_small(engine, uri.bucket, uri.alias_key, retries, str(uri), attempt_s)
    return check_name("model version", data.decode("utf-8", "replace").strip())


# ---------------------------------------------------------------------------- chunks


@dataclass
class _FileJob:
    entry: mf.FileEntry
    target: Path
    part: Path
    fd: int
    offsets: tuple[int, ...]
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    # Chunk indexes written to the part file, the next one the hasher needs, and whether
    # a thread is feeding the hasher now (only one may: the hash is order-dependent).
    written: set[int] = field(default_factory=set)
    next_index: int = 0
    hashing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _open_part(entry: mf.FileEntry, root: Path) -> _FileJob:
    target = root / entry.path
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    # Read-write: the whole-file hash re-reads chunks that arrived out of order.
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    offsets, pos = [], 0
    for ch in entry.chunks:
        offsets.append(pos)
        pos += ch.size
    return _FileJob(entry, target, part, fd, tuple(offsets))


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of `data` at `offset`. pwrite may write less than asked (a file system
    filling up does); the rest is written again, so a full disk ends in ENOSPC, never in a
    file with a hole that its chunk hashes, checked in memory, would not see."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written == 0:  # pragma: no cover - Linux raises ENOSPC instead
            raise OSError(errno.ENOSPC, "no space left on device")
        view = view[written:]
        offset += written


def _advance_hash(job: _FileJob, index: int, data: bytes | memoryview) -> bool:
    """Record chunk `index` as written and feed the hasher what is now contiguous.

    Returns True for exactly one caller: the one that hashed the file's last chunk.
    """
    with job.lock:
        job.written.add(index)
        if job.hashing:
            return False  # the thread hashing now will reach this chunk
        job.hashing = True
    while True:
        with job.lock:
            i = job.next_index
            if i not in job.written:
                job.hashing = False
                return False
        size = job.entry.chunks[i].size
        block = data if i == index else os.pread(job.fd, size, job.offsets[i])
        job.hasher.update(block)
        with job.lock:
            job.next_index += 1
            if job.next_index == len(job.entry.chunks):
                job.hashing = False
                return True


def _finish(job: _FileJob) -> None:
    """Every chunk is verified and the whole file matches: it may take its name."""
    actual = job.hasher.hexdigest() if job.entry.chunks else hashlib.sha256().hexdigest()
    if actual != job.entry.sha256:
        raise IntegrityError(
            f"{job.entry.path} (whole file)",
            job.entry.sha256,
            actual,
            "its chunks verify but the manifest's file hash disagrees; push the version again",
        )
    os.close(job.fd)
    job.fd = -1
    os.replace(job.part, job.target)


def fetch_files(
    engine: Engine,
    *,
    bucket: str,
    prefix: str,
    files: Iterable[mf.FileEntry],
    dest: Path,
    concurrency: int,
    retries: int,
    attempt_s: float = c.DEFAULT_FETCH_TIMEOUT_S,
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Fetch `files` into `dest` (each renamed into place once verified); bytes fetched.

    `attempt_s` is what one request may take at worst (the read timeout): a chunk is not
    retried if that would run past the stall limit (see StallWatch).
    """
    jobs: list[_FileJob] = []
    watch = StallWatch(attempt_s)
    stop = threading.Event()
    counted = 0
    count_lock = threading.Lock()

    def fetch_chunk(job: _FileJob, index: int) -> None:
        nonlocal counted
        if stop.is_set():
            return
        chunk = job.entry.chunks[index]
        key = blob_key(prefix, chunk.sha256)
        mismatch: list[str] = []

        def attempt() -> memoryview:
            # The engine's own buffer, never copied: hashlib and pwrite release the lock.
            data = engine.get(bucket, key)
            actual = hashlib.sha256(data).hexdigest()
            if actual != chunk.sha256 or data.nbytes != chunk.size:
                mismatch.append(actual)
                raise Retryable(f"sha256 mismatch ({data.nbytes} bytes)")
            mismatch.clear()
            watch.progress()
            return data

        what = f"{job.entry.path} chunk {index + 1}/{len(job.entry.chunks)} (s3://{bucket}/{key})"
        try:
            data = with_retries(attempt, retries, give_up=watch.give_up)
        except _Missing:
            raise ArtifactNotFound(
                f"s3://{bucket}/{key}",
                f"chunk {index + 1} of {job.entry.path} is missing; push the version again",
            ) from None
        except GaveUp as exc:
            if mismatch:
                raise IntegrityError(
                    what, chunk.sha256, mismatch[-1], f"after {exc.attempts} attempts"
                ) from None
            raise FetchError(what, exc.cause, exc.attempts) from None
        except Exception as exc:
            raise FetchError(what, f"{type(exc).__name__}: {exc}", 1) from exc
        # ENOSPC propagates as OSError; the caller knows the budget and says so.
        _pwrite_all(job.fd, data, job.offsets[index])
        with count_lock:
            counted += data.nbytes
        if on_bytes is not None:
            on_bytes(data.nbytes)
        if _advance_hash(job, index, data):
            _finish(job)

    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="preheat-fetch") as ex:
            futures: list[Future[None]] = []
            for entry in files:
                if entry.size and not entry.chunks:
                    raise ManifestError(
                        f"manifest: {entry.path} lists no chunks; push the version again"
                    )
                job = _open_part(entry, dest)
                jobs.append(job)
                if not entry.chunks:
                    _finish(job)  # an empty file: nothing to fetch
                    continue
                futures.extend(ex.submit(fetch_chunk, job, i) for i in range(len(entry.chunks)))
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                stop.set()
                for f in futures:
                    f.cancel()
                exc = failed.exception()
                assert exc is not None
                raise exc
    finally:
        for job in jobs:
            if job.fd >= 0:
                os.close(job.fd)
                job.fd = -1
    return counted
