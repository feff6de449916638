"""Lambda's resource model in the emulator: real cgroups, real OOM kills, real CPU quotas."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.tools.emulator.cgroups import CGROUP_ROOT, PARENT_PREFIX, probe

Start = Callable[..., Emulator]
Make = Callable[..., FunctionConfig]
ClientFor = Callable[..., Any]

_HOST = probe()
pytestmark = pytest.mark.skipif(
    not _HOST.usable, reason=f"needs root and writable cgroup controllers: {_HOST.reason}"
)
# A quota caps CPU time; other load on the machine can only lower what a busy loop gets.
TOLERANCE = 0.15
ATTEMPTS = 5


def invoke(client: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    body = response["Payload"].read()
    return response, json.loads(body) if body else None


def emulator_cgroups(pid: int) -> list[Path]:
    """Every cgroup directory an emulator process made, in any controller."""
    return [p for p in CGROUP_ROOT.glob(f"*/**/{PARENT_PREFIX}{pid}") if p.is_dir()]


def test_an_environment_over_its_memory_is_killed_and_reported_as_lambda_does(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("hog_memory", memory_mb=128, timeout_s=20))
    client = lambda_client_for(emu)

    response, error = invoke(client, "hog-memory", {"mb": 512}, LogType="Tail")
    _, after = invoke(client, "hog-memory", {"mb": 16})

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.OutOfMemory"
    request_id = response["ResponseMetadata"]["RequestId"]
    assert error["errorMessage"] == (
        f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    )
    log = base64.b64decode(response["LogResult"]).decode()
    assert "Memory Size: 128 MB\tMax Memory Used: 128 MB" in log
    assert "Status: error\tError Type: Runtime.OutOfMemory" in log
    assert after["held_mb"] == 16
    stats = emu.stats("hog-memory")
    first, second = stats.environments
    assert first.end_reason == "out_of_memory" and second.end_reason is None
    assert stats.cold_starts == 2
    assert stats.invocations[0].max_memory_used_mb == 128
    assert stats.invocations[0].error_type == "Runtime.OutOfMemory"
    assert first.resources is not None and first.resources.confined


def test_running_out_of_memory_during_init_is_an_init_error_of_its_own(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    fn = make_function("hog_memory", memory_mb=128, env={"HOG_AT_INIT_MB": "512"})
    emu = start_emulator(fn)
    client = lambda_client_for(emu)

    response, error = invoke(client, "hog-memory", LogType="Tail")

    assert error["errorType"] == "Runtime.OutOfMemory"
    log = base64.b64decode(response["LogResult"]).decode()
    assert "Phase: init\tStatus: error\tError Type: Runtime.OutOfMemory" in log
    assert emu.stats("hog-memory").environments[0].end_reason == "out_of_memory"


def test_a_timeout_kill_is_not_mistaken_for_running_out_of_memory(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(make_function("crash"))
    client = lambda_client_for(emu)

    _, error = invoke(client, "crash", {"crash": "kill"})

    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")


def _vcpus(client: Any, name: str, seconds: float = 2.0) -> float:
    _, answer = invoke(client, name, {"seconds": seconds, "threads": 2})
    return float(answer["vcpus"])


def _within(measured: list[float], quota: float) -> bool:
    return any(abs(v - quota) <= TOLERANCE * quota for v in measured)


@pytest.mark.slow
@pytest.mark.parametrize("memory_mb", [1769, 884])
def test_a_busy_environment_gets_the_cpu_share_of_its_memory_size(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, memory_mb: int
) -> None:
    quota = memory_mb / 1769
    if quota * (1 - TOLERANCE) > len(os.sched_getaffinity(0)):
        pytest.skip(f"needs {quota:.2f} cores")
    emu = start_emulator(make_function("cpu_burn", memory_mb=memory_mb, timeout_s=30))
    client = lambda_client_for(emu)
    assert emu.resource_model("cpu-burn").vcpus == pytest.approx(quota)

    # Other work on the machine can only take CPU away, so no try may exceed the quota.
    # A try below it is the quota's fault only if the cgroup throttled it meanwhile; an
    # unthrottled low try means the machine was busy, and is tried again.
    invoke(client, "cpu-burn", {"seconds": 0.05})
    (env,) = emu.environments("cpu-burn")
    measured: list[float] = []
    busy: list[float] = []
    while len(measured) < ATTEMPTS and not _within(measured, quota):
        before = emu.cpu_stat(env.env_id).get("nr_throttled", 0)
        vcpus = _vcpus(client, "cpu-burn")
        throttled = emu.cpu_stat(env.env_id).get("nr_throttled", 0) - before
        measured.append(vcpus)
        assert vcpus <= quota * (1 + TOLERANCE), measured
        if vcpus < quota * (1 - TOLERANCE):
            assert throttled == 0, f"held at {vcpus:.2f} of {quota:.2f} vCPU by its own quota"
            busy.append(vcpus)
        else:
            # Reaching the quota with two threads that want two cores takes throttling.
            assert throttled > 0, (measured, emu.cpu_stat(env.env_id))

    if not _within(measured, quota):
        pytest.skip(f"the machine was too busy to show {quota:.2f} vCPU: got {busy}")


@pytest.mark.slow
def test_without_confinement_the_same_loop_uses_more_than_the_quota(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    """The control: the handler can exceed half a vCPU, so the quota is what held it there."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores")
    emu = start_emulator(make_function("cpu_burn", memory_mb=884, timeout_s=30), confine=False)
    client = lambda_client_for(emu)

    model = emu.resource_model("cpu-burn")
    measured = [_vcpus(client, "cpu-burn")]
    if measured[0] <= 0.5 * (1 + TOLERANCE):
        measured.append(_vcpus(client, "cpu-burn"))

    assert not model.confined and model.memory_limit_mb is None
    assert max(measured) > 0.5 * (1 + TOLERANCE), measured


@pytest.mark.slow
def test_burst_init_runs_on_two_vcpus_and_invokes_on_the_share(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores")
    fn = make_function(
        "cpu_burn",
        memory_mb=884,
        timeout_s=30,
        init_timeout_s=10,
        init_cpu="burst",
        env={"CPU_BURN_AT_INIT_S": "1.5"},
    )
    emu = start_emulator(fn)
    client = lambda_client_for(emu)

    _, answer = invoke(client, "cpu-burn", {"seconds": 1.5, "threads": 2})

    model = emu.resource_model("cpu-burn")
    assert (model.init_vcpus, model.vcpus) == (2.0, pytest.approx(0.5, abs=0.01))
    assert answer["init_vcpus"] > 0.5 * (1 + TOLERANCE), answer
    assert answer["vcpus"] <= 0.5 * (1 + TOLERANCE), answer


def test_environments_run_on_the_cores_they_are_given(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    core = max(os.sched_getaffinity(0))
    emu = start_emulator(make_function("cpu_burn", memory_mb=1769), cpus=[core])
    client = lambda_client_for(emu)

    _, answer = invoke(client, "cpu-burn", {"seconds": 0.1, "threads": 1})

    assert answer["cores"] == [core]
    assert emu.resource_model("cpu-burn").cpus == (core,)


def test_cgroups_are_removed_when_the_emulator_stops(
    make_function: Make, lambda_client_for: ClientFor, tmp_path: Path
) -> None:
    emu = Emulator([make_function("spawn_child")], workdir=tmp_path / "emu", cpus=[0]).start()
    try:
        client = lambda_client_for(emu)
        _, answer = invoke(client, "spawn-child")
        made = emulator_cgroups(os.getpid())
        child_cgroups = Path(f"/proc/{answer['child']}/cgroup").read_text()
    finally:
        emu.close()

    assert made, "the emulator made no cgroup"
    assert f"{PARENT_PREFIX}{os.getpid()}/env-" in child_cgroups
    assert emulator_cgroups(os.getpid()) == []
    assert not Path(f"/proc/{answer['child']}").exists() or _zombie(answer["child"])


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_dead_emulators_cgroups_are_cleaned_at_start(make_function: Make, tmp_path: Path) -> None:
    # A pid that cannot be running: above the kernel's limit.
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    stale = CGROUP_ROOT / "cpu" / f"{PARENT_PREFIX}{dead}"
    (stale / "env-left-over-1").mkdir(parents=True)
    try:
        with Emulator([make_function("echo")], workdir=tmp_path / "emu"):
            assert not stale.exists()
    finally:
        if stale.exists():
            for d in (stale / "env-left-over-1", stale):
                d.rmdir()
