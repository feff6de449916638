"""An embedded S3: moto in server mode on a free loopback port, reached over real HTTP."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
# moto accepts any credentials; these dummy ones keep boto3 from looking for real ones.
DUMMY_KEY_ID = "testing"
DUMMY_SECRET = "testing"


def env_for(endpoint_url: str) -> dict[str, str]:
    """Environment variables that point boto3 in another process at the S3 at `endpoint_url`."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "AWS_DEFAULT_REGION": REGION,
    }


def client_for(endpoint_url: str, **config: Any) -> S3Client:
    """A boto3 S3 client bound to `endpoint_url` (botocore Config options as keywords)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=DUMMY_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET,
        region_name=REGION,
        config=Config(**config) if config else None,
    )


class S3Server:
    """moto's ThreadedMotoServer on 127.0.0.1 and a port the OS picks.

    Use as a context manager, or call start() and stop(). After stop() the port refuses
    connections, so a client sees S3 as unreachable rather than hanging.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: Any = None
        self.endpoint_url = ""

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> S3Server:
        if self._server is not None:
            return self
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; the tests and the benchmark do not want that.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=self._host, port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        # ThreadedMotoServer.stop() leaves the listening socket open: close it so that
        # new connections are refused instead of queued forever.
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 in another process at this server."""
        return env_for(self.endpoint_url)

    def client(self, **config: Any) -> S3Client:
        """A boto3 S3 client bound to this server (botocore Config options as keywords)."""
        if not self.endpoint_url:
            raise RuntimeError("S3Server.client() needs start() first")
        return client_for(self.endpoint_url, **config)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
