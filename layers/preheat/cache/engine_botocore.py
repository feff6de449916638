"""The fallback engine: botocore, pure Python, so its reads hold the interpreter lock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from preheat.cache.engine import Engine, Missing
from preheat.cache.retry import Retryable
from preheat.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"SlowDown", "Throttling", "RequestTimeout"})


def classify(exc: Exception) -> Exception:
    """Map a botocore failure to Missing, Retryable or a FetchError-worthy cause."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return exc  # retrying cannot conjure credentials
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _NOT_FOUND or status == 404:
            return Missing(code or "404")
        if status in RETRYABLE_STATUS or code in RETRYABLE_CODES:
            return Retryable(f"S3 answered {status} {code}")
        return exc
    if isinstance(exc, BotoCoreError | OSError):
        return Retryable(f"{type(exc).__name__}: {exc}")
    return exc


def get_object_bytes(client: S3Client, bucket: str, key: str) -> bytes:
    """One GET; raises Missing, Retryable, or the original error when retrying cannot help."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return body.read()
        finally:
            body.close()
    except Exception as exc:
        mapped = classify(exc)
        if mapped is exc:
            raise
        raise mapped from exc


def make_s3_client(settings: Settings) -> S3Client:
    """A boto3 client: a connection per fetch thread, the settings' timeouts, one attempt.

    boto3 makes one attempt per request: preheat retries each chunk itself (with backoff,
    and stopping when the fetch stalls), so every request is counted against
    fetch_retries and a stalled read costs one fetch_timeout_s, not three.
    The endpoint comes from AWS_ENDPOINT_URL_S3 when it is set, as boto3 reads it.
    """
    import boto3

    from preheat import aws

    client: S3Client = aws.client(
        "s3",
        retries=aws.NO_RETRIES,
        pool=max(10, settings.fetch_concurrency + 2),
        connect_timeout=settings.fetch_timeout_s,
        read_timeout=settings.fetch_timeout_s,
        tcp_keepalive=True,
        session=boto3.session.Session(),
    )
    return client


class BotocoreEngine(Engine):
    """GETs through a boto3 S3 client (one given by the caller, or one of our own)."""

    name = "botocore"

    def __init__(self, client: S3Client) -> None:
        self.client = client

    @classmethod
    def for_settings(cls, settings: Settings) -> BotocoreEngine:
        return cls(make_s3_client(settings))

    def get(self, bucket: str, key: str) -> memoryview:
        return memoryview(get_object_bytes(self.client, bucket, key))

    def close(self) -> None:
        # botocore closes its urllib3 pools: every kept-alive connection to S3 goes.
        self.client.close()
