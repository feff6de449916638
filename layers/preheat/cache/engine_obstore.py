"""The native engine: obstore (Rust's object_store), whose transfers run off the interpreter lock.

Every request is one attempt with the settings' timeouts; endpoint, region and keys come
from the environment in boto3's order (s3env.py), so it reaches the S3 boto3 would.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from preheat.cache.engine import Engine, Meta, Missing, SentRequest
from preheat.cache.engine_botocore import RETRYABLE_CODES, RETRYABLE_STATUS
from preheat.cache.retry import Retryable
from preheat.cache.s3env import S3Target

if TYPE_CHECKING:
    from obstore.store import S3Credential, S3Store

# A chunk that keeps arriving is progress, however slow; only silence longer than the
# read timeout is a stall (as botocore's read_timeout). This bounds a whole request only
# against a server that trickles forever, far beyond Lambda's INIT limit.
REQUEST_LIMIT = timedelta(minutes=15)
# How long a credential taken from botocore's chain is used before asking it again;
# botocore refreshes expiring role credentials itself when asked.
CREDENTIAL_REUSE = timedelta(minutes=5)

_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")


class Refused(Exception):
    """S3 answered with an error that retrying cannot mend (403, 400, a wrong region)."""


class NoCredentials(Exception):
    """Neither the environment nor botocore's chain has credentials."""


def _first_line(text: str) -> str:
    head = text.split("\n\nDebug source", 1)[0]
    return " ".join(head.split())[:300]


def classify(exc: Exception, timeout_s: float) -> Exception:
    """Map an obstore failure to Missing, Retryable or Refused, each with a one-line cause."""
    text = str(exc)
    status_m = _STATUS.search(text)
    code_m = _CODE.search(text)
    code = code_m.group(1) if code_m else ""
    if isinstance(exc, FileNotFoundError):
        return Missing(code or "404")
    if status_m is not None:
        status = int(status_m.group(1))
        if status == 404:
            return Missing(code or "404")
        if status in RETRYABLE_STATUS or code in RETRYABLE_CODES:
            return Retryable(f"S3 answered {status} {code}".rstrip())
        return Refused(f"S3 answered {status} {code}".rstrip())
    if "TimedOut" in text or "kind: Timeout" in text:
        phase = "connect" if "kind: Connect" in text else "read"
        return Retryable(f"{phase} timeout: nothing for {timeout_s:g} s")
    if "ConnectionReset" in text:
        return Retryable("connection reset by peer")
    if "IncompleteBody" in text or "UnexpectedEof" in text:
        return Retryable("connection closed before the whole body arrived")
    if "ConnectionRefused" in text:
        return Retryable("connection refused")
    if "HttpError" in text or "HTTP error" in text:
        return Retryable(f"HTTP error: {_first_line(text)}")
    return Refused(_first_line(text))


def aws_endpoint(region: str, bucket: str, virtual: bool) -> str:
    """AWS's own S3 endpoint, spelled out so that obstore reads no endpoint variable of
    its own (AWS_ENDPOINT) that boto3 would not."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    host = f"s3.{region}.{domain}"
    return f"https://{bucket}.{host}" if virtual else f"https://{host}"


class _BotocoreCredentials:
    """Credentials from botocore's chain (profiles, SnapStart's container endpoint, roles).

    Only used when the environment holds no keys; botocore is imported then, not before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._creds: Any = None

    def __call__(self) -> S3Credential:
        with self._lock:
            if self._creds is None:
                import botocore.session

                self._creds = botocore.session.get_session().get_credentials()
            if self._creds is None:
                raise NoCredentials(
                    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "a profile, or run with a role"
                )
            frozen = self._creds.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.now(UTC) + CREDENTIAL_REUSE,
        }


class ObstoreEngine(Engine):
    """One obstore S3Store per bucket, created on first use and shared by every thread."""

    name = "obstore"

    def __init__(self, target: S3Target, timeout_s: float) -> None:
        import obstore  # fails here, not mid-fetch, when the package is missing

        self._obstore = obstore
        self.target = target
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._stores: dict[str, S3Store] = {}
        self._credentials = _BotocoreCredentials() if target.credentials is None else None
        self.meta = Meta()

    def store(self, bucket: str) -> S3Store:
        with self._lock:
            store = self._stores.get(bucket)
            if store is None:
                store = self._stores[bucket] = self._new_store(bucket)
            return store

    def _new_store(self, bucket: str) -> S3Store:
        from obstore.store import S3Store

        t = self.target
        virtual = not t.path_style(bucket)
        endpoint = t.endpoint or aws_endpoint(t.region, bucket, virtual)
        timeout = timedelta(seconds=self.timeout_s)
        keys: dict[str, Any] = {}
        if t.credentials is not None:
            keys = {
                "access_key_id": t.credentials.access_key_id,
                "secret_access_key": t.credentials.secret_access_key,
            }
            if t.credentials.session_token:
                keys["session_token"] = t.credentials.session_token
        return S3Store(
            bucket,
            region=t.region,
            endpoint=endpoint,
            virtual_hosted_style_request=virtual,
            skip_signature=False,
            credential_provider=self._credentials,
            client_options={
                "allow_http": t.allow_http,
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "timeout": REQUEST_LIMIT,
            },
            # One attempt: preheat's retry loop counts them and knows the stall limit.
            retry_config={"max_retries": 0, "retry_timeout": REQUEST_LIMIT},
            **keys,
        )

    def get(self, bucket: str, key: str) -> memoryview:
        store = self.store(bucket)
        base = self.target.endpoint or aws_endpoint(self.target.region, bucket, virtual=False)
        self.meta.events.emit(
            "before-send.s3.GetObject", SentRequest("GET", f"{base}/{bucket}/{key}")
        )
        try:
            data = self._obstore.get(store, key).bytes()
        except (self._obstore.exceptions.BaseError, OSError) as exc:
            raise classify(exc, self.timeout_s) from exc
        return memoryview(data)

    def close(self) -> None:
        # Each store owns its HTTP client and connection pool; dropping the last reference
        # drops the pool, whose connections close. The credentials botocore lent go too.
        with self._lock:
            self._stores.clear()
        self._credentials = _BotocoreCredentials() if self.target.credentials is None else None
