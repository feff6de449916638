"""The `lambda` network profile for real: namespace, veth, tbf, a measured transfer, teardown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from preheat.tools.bench.network import ShapedNetwork, measure_mbit, namespaces

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


_AS_NOBODY = """
import contextlib, json, sys
from pathlib import Path
from preheat.tools.bench.context import start_network
from preheat.tools.bench.runner import Options
said = []
with contextlib.ExitStack() as stack:
    opts = Options(model=Path(sys.argv[1]), network="lambda")
    net, info = start_network(opts, stack, said.append)
print(json.dumps({"net": net is None, "shaped": info.shaped, "note": info.note, "said": said}))
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_without_root_the_profile_says_so_and_runs_unshaped() -> None:
    # pytest's own temp root is private to root; the unprivileged run must read the model.
    model = Path(tempfile.mkdtemp(prefix="preheat-bench-nobody-"))
    model.chmod(0o755)
    (model / "saved_model.pb").write_bytes(b"")
    try:
        res = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
             sys.executable, "-c", _AS_NOBODY, str(model)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(model)
    assert res.returncode == 0, res.stderr[-500:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["net"] and not out["shaped"]
    assert "needs root" in out["note"]
    assert any("running unshaped" in line for line in out["said"])
