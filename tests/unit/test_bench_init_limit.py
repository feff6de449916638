"""The bench's INIT rule: the option, what the functions get, and what the summary says."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from preheat import constants as c
from preheat.exceptions import ConfigurationError
from preheat.tools.bench import initlimit, logs
from preheat.tools.bench.records import BenchResult, ColdStart, NetworkInfo, StrategyRun
from preheat.tools.bench.runner import FUNCTION_TIMEOUT_S, Options, _configs
from preheat.tools.bench.strategies import Deployment
from preheat.tools.bench.summary import result_dict, table
from preheat.tools.cli import bench as bench_cli


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    return tmp_path


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.register(parser)
    return parser.parse_args(list(argv))


# ---------------------------------------------------------------------------- the option


def test_the_option_defaults_to_lifted_and_takes_lambda(saved_model: Path) -> None:
    assert bench_cli.options_from(_parse("--model", str(saved_model))).init_limit == "lifted"
    args = _parse("--model", str(saved_model), "--init-limit", "lambda")
    assert bench_cli.options_from(args).init_limit == "lambda"


def test_the_cli_refuses_an_unknown_rule(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--init-limit", "strict")
    assert "--init-limit" in capsys.readouterr().err


def test_options_name_the_flag_and_the_rules(saved_model: Path) -> None:
    with pytest.raises(ConfigurationError) as err:
        Options(model=saved_model, init_limit="strict")
    assert str(err.value) == "--init-limit='strict' is not valid: use lambda or lifted"


def test_each_rule_sets_the_init_limit_and_the_budget_of_every_function(tmp_path: Path) -> None:
    plans = {
        "baseline": Deployment(tmp_path, "app.handler", {"X": "1"}),
        # A strategy that sets its own budget keeps it.
        "preheat-tf": Deployment(tmp_path, "app.handler", {c.ENV_INIT_BUDGET_S: "5"}),
    }
    lifted, names = _configs(plans, 1, 0, 1769, initlimit.rule("lifted"))
    assert names == {"baseline": ["baseline-0"], "preheat-tf": ["preheat-tf-0"]}
    assert [f.init_timeout_s for f in lifted] == [120.0, 120.0]
    assert lifted[0].env == {"X": "1", c.ENV_INIT_BUDGET_S: "0"}
    assert lifted[1].env[c.ENV_INIT_BUDGET_S] == "5"

    under_lambda, _ = _configs(plans, 1, 0, 1769, initlimit.rule("lambda"))
    assert [f.init_timeout_s for f in under_lambda] == [c.LAMBDA_INIT_LIMIT_S] * 2
    assert under_lambda[0].env == {"X": "1"}  # the function's budget as deployed
    assert all(f.timeout_s == FUNCTION_TIMEOUT_S for f in under_lambda)


def test_a_timed_out_init_is_read_from_the_log() -> None:
    cut = (
        "INIT_START Runtime Version: python:3.11 (preheat emulator)\n"
        "INIT_REPORT Init Duration: 10000.31 ms\tPhase: init\tStatus: timeout\n"
        "START RequestId: r Version: $LATEST\n"
    )
    assert logs.init_timed_out(cut) is True
    assert logs.init_timed_out("INIT_START x\nSTART RequestId: r\nREPORT RequestId: r\n") is False


# ---------------------------------------------------------------------------- the summary


def _cold(strategy: str, i: int, init: float | None, **kw: object) -> ColdStart:
    return ColdStart(
        strategy=strategy,
        index=i,
        environment=f"{strategy}-{i}",
        init_ms=init,
        first_response_ms=(init or 25_000.0) + 100,
        phases_ms={"import": 1000.0},
        warm_ms=[10.0],
        **kw,  # type: ignore[arg-type]
    )


def _result(rule: str | None, baseline: list[ColdStart], fast: list[ColdStart]) -> BenchResult:
    base = StrategyRun("baseline", "b")
    base.cold_starts = baseline
    tf = StrategyRun("preheat-tf", "p")
    tf.cold_starts = fast
    settings: dict[str, object] = {"cold_starts": 2}
    if rule is not None:
        settings["init_limit"] = initlimit.rule(rule).describe()
    return BenchResult(
        created="t",
        model={"name": "m"},
        network=NetworkInfo("loopback", False),
        settings=settings,
        strategies=[base, tf],
        bursts=[],
    )


def test_under_lambdas_rule_retried_inits_count_as_past_the_limit() -> None:
    result = _result(
        "lambda",
        [_cold("baseline", 0, None, init_retried=True), _cold("baseline", 1, 8000.0)],
        [_cold("preheat-tf", i, 9000.0, init_handed_back=True) for i in range(2)],
    )
    doc = orjson.loads(orjson.dumps(result_dict(result)))

    assert doc["settings"]["init_limit"] == {
        "rule": "lambda",
        "init_timeout_s": 10.0,
        "retried_in_invoke": True,
        "init_budget": "as deployed",
    }
    by_name = {s["name"]: s["summary"] for s in doc["strategies"]}
    assert by_name["baseline"]["init_over_limit"] == 1
    assert by_name["baseline"]["init_retried"] == 1
    assert by_name["preheat-tf"]["init_over_limit"] == 0
    assert by_name["preheat-tf"]["init_handed_back"] == 2
    text = table(doc)
    assert "INIT rule: lambda" in text
    assert "cut off and retried in the invoke: baseline 1 of 2, preheat-tf 0 of 2" in text
    assert "handed back at preheat's budget" in text and "preheat-tf 2 of 2" in text


def test_under_the_lifted_rule_the_table_says_so_and_counts_what_lambda_would_cut() -> None:
    result = _result(
        "lifted",
        [_cold("baseline", 0, 12_000.0), _cold("baseline", 1, 8000.0)],
        [_cold("preheat-tf", i, 3000.0) for i in range(2)],
    )
    doc = result_dict(result)
    assert doc["settings"]["init_limit"]["rule"] == "lifted"
    assert doc["settings"]["init_limit"]["init_budget"] == "off"
    text = table(doc)
    assert "INIT rule: lifted" in text and "measured whole" in text
    assert "Lambda would have cut it off" in text
    # Zero is a result too: the count is shown for every strategy.
    assert "baseline 1 of 2, preheat-tf 0 of 2" in text
    assert "handed back" not in text


def test_results_written_before_the_rule_was_recorded_read_as_lifted() -> None:
    result = _result(None, [_cold("baseline", 0, 4000.0)], [_cold("preheat-tf", 0, 2000.0)])
    assert "INIT rule: lifted" in table(result_dict(result))
