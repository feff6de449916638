"""The S3 tier: read manifests and aliases, and fetch a version's chunks in parallel.

Each chunk is one whole-object GET of `<prefix>/blobs/sha256/<hex>`, retried alone, and
written at its offset into `<path>.part`; the file is renamed to its name only when its
bytes match the manifest's SHA-256 of the whole file. That hash is fed in order as the
file's leading chunks arrive (re-read from the page cache), so it runs alongside the
downloads, and it is the one pass over the bytes in the common case: on one vCPU a second
pass (each chunk's own hash) would come out of the runtime import the fetch overlaps. When
the file's hash disagrees, each chunk is checked against its own hash, and the ones that
fail are fetched again alone, verified, with backoff, before the file is hashed again; a
file whose chunks all verify while its hash disagrees has a manifest that lies, which would
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


def _preallocate(fd: int, size: int) -> None:
    """Reserve the file's blocks before its chunks arrive.

    Writes into reserved blocks cost the file system far less CPU than writes that must
    find blocks as they go (several times less on ext4, measured), CPU that would come out
    of the import the fetch overlaps; and a disk too small fails here, before any byte is
    fetched. A file system that cannot reserve (EOPNOTSUPP) is written as before.
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return
        os.close(fd)
        raise


def _open_part(entry: mf.FileEntry, root: Path) -> _FileJob:
    target = root / entry.path
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    # Read-write: the whole-file hash re-reads chunks that arrived out of order.
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if entry.size:
        _preallocate(fd, entry.size)
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


def _file_digest(job: _FileJob) -> str:
    """The SHA-256 of what the part file holds now, read back chunk by chunk."""
    hasher = hashlib.sha256()
    for ch, offset in zip(job.entry.chunks, job.offsets, strict=True):
        hasher.update(os.pread(job.fd, ch.size, offset))
    return hasher.hexdigest()


def _bad_chunks(job: _FileJob) -> list[tuple[int, str]]:
    """The chunks of the part file whose bytes do not match their hash, with their hash."""
    bad = []
    for i, (ch, offset) in enumerate(zip(job.entry.chunks, job.offsets, strict=True)):
        actual = hashlib.sha256(os.pread(job.fd, ch.size, offset)).hexdigest()
        if actual != ch.sha256:
            bad.append((i, actual))
    return bad


def _lying_manifest(job: _FileJob, actual: str) -> IntegrityError:
    return IntegrityError(
        f"{job.entry.path} (whole file)",
        job.entry.sha256,
        actual,
        "its chunks verify but the manifest's file hash disagrees; push the version again",
    )


def _place(job: _FileJob) -> None:
    """Every byte is verified: the file may take its name."""
    os.close(job.fd)
    job.fd = -1
    os.replace(job.part, job.target)


def _finish(job: _FileJob) -> None:
    """An empty file, or one whose whole hash matches: it may take its name."""
    actual = job.hasher.hexdigest() if job.entry.chunks else hashlib.sha256().hexdigest()
    if actual != job.entry.sha256:
        raise _lying_manifest(job, actual)
    _place(job)


def _chunk_what(job: _FileJob, index: int, bucket: str, key: str) -> str:
    return f"{job.entry.path} chunk {index + 1}/{len(job.entry.chunks)} (s3://{bucket}/{key})"


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

    def get_chunk(job: _FileJob, index: int, retries: int, verify: bool, spent: int) -> memoryview:
        """One chunk's bytes, retried alone with backoff; `spent` attempts were made before.

        Without `verify` only its size is checked here: its bytes are checked by the file's
        hash, in the one pass that needs them anyway (see `finish`).
        """
        chunk = job.entry.chunks[index]
        key = blob_key(prefix, chunk.sha256)
        mismatch: list[str] = []

        def attempt() -> memoryview:
            # The engine's own buffer, never copied: hashlib and pwrite release the lock.
            data = engine.get(bucket, key)
            if data.nbytes != chunk.size or (
                verify and hashlib.sha256(data).hexdigest() != chunk.sha256
            ):
                mismatch.append(hashlib.sha256(data).hexdigest())
                raise Retryable(f"sha256 mismatch ({data.nbytes} bytes)")
            mismatch.clear()
            watch.progress()
            return data

        what = _chunk_what(job, index, bucket, key)
        try:
            return with_retries(attempt, retries, give_up=watch.give_up)
        except _Missing:
            raise ArtifactNotFound(
                f"s3://{bucket}/{key}",
                f"chunk {index + 1} of {job.entry.path} is missing; push the version again",
            ) from None
        except GaveUp as exc:
            attempts = spent + exc.attempts
            if mismatch:
                raise IntegrityError(
                    what, chunk.sha256, mismatch[-1], f"after {attempts} attempts"
                ) from None
            raise FetchError(what, exc.cause, attempts) from None
        except Exception as exc:
            raise FetchError(what, f"{type(exc).__name__}: {exc}", spent + 1) from exc

    def write(job: _FileJob, index: int, data: memoryview) -> None:
        nonlocal counted
        # ENOSPC propagates as OSError; the caller knows the budget and says so.
        _pwrite_all(job.fd, data, job.offsets[index])
        with count_lock:
            counted += data.nbytes
        if on_bytes is not None:
            on_bytes(data.nbytes)

    def finish(job: _FileJob) -> None:
        """Place a file whose whole hash matches; otherwise find the chunks that do not
        match theirs and fetch each again alone, verified, before hashing the file again.

        One SHA-256 pass over the bytes in the common case (a second pass costs the
        function's one vCPU as much as the import it overlaps); the chunk-by-chunk check
        runs only when the file's hash says something is wrong.
        """
        actual = job.hasher.hexdigest()
        if actual == job.entry.sha256:
            _place(job)
            return
        bad = _bad_chunks(job)
        if not bad:
            raise _lying_manifest(job, actual)
        for index, got in bad:
            if stop.is_set():
                return
            if retries == 0:
                chunk = job.entry.chunks[index]
                what = _chunk_what(job, index, bucket, blob_key(prefix, chunk.sha256))
                raise IntegrityError(what, chunk.sha256, got, "after 1 attempts")
            write(job, index, get_chunk(job, index, retries - 1, verify=True, spent=1))
        actual = _file_digest(job)
        if actual != job.entry.sha256:
            raise _lying_manifest(job, actual)
        _place(job)

    def fetch_chunk(job: _FileJob, index: int) -> None:
        if stop.is_set():
            return
        data = get_chunk(job, index, retries, verify=False, spent=0)
        write(job, index, data)
        if _advance_hash(job, index, data):
            finish(job)

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
