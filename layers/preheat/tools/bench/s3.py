"""The benchmark's S3: moto's server in its own process, on loopback or in the shaped namespace.

A process of its own keeps S3's request handling off the benchmark's interpreter (its
threads would otherwise compete with the emulator's for one GIL) and lets the `lambda`
profile start it inside the network namespace, behind the bandwidth cap.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from preheat.exceptions import PreheatError
from preheat.tools.bench.network import ShapedNetwork, stop_process
from preheat.tools.local.s3 import client_for, env_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

START_TIMEOUT_S = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class S3Process:
    """moto's S3 server as a child process; reached at `endpoint_url`."""

    def __init__(
        self, network: ShapedNetwork | None = None, cpus: frozenset[int] | None = None
    ) -> None:
        self._network = network
        # On Lambda, S3 costs the function no CPU: pinned to cores the functions do not
        # use, the server's work does not come out of the function's share.
        self._cpus = cpus
        self._proc: subprocess.Popen[bytes] | None = None
        self.endpoint_url = ""

    def start(self) -> S3Process:
        if self._network is not None:
            assert self._network.link is not None
            host, port = self._network.link.ns_ip, 9000  # a fresh namespace has every port free
        else:
            host, port = "127.0.0.1", free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
        env = {**os.environ, "MOTO_PORT": str(port)}
        kw: dict[str, Any] = {
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
            "env": env,
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
                raise PreheatError(f"the S3 server exited at start (code {self._proc.returncode})")
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PreheatError(
                        f"the S3 server did not listen on {host}:{port} within "
                        f"{START_TIMEOUT_S:.0f} s"
                    ) from None
                time.sleep(0.05)
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)

    def env(self) -> dict[str, str]:
        """What a function's environment needs to reach this S3 with boto3."""
        return env_for(self.endpoint_url)

    def client(self) -> S3Client:
        return client_for(self.endpoint_url, max_pool_connections=32)

    def __enter__(self) -> S3Process:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
