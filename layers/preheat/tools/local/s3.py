"""The local S3: moto in server mode, reached over real HTTP, run two ways.

`S3Server` runs it on threads of this process (quick to start: the tests and the demo).
`S3Process` runs it as a child process, optionally inside the bench's shaped network
namespace and on cores of its own, so that S3's request handling neither shares this
interpreter's lock nor comes out of the measured functions' CPU share.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from preheat.exceptions import ToolProcessError

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


START_TIMEOUT_S = 30.0


class _Endpoint:
    """What both ways of running the server share: where it is and how to reach it."""

    endpoint_url = ""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 in another process at this server."""
        return env_for(self.endpoint_url)

    def client(self, **config: Any) -> S3Client:
        """A boto3 S3 client bound to this server (botocore Config options as keywords)."""
        if not self.endpoint_url:
            raise RuntimeError(f"{type(self).__name__}.client() needs start() first")
        return client_for(self.endpoint_url, **config)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class S3Server(_Endpoint):
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

    def start(self) -> Self:
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


class Namespace(Protocol):
    """A network namespace the server can run in (the bench's shaped network)."""

    @property
    def address(self) -> str:
        """The namespace's own IP address, which the host reaches through the shaped link."""
        ...

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]: ...


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class S3Process(_Endpoint):
    """moto's S3 server as a child process, on loopback or inside `network`."""

    def __init__(self, network: Namespace | None = None, cpus: frozenset[int] | None = None):
        self._network = network
        # On Lambda, S3 costs the function no CPU: pinned to cores the functions do not
        # use, the server's work does not come out of the function's share.
        self._cpus = cpus
        self._proc: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""

    def start(self) -> Self:
        if self._network is not None:
            host, port = self._network.address, 9000  # a fresh namespace has every port free
        else:
            host, port = "127.0.0.1", free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
        kw: dict[str, Any] = {
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
            "env": {**os.environ, "MOTO_PORT": str(port)},
        }
        if self._cpus:
            cpus = self._cpus
            # Set in the child before exec, so every thread the server starts inherits it.
            kw["preexec_fn"] = lambda: os.sched_setaffinity(0, cpus)
        self._proc = (
            self._network.popen(argv, **kw) if self._network else subprocess.Popen(argv, **kw)
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ToolProcessError("the S3 server", "it exited at start", code)
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ToolProcessError(
                        "the S3 server",
                        f"it did not listen on {host}:{port} within {START_TIMEOUT_S:.0f} s",
                    ) from None
                time.sleep(0.05)
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)

    def client(self, **config: Any) -> S3Client:
        # The bench uploads chunks in parallel: more pooled connections than botocore's 10.
        return super().client(**{"max_pool_connections": 32, **config})
