"""The one S3 client a process uses for fetching, sized and timed from the settings."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from preheat.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_lock = threading.Lock()
_clients: dict[tuple[int, float], S3Client] = {}


def make_client(settings: Settings) -> S3Client:
    """A new S3 client: a connection per fetch thread and the settings' timeouts.

    boto3 makes one attempt per request: preheat retries each chunk itself (with backoff,
    and stopping when the fetch stalls), so every request is counted against
    fetch_retries and a stalled read costs one fetch_timeout_s, not three.
    The endpoint comes from AWS_ENDPOINT_URL_S3 when it is set, as boto3 reads it.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=max(10, settings.fetch_concurrency + 2),
        connect_timeout=settings.fetch_timeout_s,
        read_timeout=settings.fetch_timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
        tcp_keepalive=True,
    )
    return boto3.session.Session().client("s3", config=config)


def default_client(settings: Settings) -> S3Client:
    """The process-wide client for these settings, created on first use (INIT) and reused."""
    key = (settings.fetch_concurrency, settings.fetch_timeout_s)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = make_client(settings)
        return client


def forget() -> None:
    """Drop the cached clients (after a SnapStart restore the connections are stale)."""
    with _lock:
        _clients.clear()
