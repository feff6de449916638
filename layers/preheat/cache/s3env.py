"""Where S3 is and whose keys sign for it, read from the environment in boto3's order.

The native engine must reach the same S3 as boto3 would in the same process, without
importing botocore on the hot path; this module is that reading, kept apart to be tested.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from preheat import constants as c

# Used by boto3 too when nothing names a region: S3's global endpoint lives there.
FALLBACK_REGION = "us-east-1"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class StaticCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


@dataclass(frozen=True)
class S3Target:
    """One S3: its endpoint (None: AWS's own for the region), region and credentials.

    `credentials` None means the environment holds no keys: they come from botocore's own
    chain (profiles, container or instance roles), which the engine asks lazily.
    """

    endpoint: str | None
    region: str
    credentials: StaticCredentials | None

    @property
    def allow_http(self) -> bool:
        return self.endpoint is not None and urlsplit(self.endpoint).scheme == "http"

    def path_style(self, bucket: str) -> bool:
        """Path-style addressing for a custom endpoint (moto, MinIO) and for bucket names
        with dots, which break TLS under a virtual host; virtual hosts on AWS otherwise."""
        return self.endpoint is not None or "." in bucket


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def endpoint_from(env: Mapping[str, str]) -> str | None:
    """AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, unless boto3 is told to ignore both."""
    if env.get(c.ENV_AWS_IGNORE_ENDPOINT_URLS, "").strip().lower() in _TRUE:
        return None
    for name in (c.ENV_AWS_ENDPOINT_URL_S3, c.ENV_AWS_ENDPOINT_URL):
        if (value := _get(env, name)) is not None:
            return value.rstrip("/")
    return None


def region_from(env: Mapping[str, str]) -> str:
    """boto3 reads AWS_DEFAULT_REGION; Lambda also sets AWS_REGION (to the same value)."""
    return _get(env, c.ENV_AWS_DEFAULT_REGION) or _get(env, c.ENV_AWS_REGION) or FALLBACK_REGION


def credentials_from(env: Mapping[str, str]) -> StaticCredentials | None:
    """Keys in the environment (Lambda puts the role's there, with a session token).

    Like botocore's environment provider: both halves or nothing.
    """
    key_id = _get(env, c.ENV_AWS_ACCESS_KEY_ID)
    secret = _get(env, c.ENV_AWS_SECRET_ACCESS_KEY)
    if key_id is None or secret is None:
        return None
    token = _get(env, c.ENV_AWS_SESSION_TOKEN) or _get(env, c.ENV_AWS_SECURITY_TOKEN)
    return StaticCredentials(key_id, secret, token)


def target_from(env: Mapping[str, str]) -> S3Target:
    return S3Target(endpoint_from(env), region_from(env), credentials_from(env))
