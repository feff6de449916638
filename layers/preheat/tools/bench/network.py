"""The `lambda` network profile: a veth pair into a network namespace, shaped with tc tbf.

Servers started in the namespace (S3) are reached from this machine through the veth pair,
so every byte a Lambda environment fetches crosses a bandwidth cap, as it does on AWS.
Traffic stays between this machine's own namespaces: addresses live only on the two veth
ends, on a private /30. Everything created is removed on exit, error or interrupt.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from preheat.exceptions import PreheatError
from preheat.tools.emulator.cgroups import pid_alive

# Namespace and interface names carry the owner's pid, so that a run can tell its own
# leftovers (from a run that was killed) from another live run's.
NS_PREFIX = "phb-"
_NS_RE = re.compile(rf"^{NS_PREFIX}(\d+)(?:-\d+)?$")
# A private range for the /30s; one is chosen per run and skipped if already in use.
_POOL = ipaddress.IPv4Network("10.213.0.0/16")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class NetworkSetupError(PreheatError):
    """The shaped network could not be built (not root, no `ip`/`tc`, kernel refused)."""


def _run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, **kw)
    except (OSError, subprocess.TimeoutExpired) as exc:
        # No `ip`/`tc` on this machine, or a hung call: a failed step, said in one line.
        return subprocess.CompletedProcess(list(argv), 127, "", f"{type(exc).__name__}: {exc}")


def namespaces(run: Runner = _run) -> list[str]:
    """The names of the network namespaces that preheat's benchmark created and still exist."""
    res = run(["ip", "netns", "list"])
    if res.returncode != 0:
        return []
    names = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    return [n for n in names if _NS_RE.match(n)]


def remove_stale(run: Runner = _run) -> list[str]:
    """Delete namespaces left by benchmark runs that no longer exist; return their names."""
    removed = []
    for name in namespaces(run):
        m = _NS_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            run(["ip", "netns", "del", name])
            removed.append(name)
    return removed


def _used_networks(run: Runner) -> list[ipaddress.IPv4Network]:
    res = run(["ip", "-4", "-o", "addr", "show"])
    nets: list[ipaddress.IPv4Network] = []
    for m in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", res.stdout):
        nets.append(ipaddress.IPv4Interface(m.group(1)).network)
    res = run(["ip", "-4", "route", "show"])
    for m in re.finditer(r"^(\d+\.\d+\.\d+\.\d+/\d+)", res.stdout, re.M):
        nets.append(ipaddress.IPv4Network(m.group(1), strict=False))
    return nets


def pick_subnet(seed: int, used: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A free /30 from the private pool, starting at a place derived from `seed` (the pid)."""
    subnets = list(_POOL.subnets(new_prefix=30))
    for i in range(len(subnets)):
        net = subnets[(seed + i) % len(subnets)]
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetworkSetupError(f"no free /30 left in {_POOL} for the shaped network")


def tbf_burst_bytes(rate_mbit: float) -> int:
    """tbf's bucket: a few ms of traffic at the rate, never under 64 KB (one GSO packet)."""
    return max(64 * 1024, int(rate_mbit * 1e6 / 8 * 0.004))


@dataclass(frozen=True)
class Link:
    namespace: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str
    rate_mbit: float


class ShapedNetwork:
    """A namespace behind a veth pair capped at `rate_mbit` in both directions.

    Use as a context manager; `popen` starts a process inside the namespace. Processes
    started with it are stopped before the namespace is deleted.
    """

    def __init__(self, rate_mbit: float = 600.0, run: Runner = _run, tag: int = 0) -> None:
        if not rate_mbit > 0:
            raise NetworkSetupError(f"bandwidth {rate_mbit} Mbit/s is not positive")
        self.rate_mbit = rate_mbit
        self._run = run
        pid = os.getpid()
        suffix = f"-{tag}" if tag else ""
        self._ns = f"{NS_PREFIX}{pid}{suffix}"
        # Interface names are limited to 15 characters.
        short = f"{pid % 10**7}{tag % 100 if tag else ''}"
        self._host_if = f"phb{short}h"
        self._ns_if = f"phb{short}n"
        self.link: Link | None = None
        self._procs: list[subprocess.Popen[bytes]] = []

    def _must(self, *argv: str, ns: bool = False) -> None:
        full = ["ip", "netns", "exec", self._ns, *argv] if ns else list(argv)
        res = self._run(full)
        if res.returncode != 0:
            detail = (res.stderr or res.stdout).strip().splitlines()
            raise NetworkSetupError(
                f"`{' '.join(full)}` failed: {detail[-1] if detail else res.returncode}"
            )

    def __enter__(self) -> ShapedNetwork:
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise NetworkSetupError(
                "the lambda network profile needs root (network namespaces and tc); "
                "run as root or use --network loopback"
            )
        remove_stale(self._run)
        net = pick_subnet(os.getpid() * 7, _used_networks(self._run))
        host_ip, ns_ip = (str(h) for h in net.hosts())
        burst = tbf_burst_bytes(self.rate_mbit)
        try:
            self._must("ip", "netns", "add", self._ns)
            self._must(
                "ip", "link", "add", self._host_if, "type", "veth", "peer", "name", self._ns_if
            )
            self._must("ip", "link", "set", self._ns_if, "netns", self._ns)
            self._must("ip", "addr", "add", f"{host_ip}/30", "dev", self._host_if)
            self._must("ip", "link", "set", self._host_if, "up")
            self._must("ip", "addr", "add", f"{ns_ip}/30", "dev", self._ns_if, ns=True)
            self._must("ip", "link", "set", self._ns_if, "up", ns=True)
            self._must("ip", "link", "set", "lo", "up", ns=True)
            # Egress of each end: the namespace's end shapes what S3 sends (downloads),
            # the host's end what it receives (uploads).
            for dev, in_ns in ((self._ns_if, True), (self._host_if, False)):
                self._must(
                    "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                    "rate", f"{self.rate_mbit:g}mbit", "burst", str(burst), "latency", "50ms",
                    ns=in_ns,
                )  # fmt: skip
        except BaseException:
            self.close()
            raise
        self.link = Link(self._ns, self._host_if, self._ns_if, host_ip, ns_ip, self.rate_mbit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def address(self) -> str:
        """The namespace's end of the link: what the host reaches through the shaped link."""
        if self.link is None:
            raise RuntimeError("the shaped network is not up; use it as a context manager")
        return self.link.ns_ip

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        """Start `argv` inside the namespace; it is stopped when the network closes."""
        proc = subprocess.Popen(["ip", "netns", "exec", self._ns, *argv], **kw)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop our processes, delete the namespace (which removes both veth ends)."""
        for proc in self._procs:
            stop_process(proc)
        self._procs.clear()
        self._run(["ip", "netns", "del", self._ns])
        # The host end normally vanishes with its peer; remove it if setup stopped half way.
        self._run(["ip", "link", "del", self._host_if])
        self.link = None

    def leftovers(self) -> list[str]:
        """What of this network still exists (empty after close)."""
        left = [n for n in namespaces(self._run) if n == self._ns]
        if self._run(["ip", "link", "show", self._host_if]).returncode == 0:
            left.append(self._host_if)
        return left


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


_SENDER = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
block = b"\\0" * 1048576
left = int(sys.argv[2])
while left > 0:
    n = c.send(block[: min(left, len(block))])
    left -= n
c.shutdown(socket.SHUT_WR)
c.close()
"""


def measure_mbit(network: ShapedNetwork, nbytes: int = 48 * 1024 * 1024) -> float:
    """Send `nbytes` from the namespace to this side over TCP and return the rate seen."""
    if network.link is None:
        raise NetworkSetupError("the shaped network is not up")
    proc = network.popen(
        [sys.executable, "-c", _SENDER, network.link.ns_ip, str(nbytes)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().decode().strip() or 0)
        if not port:
            raise NetworkSetupError("the rate check's sender did not start in the namespace")
        got = 0
        with socket.create_connection((network.link.ns_ip, port), timeout=30) as sock:
            start = time.perf_counter()
            while chunk := sock.recv(1 << 20):
                got += len(chunk)
            elapsed = time.perf_counter() - start
        if got != nbytes:
            raise NetworkSetupError(f"the rate check received {got} of {nbytes} bytes")
        return got * 8 / elapsed / 1e6
    finally:
        stop_process(proc)
