"""Find a model's verified artifact directory in the fastest tier that has it.

Order: a local-directory URI, then the read-only local paths, then the disk tier, then
S3 (which fills the disk tier). A version found complete on disk costs no S3 call.
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from preheat import constants as c
from preheat.artifact.manifest import FileEntry, Manifest
from preheat.cache import local
from preheat.cache import s3 as s3tier
from preheat.cache.client import as_engine, default_client
from preheat.cache.cputime import CpuMeter
from preheat.cache.disk import DiskCache, Hit, source_of, version_key
from preheat.cache.engine import Engine
from preheat.exceptions import CacheFullError, FetchError
from preheat.settings import Settings
from preheat.uri import ModelURI, model_uri, parse

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("preheat")

TIERS = ("local", "disk", "s3")


@dataclass(frozen=True)
class Resolved:
    """A verified artifact directory and where its bytes came from."""

    directory: Path
    manifest: Manifest
    tier: str  # "local" | "disk" | "s3": the slowest tier that served any byte
    version_uri: str
    bytes_by_tier: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stale: bool = False
    # CPU seconds the resolve cost this process beside its main thread (see cputime.py).
    cpu_seconds: float | None = None


def resolve(
    uri: str,
    settings: Settings,
    *,
    s3_client: Engine | S3Client | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Resolved:
    """Return a verified local directory for `uri` (see the module docstring for the order).

    `s3_client` is a fetch engine, or a boto3 S3 client to fetch through; by default the
    process's own engine (see client.py).
    """
    start = clock()
    meter = CpuMeter()
    parsed = parse(uri)

    def done(
        directory: Path,
        manifest: Manifest,
        tier: str,
        version_uri: str,
        by_tier: dict[str, int],
        stale: bool = False,
    ) -> Resolved:
        res = Resolved(
            directory,
            manifest,
            tier,
            version_uri,
            by_tier,
            clock() - start,
            stale,
            meter.seconds(),
        )
        log.info(
            "model %s from %s tier: %s in %.3f s%s",
            version_uri,
            tier,
            ", ".join(f"{t} {n} B" for t, n in by_tier.items() if n) or "0 B",
            res.seconds,
            " (stale: S3 failed)" if stale else "",
        )
        return res

    if parsed.local_dir is not None:
        directory = parsed.local_dir.resolve()
        manifest = local.open_dir(directory)
        return done(directory, manifest, "local", str(directory), {"local": manifest.total_bytes})

    assert parsed.bucket is not None and parsed.name is not None
    bucket, name = parsed.bucket, parsed.name
    client = as_engine(s3_client) if s3_client is not None else None
    if parsed.alias is not None:
        client = client or default_client(settings)
        try:
            version = s3tier.read_alias(
                client, parsed, settings.fetch_retries, settings.fetch_timeout_s
            )
        except FetchError as exc:
            stale = _stale(parsed, settings, exc)
            if stale is None:
                raise
            return done(*stale, stale=True)
        parsed = parsed.with_version(version)
    assert parsed.version is not None
    version_uri = model_uri(bucket, parsed.prefix, name, parsed.version)

    found = local.find(settings.local_paths, name, parsed.version)
    if found is not None:
        directory, manifest = found
        return done(directory, manifest, "local", version_uri, {"local": manifest.total_bytes})

    cache = DiskCache(settings.cache_dir)
    key = version_key(parsed)
    cache.hold(key)
    hit = cache.lookup(key)
    if hit is not None and not hit.bad:
        cache.touch(key)
        return done(hit.directory, hit.manifest, "disk", version_uri, _disk_only(hit))

    client = client or default_client(settings)
    with cache.writing(key):
        # Another process may have finished (or repaired) it while we waited for the lock.
        hit = cache.lookup(key)
        if hit is not None and not hit.bad:
            cache.touch(key)
            return done(hit.directory, hit.manifest, "disk", version_uri, _disk_only(hit))
        if hit is not None:
            fetched = _repair(cache, hit, parsed, settings, client)
            cache.touch(key)
            on_disk = hit.manifest.total_bytes - fetched
            return done(
                hit.directory, hit.manifest, "s3", version_uri, {"disk": on_disk, "s3": fetched}
            )
        try:
            manifest = s3tier.read_manifest(
                client, parsed, settings.fetch_retries, settings.fetch_timeout_s
            )
            directory = _fetch_version(cache, key, manifest, parsed, settings, client)
        except FetchError as exc:
            stale = _stale(parsed, settings, exc, exclude=key)
            if stale is None:
                raise
            return done(*stale, stale=True)
        cache.touch(key)
        return done(directory, manifest, "s3", version_uri, {"s3": manifest.total_bytes})


def _fetch_version(
    cache: DiskCache,
    key: str,
    manifest: Manifest,
    uri: ModelURI,
    settings: Settings,
    client: Engine,
) -> Path:
    """Fetch a whole version into a reserved temp dir, then make it visible in one rename."""
    assert uri.bucket is not None
    tmp = cache.reserve(
        key,
        manifest.total_bytes,
        settings.cache_max_bytes,
        settings.cache_budget() if settings.cache_max_bytes is None else 0,
    )
    try:
        with _room_on_disk(cache, manifest.total_bytes):
            _fetch_into(tmp, manifest.files, uri, settings, client)
            return cache.commit(tmp, key, manifest, source_of(uri))
    except BaseException:
        cache.discard_tmp(tmp)
        raise


@contextmanager
def _room_on_disk(cache: DiskCache, needed: int) -> Iterator[None]:
    """Turn a file system that fills up while writing into a CacheFullError."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        # The budget said yes but the file system is fuller than it (another writer, or a
        # budget set above the real ephemeral storage).
        free = shutil.disk_usage(cache.root).free
        raise CacheFullError(
            str(cache.root),
            needed,
            free,
            f"the file system holds less than {c.ENV_CACHE_MAX_BYTES} allows: set it to what "
            "the disk really has, or raise the function's ephemeral storage",
        ) from None


def _fetch_into(
    tmp: Path, files: Sequence[FileEntry], uri: ModelURI, settings: Settings, client: Engine
) -> int:
    """Fetch `files` from the version's S3 prefix into `tmp`; bytes fetched."""
    assert uri.bucket is not None
    return s3tier.fetch_files(
        client,
        bucket=uri.bucket,
        prefix=uri.prefix,
        files=files,
        dest=tmp,
        concurrency=settings.fetch_concurrency,
        retries=settings.fetch_retries,
        attempt_s=settings.fetch_timeout_s,
    )


def _disk_only(hit: Hit) -> dict[str, int]:
    return {"disk": hit.manifest.total_bytes}


def _repair(cache: DiskCache, hit: Hit, uri: ModelURI, settings: Settings, client: Engine) -> int:
    """Fetch again the files of a disk version that failed the check; bytes fetched."""
    assert uri.bucket is not None
    log.warning(
        "disk cache %s: %s failed the check; fetching again",
        hit.directory,
        ", ".join(f.path for f in hit.bad),
    )
    tmp = cache.new_tmp(hit.key)
    try:
        with _room_on_disk(cache, sum(f.size for f in hit.bad)):
            fetched = _fetch_into(tmp, hit.bad, uri, settings, client)
            cache.replace_files(hit.key, tmp, hit.manifest, [f.path for f in hit.bad])
    except BaseException:
        cache.discard_tmp(tmp)
        raise
    return fetched


def _stale(
    uri: ModelURI, settings: Settings, exc: FetchError, exclude: str = ""
) -> tuple[Path, Manifest, str, str, dict[str, int]] | None:
    """With allow_stale, the most recently used intact version of this model on disk."""
    if not settings.allow_stale:
        return None
    assert uri.bucket is not None and uri.name is not None
    cache = DiskCache(settings.cache_dir)
    source = source_of(uri)
    for entry in reversed(cache.entries()):  # most recently used first
        if entry.name != uri.name or entry.source != source or entry.key == exclude:
            continue
        cache.hold(entry.key)
        hit = cache.lookup(entry.key)
        if hit is None or hit.bad:
            continue
        log.warning("S3 failed (%s); serving stale version %s from disk", exc, entry.version)
        cache.touch(entry.key)
        version_uri = model_uri(uri.bucket, uri.prefix, uri.name, entry.version)
        return hit.directory, hit.manifest, "disk", version_uri, _disk_only(hit)
    return None
