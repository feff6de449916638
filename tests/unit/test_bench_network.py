"""Choosing the shaped network's private /30 and its tbf bucket (no root needed)."""

from __future__ import annotations

import ipaddress

import pytest

from preheat.tools.bench.network import NetworkSetupError, pick_subnet, tbf_burst_bytes


def test_pick_subnet_skips_networks_in_use() -> None:
    first = pick_subnet(0, [])
    assert first.prefixlen == 30 and first.is_private
    second = pick_subnet(0, [first])
    assert second != first and not second.overlaps(first)


def test_pick_subnet_fails_clearly_when_the_pool_is_used_up() -> None:
    with pytest.raises(NetworkSetupError, match="no free /30"):
        pick_subnet(0, [ipaddress.IPv4Network("10.0.0.0/8")])


def test_tbf_bucket_scales_with_rate_but_holds_a_gso_packet() -> None:
    assert tbf_burst_bytes(1) == 64 * 1024
    assert tbf_burst_bytes(600) == 300_000


def test_a_missing_tool_is_a_failed_step_not_a_crash() -> None:
    from preheat.tools.bench.network import _run

    res = _run(["preheat-no-such-tool-here"])
    assert res.returncode == 127 and "FileNotFoundError" in res.stderr
