"""boto3 clients made in one place, with the retry and timeout policy each caller chooses.

The warmer imports this inside Lambda, so boto3 and botocore load only when a client is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# One attempt. A retried invoke would hide a throttle the warmer must see, or pay a second
# INIT in the bench; botocore's default retries throttles on its own.
NO_RETRIES: Mapping[str, Any] = {"total_max_attempts": 1, "mode": "standard"}


def client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    credentials: tuple[str, str] | None = None,
    retries: Mapping[str, Any] = NO_RETRIES,
    read_timeout: float | None = None,
    connect_timeout: float | None = None,
    pool: int | None = None,
    tcp_keepalive: bool | None = None,
    session: Any = None,
) -> Any:
    """A boto3 client for `service`; an option left as None keeps botocore's default.

    `credentials` is (access key id, secret); None uses botocore's chain. `session` is the
    boto3 Session to build from; None uses boto3's default session.
    """
    import boto3
    from botocore.config import Config

    # Only what the caller set goes into Config: an explicit None there would not mean
    # "default" (connect_timeout=None, for one, waits for ever).
    options: dict[str, Any] = {
        "retries": dict(retries),
        "read_timeout": read_timeout,
        "connect_timeout": connect_timeout,
        "max_pool_connections": pool,
        "tcp_keepalive": tcp_keepalive,
    }
    config = Config(**{k: v for k, v in options.items() if v is not None})
    key_id, secret = credentials if credentials is not None else (None, None)
    maker: Any = session if session is not None else boto3
    return maker.client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )
