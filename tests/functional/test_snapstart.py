"""SnapStart hooks in process: registered with snapshot_restore_py and run by awslambdaric's own
runner (what Lambda's runtime does around the snapshot), over a moto server behind a counting
HTTP proxy, with a small real SavedModel.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import snapshot_restore_py
from awslambdaric import lambda_runtime_hooks_runner as runner

from preheat.cache import client, memory
from preheat.cache.engine_obstore import ObstoreEngine
from preheat.exceptions import IntegrityError
from preheat.loader import load_model
from preheat.runtimes.base import Model
from preheat.serving import observe, snapstart
from preheat.settings import Settings
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push, set_alias
from preheat.warm.state import state
from tests.fixtures.models import BuiltModel
from tests.reliability.faultproxy import FaultProxy, Rule

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _hooks_and_memory() -> Iterator[None]:
    """Each test sees the hooks registered before it plus its own, and leaves them so."""
    before = list(snapshot_restore_py.get_before_snapshot())
    after = list(snapshot_restore_py.get_after_restore())
    memory.clear()
    client.forget()
    yield
    snapshot_restore_py.get_before_snapshot()[:] = before
    snapshot_restore_py.get_after_restore()[:] = after
    memory.clear()
    client.forget()


@pytest.fixture
def proxy(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A counting proxy in front of moto that keeps connections alive, as S3 does."""
    with FaultProxy(s3_server.endpoint_url) as p:
        for k, v in s3_server.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", p.endpoint_url)
        yield p


@dataclass
class Function:
    """What the inference function holds: its model, swapped by the alias re-resolve."""

    model: Model
    swaps: list[str] = field(default_factory=list)

    def swap(self, model: Model) -> None:
        self.model = model
        self.swaps.append(model.manifest.version)


def published(
    server: S3Server, bucket: str, model: BuiltModel, tmp_path: Path, *versions: str
) -> str:
    """Push `versions` of the model as dense/VERSION; the alias prod names the first."""
    dest = f"s3://{bucket}/store"
    for version in versions:
        art = model.as_artifact(tmp_path / f"dense-{version}", name="dense", version=version)
        push(art, dest, name="dense", version=version, s3_client=server.client())
    return set_alias(dest, "dense", "prod", versions[0], s3_client=server.client())


def settings_for(tmp_path: Path, uri: str) -> Settings:
    # A private disk tier and no read-only paths: only S3 (or the directory given) serves.
    return Settings.from_env(
        model_uri=uri, cache_dir=tmp_path / "cache", local_paths=(), prefetch=False
    )


def init(
    uri: str, tmp_path: Path, **options: Any
) -> tuple[Function, snapstart.SnapStartHooks, observe.Observability]:
    """INIT as the function runs it: load and warm the model, then register the hooks."""
    settings = settings_for(tmp_path, uri)
    fn = Function(load_model(uri, cache_dir=settings.cache_dir, local_paths=(), prefetch=False))
    # A service name of its own: powertools keeps one stdlib logger (and stream) per name.
    obs = observe.build(service=f"snapstart-{uuid.uuid4().hex[:8]}", env={})
    hooks = snapstart.register(lambda: fn.model, fn.swap, obs, settings=lambda: settings, **options)
    assert hooks is not None
    return fn, hooks, obs


def log_lines(out: str) -> list[dict[str, Any]]:
    lines = []
    for line in out.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def messages(lines: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
    return [ln for ln in lines if ln.get("message") == message]


def emf_metrics(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Metric name → value over every EMF line."""
    found: dict[str, Any] = {}
    for ln in lines:
        aws = ln.get("_aws")
        if not aws:
            continue
        for directive in aws["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = ln[metric["Name"]]
                found[metric["Name"]] = value[0] if isinstance(value, list) else value
    return found


def established_to(port: int) -> int:
    """This process's open TCP connections whose far end is `port` (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                if cols[3] == "01" and remote_port == port and cols[9] in inodes:
                    count += 1
    return count


def settle(check: Any, timeout_s: float = 2.0) -> Any:
    """Poll `check()` until truthy: a dropped connection pool closes its sockets on its
    own thread, a moment after the drop."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def test_before_snapshot_closes_connections_and_restore_makes_new_clients(
    proxy: FaultProxy,
    s3_server: S3Server,
    bucket: str,
    dense_model: BuiltModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = published(s3_server, bucket, dense_model, tmp_path, "1")
    fn, hooks, _obs = init(uri, tmp_path)
    port = int(proxy.endpoint_url.rsplit(":", 1)[1])
    settings = settings_for(tmp_path, uri)
    before = client.default_client(settings)
    assert established_to(port) > 0  # INIT's fetch left its connections open

    runner.run_before_snapshot()
    assert settle(lambda: established_to(port) == 0)
    snap = messages(log_lines(capsys.readouterr().out), "preheat before snapshot")
    assert len(snap) == 1
    report = snap[0]["snapshot"]
    assert report["engines_closed"] == 1
    assert report["verified_bytes"] == fn.model.manifest.total_bytes > 0
    assert report["version"] == "1"

    # Keys that change while frozen (SnapStart hands out fresh ones after a restore).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "restored-key")
    runner.run_after_restore()
    after = client.default_client(settings)
    assert after is not before
    if isinstance(after, ObstoreEngine):
        assert after.target.credentials is not None
        assert after.target.credentials.access_key_id == "restored-key"
    # The new client works: the alias was read through it, over a new connection.
    assert proxy.count("/aliases/prod") == 2
    assert established_to(port) > 0
    assert hooks.restores == 1


def test_alias_moved_loads_warms_and_swaps_in_the_new_version(
    proxy: FaultProxy,
    s3_server: S3Server,
    bucket: str,
    dense_model: BuiltModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = published(s3_server, bucket, dense_model, tmp_path, "1", "2")
    fn, _hooks, _obs = init(uri, tmp_path)
    first = fn.model
    runner.run_before_snapshot()
    capsys.readouterr()
    set_alias(f"s3://{bucket}/store", "dense", "prod", "2", s3_client=s3_server.client())
    chunks_before = proxy.count("/blobs/")

    runner.run_after_restore()

    assert fn.swaps == ["2"]
    assert fn.model is not first and fn.model.manifest.version == "2"
    assert proxy.count("/blobs/") > chunks_before  # version 2 came from S3
    # Loaded, warmed, and what load_model answers for the alias from now on.
    report = fn.model.init_report  # type: ignore[attr-defined]
    assert report["warmup_s"] > 0 and report["version"] == "2"
    assert load_model(uri, cache_dir=tmp_path / "cache", local_paths=(), prefetch=False) is (
        fn.model
    )
    x = np.ones((2, 4), dtype="float32")
    (name,) = (s.name for s in fn.model.signature.inputs)
    np.testing.assert_allclose(
        next(iter(fn.model.predict({name: x}).values())),
        next(iter(dense_model.reference({name: x}).values())),
        rtol=1e-6,
    )

    lines = log_lines(capsys.readouterr().out)
    (moved,) = messages(lines, "preheat alias moved")
    assert moved["alias"]["from"] == "1" and moved["alias"]["to"] == "2"
    (restore,) = messages(lines, "preheat restore")
    assert restore["restore"]["moved"] is True and restore["restore"]["serving"] == "2"
    assert restore["restore"]["pending"] is False
    assert emf_metrics(lines)["RestoreAliasMoved"] == 1


def test_alias_unchanged_fetches_no_chunk_and_logs_the_breakdown_once(
    proxy: FaultProxy,
    s3_server: S3Server,
    bucket: str,
    dense_model: BuiltModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = published(s3_server, bucket, dense_model, tmp_path, "1")
    fn, _hooks, _obs = init(uri, tmp_path)
    first = fn.model
    runner.run_before_snapshot()
    capsys.readouterr()
    gets = proxy.counts("/", "GET")

    runner.run_after_restore()

    assert fn.model is first and fn.swaps == []
    after = proxy.counts("/", "GET")
    new = {path: n - gets.get(path, 0) for path, n in after.items() if n != gets.get(path, 0)}
    # One small GET, the alias; no manifest, no chunk.
    assert list(new) == [next(p for p in new if p.endswith("/aliases/prod"))]
    assert new[next(iter(new))] == 1

    lines = log_lines(capsys.readouterr().out)
    (restore,) = messages(lines, "preheat restore")
    report = restore["restore"]
    assert report["alias"] == "prod" and report["alias_version"] == "1"
    assert report["moved"] is False and report["serving"] == "1"
    assert report["environment_id"] == state.environment_id
    assert set(report["reseeded"]) == {"random", "numpy", "tensorflow"}
    for step in ("reseed_s", "clients_s", "alias_s"):
        assert 0 <= report[step] <= report["total_s"]
    metrics = emf_metrics(lines)
    assert {"RestoreReseedMs", "RestoreClientsMs", "RestoreAliasMs", "RestoreTotalMs"} <= set(
        metrics
    )
    assert metrics["RestoreTotalMs"] == pytest.approx(report["total_s"] * 1000, abs=0.01)
    assert "RestoreAliasMoved" not in metrics


def _freeze_generators() -> None:
    """The state every copy restored from one snapshot starts with."""
    from tensorflow.python.framework import random_seed
    from tensorflow.python.ops import stateful_random_ops

    random.seed(7)
    np.random.seed(7)
    random_seed.set_seed(7)
    stateful_random_ops.set_global_generator(stateful_random_ops.Generator.from_seed(7))


def _draw() -> tuple[list[float], list[float], list[float], list[float]]:
    import tensorflow as tf

    return (
        [random.random() for _ in range(4)],
        np.random.random(4).tolist(),
        tf.random.uniform([4]).numpy().tolist(),
        tf.random.get_global_generator().uniform([4]).numpy().tolist(),
    )


def test_each_restore_reseeds_the_three_generators_and_renews_the_id(
    dense_model: BuiltModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art = dense_model.as_artifact(tmp_path / "dense", name="dense", version="1")
    _fn, hooks, _obs = init(str(art), tmp_path)
    runner.run_before_snapshot()

    # Without the hooks, two copies of one snapshot draw the same numbers.
    _freeze_generators()
    plain = _draw()
    _freeze_generators()
    assert _draw() == plain

    draws, ids = [], []
    for _ in range(2):
        _freeze_generators()
        runner.run_after_restore()
        draws.append(_draw())
        ids.append(state.environment_id)
    for a, b, frozen in zip(draws[0], draws[1], plain, strict=True):
        assert a != b and a != frozen
    assert ids[0] != ids[1]
    assert hooks.restores == 2
    # A directory URI: no alias to follow and no S3 client to make.
    reports = [
        ln["restore"] for ln in messages(log_lines(capsys.readouterr().out), "preheat restore")
    ]
    assert [r["alias"] for r in reports] == [None, None]
    assert [r["environment_id"] for r in reports] == ids


def test_a_model_without_random_ops_is_snapshotted_without_a_warning(
    dense_model: BuiltModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art = dense_model.as_artifact(tmp_path / "dense", name="dense", version="1")
    _fn, _hooks, _obs = init(str(art), tmp_path)
    runner.run_before_snapshot()
    runner.run_after_restore()
    out = capsys.readouterr()
    (snapshot,) = messages(log_lines(out.out), "preheat before snapshot")
    assert snapshot["snapshot"]["random_ops"] == []
    assert "random ops" not in out.err


# In a fresh process that never called set_seed, as a function's own is. An op-seeded random
# op's kernel is cached by its seeds; the global seed given here is the one TensorFlow uses
# when none is set, so the op's seeds are the same before and after, and only whether the
# kernel cache was emptied decides whether its sequence starts again. tf.random.set_seed,
# which empties it, is the control.
_KERNEL_CACHE_CHILD = """
import json
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import random_seed
from preheat.serving import snapstart

same = random_seed.DEFAULT_GRAPH_SEED
draw = lambda: tf.random.uniform([3], seed=1).numpy()
first = draw()
snapstart.reseed(lambda: same)
after_reseed = draw()
tf.random.set_seed(same)
after_set_seed = draw()
print(json.dumps({
    "reseed_keeps_the_cache": not np.array_equal(after_reseed, first),
    "set_seed_empties_it": bool(np.array_equal(after_set_seed, first)),
}))
"""


def test_reseeding_keeps_tensorflows_cached_kernels() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _KERNEL_CACHE_CHILD],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"reseed_keeps_the_cache": True, "set_seed_empties_it": True}


def test_a_model_with_a_random_op_is_named_in_a_warning_before_the_snapshot(
    noisy_model: BuiltModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    art = noisy_model.as_artifact(tmp_path / "noisy", name="noisy", version="1")
    fn, _hooks, _obs = init(str(art), tmp_path)
    with caplog.at_level("WARNING", logger="preheat"):
        runner.run_before_snapshot()
    (snapshot,) = messages(log_lines(capsys.readouterr().out), "preheat before snapshot")
    assert snapshot["snapshot"]["random_ops"] == ["RandomUniform"]
    (warning,) = [r.getMessage() for r in caplog.records if "random ops" in r.getMessage()]
    assert "(RandomUniform)" in warning and "every copy" in warning
    runner.run_after_restore()
    # The model still answers, with noise in [0, 1) on top of its input.
    y = fn.model.predict({"x": np.zeros((2, 3), dtype=np.float32)})["y"]
    assert y.shape == (2, 3) and ((y >= 0) & (y < 1)).all() and len(set(y.ravel())) > 1


def test_a_file_changed_after_the_load_stops_the_snapshot(
    dense_model: BuiltModel, tmp_path: Path
) -> None:
    art = dense_model.as_artifact(tmp_path / "dense", name="dense", version="1")
    _fn, _hooks, _obs = init(str(art), tmp_path)
    victim = next(p for p in art.rglob("*") if p.is_file() and p.name != "manifest.json")
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="snapshot was not taken"):
        runner.run_before_snapshot()


def test_a_slow_new_version_is_swapped_in_after_the_restore_returns(
    proxy: FaultProxy,
    s3_server: S3Server,
    bucket: str,
    dense_model: BuiltModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = published(s3_server, bucket, dense_model, tmp_path, "1", "2")
    fn, _hooks, _obs = init(uri, tmp_path, alias_wait_s=0.2)
    runner.run_before_snapshot()
    set_alias(f"s3://{bucket}/store", "dense", "prod", "2", s3_client=s3_server.client())
    # Version 2's manifest takes longer than the restore may wait.
    proxy.add(Rule("stall", path="/models/dense/2/manifest.json", seconds=1.5))
    capsys.readouterr()

    start = time.monotonic()
    runner.run_after_restore()
    assert time.monotonic() - start < 1.0
    assert fn.model.manifest.version == "1"
    (restore,) = messages(log_lines(capsys.readouterr().out), "preheat restore")
    assert restore["restore"]["pending"] is True and restore["restore"]["serving"] == "1"

    assert settle(lambda: fn.swaps == ["2"], timeout_s=30)
    assert fn.model.manifest.version == "2"


def test_an_alias_that_cannot_be_read_keeps_the_snapshots_version_and_says_why(
    proxy: FaultProxy,
    s3_server: S3Server,
    bucket: str,
    dense_model: BuiltModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = published(s3_server, bucket, dense_model, tmp_path, "1")
    fn, _hooks, _obs = init(uri, tmp_path)
    runner.run_before_snapshot()
    proxy.add(Rule("internal", path="/aliases/prod", times=None))
    capsys.readouterr()

    runner.run_after_restore()  # the restore itself succeeds

    assert fn.model.manifest.version == "1" and fn.swaps == []
    lines = log_lines(capsys.readouterr().out)
    (failed,) = messages(lines, "preheat alias re-resolve failed")
    assert "InternalError" in failed["alias"]["error"] or "500" in failed["alias"]["error"]
    (restore,) = messages(lines, "preheat restore")
    assert restore["restore"]["serving"] == "1" and restore["restore"]["error"]
    assert emf_metrics(lines)["RestoreAliasErrors"] == 1


CHILD = r"""
import logging, sys
sys.modules["snapshot_restore_py"] = None  # as in an image that does not carry it
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")
from preheat.warm.state import state
from preheat.serving import observe, snapstart
hooks = snapstart.register(lambda: None, lambda m: None, observe.build(env={}))
print("registered:", hooks)
"""


def test_registration_without_snapshot_restore_py_is_a_logged_no_op() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "registered: None"
    assert "preheat SnapStart hooks not registered: snapshot_restore_py is not installed" in (
        proc.stderr
    )


APP_CHILD = r"""
import logging, sys
sys.modules["snapshot_restore_py"] = None
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")
sys.path.insert(0, sys.argv[1])
import app
print("served:", app.LOAD.get(None).model.manifest.version, "swapped:", app.SERVED)
"""


def test_the_inference_function_starts_without_snapshot_restore_py(
    dense_model: BuiltModel, tmp_path: Path
) -> None:
    art = dense_model.as_artifact(tmp_path / "dense", name="dense", version="3")
    function_dir = Path(__file__).resolve().parents[2] / "functions" / "inference"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREHEAT_")},
        "PREHEAT_MODEL_URI": str(art),
        "PREHEAT_CACHE_DIR": str(tmp_path / "cache"),
        "PREHEAT_LOCAL_PATHS": "",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    proc = subprocess.run(
        [sys.executable, "-c", APP_CHILD, str(function_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "served: 3 swapped: None" in proc.stdout
    assert "SnapStart hooks not registered: snapshot_restore_py is not installed" in proc.stderr
