"""The warmer on the local Lambda, through boto3's `lambda` client: N distinct environments
warm, proven by the emulator's own records, and every failure reported, never looped on."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.warm.engine import NOT_FOUND, THROTTLED, Target, warm_all, warm_target

HANDLERS = Path(__file__).resolve().parent / "handlers_warm"
WARMER_DIR = Path(__file__).resolve().parents[2] / "functions" / "warmer"

MakeFn = Callable[..., FunctionConfig]


@pytest.fixture
def warm_fn(make_function: MakeFn) -> MakeFn:
    def make(module: str = "warm_app", **config: Any) -> FunctionConfig:
        config.setdefault("name", "warm")
        return make_function(module, code_dir=HANDLERS, handler=f"{module}.handler", **config)

    return make


def _invoke(client: Any, name: str, event: object) -> Any:
    response = client.invoke(FunctionName=name, Payload=orjson.dumps(event))
    return orjson.loads(response["Payload"].read())


def _live(emu: Emulator, name: str = "warm") -> set[str]:
    return {e.log_stream for e in emu.stats(name).live_environments}


def _alias_live(emu: Emulator, name: str = "warm") -> Emulator:
    """Version 1 of `name` behind the alias `live`: as on Lambda, `name:live` exists only then."""
    version = emu.publish_version(name)
    emu.versions(name).create_alias("live", version.number)
    return emu


@pytest.mark.parametrize("n", [1, 4, 10])
def test_one_cycle_warms_n_environments_that_then_serve_n_requests_warm(
    n: int, start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = _alias_live(start_emulator(warm_fn(), max_concurrency=16))
    client = lambda_client_for(emu)

    report = warm_target(client, "warm", "live", n)

    assert report.ok, report.reason
    assert report.warm == n == len(set(report.environment_ids))
    stats = emu.stats("warm")
    assert len(stats.live_environments) == n
    assert report.cold_starts == stats.cold_starts == n

    # N real requests at once, each busy long enough that they must all overlap.
    with cf.ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda _: _invoke(client, "warm:live", {"busy_ms": 300}), range(n)))
    assert {a["environment_id"] for a in answers} == set(report.environment_ids)
    after = emu.stats("warm")
    assert after.cold_starts == n  # none of the real requests started an environment
    assert sum(1 for i in after.invocations[-n:] if i.cold) == 0
    assert {a["log_stream"] for a in answers} == _live(emu)


def test_a_cycle_over_warm_environments_causes_no_cold_start(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = start_emulator(warm_fn())
    client = lambda_client_for(emu)
    first = warm_target(client, "warm", None, 4)
    second = warm_target(client, "warm", None, 4, previous=first.environment_ids)
    assert first.ok and second.ok
    assert second.cold_starts == 0
    assert set(second.environment_ids) == set(first.environment_ids)
    assert second.new_environments == [] and second.lost_environments == []
    stats = emu.stats("warm")
    assert stats.cold_starts == 4 and len(stats.environments) == 4


class SpreadClient:
    """Sends the k-th ping of each round k * gap_s late: a spread wider than a short hold."""

    def __init__(self, client: Any, gap_s: float) -> None:
        self.client = client
        self.gap_s = gap_s
        self.sent: dict[int, int] = {}
        self.lock = threading.Lock()

    def invoke(self, **kwargs: Any) -> Any:
        rnd = orjson.loads(kwargs["Payload"])["preheat"]["warm"]["round"]
        with self.lock:
            k = self.sent[rnd] = self.sent.get(rnd, -1) + 1
        time.sleep(k * self.gap_s)
        return self.client.invoke(**kwargs)


def test_pings_spread_wider_than_the_hold_converge_in_later_rounds(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = start_emulator(warm_fn())
    client = lambda_client_for(emu)
    assert warm_target(client, "warm", None, 4).ok
    # Warm environments answer a 100 ms hold long before the last ping (at 300 ms) arrives.
    report = warm_target(SpreadClient(client, 0.1), "warm", None, 4, hold_ms=100, max_rounds=6)
    assert report.ok, report.reason
    assert report.round_details[0].distinct < 4 and report.rounds > 1
    assert report.round_details[-1].distinct == 4
    stats = emu.stats("warm")
    assert len(stats.environments) == 4 and stats.cold_starts == 4  # no extra environment


def test_reserved_concurrency_below_n_reports_the_shortfall(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = start_emulator(warm_fn(reserved_concurrency=3))
    client = lambda_client_for(emu)
    report = warm_target(client, "warm", None, 6, max_rounds=10)
    assert not report.ok
    assert report.warm == 3 and report.shortfall == 3
    assert report.errors.get(THROTTLED, 0) >= 3
    assert report.reason is not None and "throttled" in report.reason
    assert report.rounds <= 2  # it stopped; it did not spend its ten rounds
    stats = emu.stats("warm")
    assert len(stats.environments) == 3
    assert stats.throttles == report.errors[THROTTLED]


def test_an_environment_gone_between_cycles_is_replaced_and_reported(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = start_emulator(warm_fn())
    client = lambda_client_for(emu)
    first = warm_target(client, "warm", None, 3)
    victim = emu.stats("warm").live_environments[0]
    assert emu.kill_environment(victim.env_id)

    second = warm_target(client, "warm", None, 3, previous=first.environment_ids)

    assert second.ok and second.warm == 3
    assert second.cold_starts == 1
    assert len(second.lost_environments) == 1 and len(second.new_environments) == 1
    assert second.lost_environments[0] in first.environment_ids
    live = _live(emu)
    assert len(live) == 3 and victim.log_stream not in live


def test_environments_reaped_while_idle_are_all_replaced(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    skew = [0.0]
    emu = start_emulator(
        warm_fn(idle_timeout_s=600), clock=lambda: time.monotonic() + skew[0], reap_interval_s=600
    )
    client = lambda_client_for(emu)
    first = warm_target(client, "warm", None, 2)
    # Ten idle minutes pass on the emulator's clock: the reaper retires both environments.
    skew[0] += 601
    assert len(emu.reap_idle()) == 2
    second = warm_target(client, "warm", None, 2, previous=first.environment_ids)
    assert second.ok and second.cold_starts == 2
    assert sorted(second.lost_environments) == sorted(first.environment_ids)
    assert set(second.new_environments) == set(second.environment_ids)
    assert len(_live(emu)) == 2


def test_hold_cap_holds_against_a_ping_asking_for_an_hour(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = start_emulator(warm_fn(env={"PREHEAT_WARM_HOLD_CAP_MS": "300"}, timeout_s=5.0))
    client = lambda_client_for(emu)
    answer = _invoke(client, "warm", {"preheat": {"warm": {"hold_ms": 3_600_000}}})
    warm = answer["preheat"]["warm"]
    assert warm["hold_cap_ms"] == 300
    assert 300 <= warm["held_ms"] < 1500  # the cap, not the hour; slack for a busy host
    record = emu.stats("warm").invocations[-1]
    assert record.outcome == "success" and record.duration_ms < 2000


def test_hold_ends_before_the_function_times_out(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = start_emulator(warm_fn(env={"PREHEAT_WARM_HOLD_CAP_MS": "60000"}, timeout_s=1.0))
    client = lambda_client_for(emu)
    warm = _invoke(client, "warm", {"preheat": {"warm": {"hold_ms": 3_600_000}}})
    assert warm["preheat"]["warm"]["held_ms"] < 1000
    assert emu.stats("warm").invocations[-1].outcome == "success"
    # The environment lived through it and answers again without a cold start.
    _invoke(client, "warm", {"preheat": {"warm": {}}})
    assert emu.stats("warm").cold_starts == 1


def test_malformed_ping_gets_an_error_and_the_environment_lives(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = start_emulator(warm_fn())
    client = lambda_client_for(emu)
    response = client.invoke(
        FunctionName="warm", Payload=b'{"preheat": {"warm": {"hold_ms": "long"}}}'
    )
    assert "FunctionError" not in response
    warm = orjson.loads(response["Payload"].read())["preheat"]["warm"]
    assert warm["error"].startswith("hold_ms=")
    assert _invoke(client, "warm", {})["environment_id"] == warm["environment_id"]
    assert emu.stats("warm").cold_starts == 1


def test_a_missing_target_does_not_stop_the_others(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    emu = _alias_live(start_emulator(warm_fn()))
    client = lambda_client_for(emu)
    reports = warm_all(client, [Target("nope", "live", 2), Target("warm", "live", 2)])
    assert reports[0].errors == {NOT_FOUND: 2} and reports[0].rounds == 1
    assert reports[0].reason is not None and "not found" in reports[0].reason
    assert reports[1].ok and len(_live(emu)) == 2


def test_budget_is_kept_when_targets_are_slow_to_start(
    start_emulator: Callable[..., Emulator], warm_fn: MakeFn, lambda_client_for: Any
) -> None:
    slow = warm_fn("slow_warm_app", init_timeout_s=20.0, env={"SLOW_INIT_S": "8"})
    emu = start_emulator(slow)
    client = lambda_client_for(emu)
    report = warm_target(client, "warm", None, 1, budget_s=1.0)
    assert not report.ok and report.duration_s < 3.0
    assert report.reason is not None and "budget" in report.reason


def _warmer(make_function: MakeFn, emu_url: str, **env: str) -> FunctionConfig:
    return make_function(
        "app",
        name="warmer",
        code_dir=WARMER_DIR,
        handler="app.handler",
        memory_mb=256,
        timeout_s=4.0,
        # Lambda hands a function its role's credentials; these dummy ones suit the emulator.
        env={
            "AWS_ENDPOINT_URL_LAMBDA": emu_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            **env,
        },
    )


def _warmer_emulator(
    start_emulator: Callable[..., Emulator],
    fns: list[FunctionConfig],
    make_function: MakeFn,
    **env: str,
) -> Emulator:
    # The warmer must know the emulator's address before it starts: reserve the port first.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    return start_emulator(*fns, _warmer(make_function, url, **env), port=port)


def test_warmer_function_warms_targets_from_its_event_and_reports_metrics(
    start_emulator: Callable[..., Emulator],
    warm_fn: MakeFn,
    make_function: MakeFn,
    lambda_client_for: Any,
) -> None:
    emu = _alias_live(_warmer_emulator(start_emulator, [warm_fn()], make_function))
    client = lambda_client_for(emu)
    event = {
        "targets": [
            {"function": "warm", "qualifier": "live", "concurrency": 3},
            {"function": "gone", "concurrency": 1},
        ]
    }
    response = client.invoke(FunctionName="warmer", Payload=orjson.dumps(event), LogType="Tail")
    result = orjson.loads(response["Payload"].read())
    assert "FunctionError" not in response, result
    assert result["ok"] is False
    warm, gone = result["targets"]
    assert warm["ok"], (warm["reason"], warm["errors"])
    assert warm["warm"] == 3 and warm["cold_starts"] == 3
    assert gone["errors"] == {"not_found": 1}
    assert len(_live(emu)) == 3
    log = base64.b64decode(response["LogResult"]).decode()
    metrics = [orjson.loads(line) for line in log.splitlines() if line.startswith('{"_aws"')]
    by_target = {m["target"]: m for m in metrics}
    assert by_target["warm:live"]["WarmEnvironments"] == [3.0]
    assert by_target["warm:live"]["Shortfall"] == [0.0]
    assert by_target["gone"]["Shortfall"] == [1.0]

    # A second cycle: the same environments, no cold start, and the report says so.
    again = orjson.loads(
        client.invoke(FunctionName="warmer", Payload=orjson.dumps(event))["Payload"].read()
    )["targets"][0]
    assert again["cold_starts"] == 0 and again["new_environments"] == []
    assert sorted(again["environment_ids"]) == sorted(warm["environment_ids"])


def test_warmer_function_falls_back_to_its_environment_and_keeps_its_timeout(
    start_emulator: Callable[..., Emulator],
    warm_fn: MakeFn,
    make_function: MakeFn,
    lambda_client_for: Any,
) -> None:
    slow = warm_fn("slow_warm_app", name="slow", init_timeout_s=20.0, env={"SLOW_INIT_S": "8"})
    emu = _warmer_emulator(
        start_emulator, [warm_fn(), slow], make_function, PREHEAT_WARM_TARGETS="warm=2,slow=1"
    )
    client = lambda_client_for(emu)
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    response = client.invoke(FunctionName="warmer", Payload=orjson.dumps(scheduled))
    result = orjson.loads(response["Payload"].read())
    assert "FunctionError" not in response, result
    warm, slow_report = result["targets"]
    assert warm["ok"] and warm["warm"] == 2
    assert not slow_report["ok"] and "budget" in slow_report["reason"]
    assert emu.stats("warmer").invocations[-1].outcome == "success"


def test_warmer_function_refuses_bad_targets_in_one_line(
    start_emulator: Callable[..., Emulator],
    warm_fn: MakeFn,
    make_function: MakeFn,
    lambda_client_for: Any,
) -> None:
    emu = _warmer_emulator(start_emulator, [warm_fn()], make_function)
    client = lambda_client_for(emu)
    response = client.invoke(FunctionName="warmer", Payload=b'{"targets": "warm=lots"}')
    result = orjson.loads(response["Payload"].read())
    assert result["ok"] is False and "warm=lots" in result["error"]
    assert emu.stats("warm").invocations == ()
