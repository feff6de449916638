"""The `lambda` network profile for real: namespace, veth, tbf, a measured transfer, teardown."""

from __future__ import annotations

import os

import pytest

from preheat.bench.network import ShapedNetwork, measure_mbit, namespaces

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="network namespaces and tc need root",
)


def test_shaped_link_caps_the_rate_and_leaves_nothing_behind() -> None:
    rate = 200.0
    with ShapedNetwork(rate) as net:
        assert net.link is not None
        assert net.link.namespace in namespaces()
        measured = measure_mbit(net, 16 * 1024 * 1024)
        # Below the cap (tbf's bucket lets a little more through at the start) yet flowing.
        assert 0 < measured <= rate * 1.05
        assert net.leftovers()
        sleeper = net.popen(["sleep", "60"])
    assert sleeper.poll() is not None, "a process started in the namespace outlived it"
    assert net.leftovers() == []
    assert net.link is None


def test_teardown_happens_when_the_body_raises() -> None:
    with pytest.raises(KeyboardInterrupt), ShapedNetwork(600.0) as net:
        raise KeyboardInterrupt
    assert net.leftovers() == []
