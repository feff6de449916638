"""The INIT budget: the setting, when it applies, handing a load back and waiting for it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from preheat import constants as c
from preheat.exceptions import ConfigurationError, LoadError, ModelNotReady
from preheat.serving import budget
from preheat.settings import Settings
from preheat.warm import warm_handler
from preheat.warm.state import EnvironmentState

ON_DEMAND = {c.ENV_LAMBDA_INIT_TYPE: "on-demand"}


class Recorder:
    """The observer: what the function would log and publish."""

    def __init__(self) -> None:
        self.failed: list[BaseException] = []
        self.done: list[dict[str, Any]] = []

    def init_failed(self, exc: BaseException) -> None:
        self.failed.append(exc)

    def load_done(self, report: Mapping[str, Any]) -> None:
        self.done.append(dict(report))


class Context:
    aws_request_id = "req-1"
    function_name = "inference"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:inference"

    def __init__(self, remaining_ms: float = 30_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_ms)


def _gated(result: object = "model") -> tuple[threading.Event, Any]:
    """A load that runs until the event is set."""
    gate = threading.Event()

    def load() -> object:
        assert gate.wait(30)
        if isinstance(result, BaseException):
            raise result
        return result

    return gate, load


def _report(value: object) -> dict[str, Any]:
    return {"name": str(value), "load_s": 0.5}


def _start(load: Any, budget_s: float, env: Mapping[str, str] = ON_DEMAND) -> Any:
    return budget.load_in_init(
        load,
        observer=REC,
        report_of=_report,
        init_started=time.monotonic(),
        what="s3://bucket/store/models/m/1",
        settings=Settings(init_budget_s=budget_s),
        env=env,
    )


REC = Recorder()


@pytest.fixture(autouse=True)
def _fresh_recorder() -> Iterator[None]:
    REC.failed.clear()
    REC.done.clear()
    yield
    # load_in_init records the process's load for the warm ping; a test's load must not
    # be the one the next test's pings see.
    budget._current = None


# ---------------------------------------------------------------------------- the setting


def test_the_budget_defaults_under_lambdas_init_limit_and_reads_its_variable() -> None:
    assert 0 < Settings().init_budget_s < c.LAMBDA_INIT_LIMIT_S
    assert Settings.from_env({c.ENV_INIT_BUDGET_S: "7.5"}).init_budget_s == 7.5
    assert Settings.from_env({c.ENV_INIT_BUDGET_S: "0"}).init_budget_s == 0.0
    assert Settings.from_env({}, init_budget_s=3).init_budget_s == 3


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "ten", "901"])
def test_a_bad_budget_variable_names_itself_and_what_is_allowed(raw: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env({c.ENV_INIT_BUDGET_S: raw})
    assert err.value.name == c.ENV_INIT_BUDGET_S and err.value.value == raw
    assert "\n" not in str(err.value) and "seconds" in str(err.value)


def test_a_bad_budget_argument_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"init_budget_s=-2 is not valid: use seconds"):
        Settings(init_budget_s=-2)


@pytest.mark.parametrize(
    ("budget_s", "init_type", "expected"),
    [
        (9.0, "on-demand", 9.0),
        (9.0, None, 9.0),
        (0.0, "on-demand", None),
        # The snapshot must hold the loaded model; provisioned INIT is frozen afterwards.
        (9.0, "snap-start", None),
        (9.0, "provisioned-concurrency", None),
    ],
)
def test_when_the_budget_applies(budget_s: float, init_type: str | None, expected: Any) -> None:
    env = {} if init_type is None else {c.ENV_LAMBDA_INIT_TYPE: init_type}
    assert budget.budget_for(Settings(init_budget_s=budget_s), env) == expected


# ---------------------------------------------------------------------------- INIT


def test_a_load_within_the_budget_ends_in_init() -> None:
    load = _start(lambda: "model", 5.0)

    assert load.handed_back is False and load.loading is False
    assert load.report["handed_back"] is False and load.report["init_budget_s"] == 5.0
    assert load.report["name"] == "model" and load.report["background_load_s"] >= 0
    assert load.get(Context()) == "model"
    assert REC.done == []  # everything was in the init report already


def test_a_load_failing_within_the_budget_fails_init_with_its_own_error() -> None:
    def failing() -> object:
        raise LoadError("no signature 'x'")

    with pytest.raises(LoadError, match="no signature"):
        _start(failing, 5.0)


def test_a_slow_load_is_handed_back_at_the_budget_and_the_invoke_waits_for_it() -> None:
    gate, slow = _gated()
    load = _start(slow, 0.05)

    assert load.handed_back and load.loading
    assert load.report == {"init_budget_s": 0.05, "handed_back": True}
    threading.Timer(0.2, gate.set).start()
    assert load.get(Context()) == "model"
    assert load.loading is False
    (late,) = REC.done
    assert late["handed_back"] is True and late["name"] == "model"
    assert late["background_load_s"] >= late["load_after_init_s"] > 0
    # The same dict: the function's INIT_REPORT is completed in place.
    assert load.report == late
    load.get(Context())
    assert len(REC.done) == 1


def test_without_a_budget_init_waits_for_the_load() -> None:
    gate, slow = _gated()
    threading.Timer(0.2, gate.set).start()
    load = _start(slow, 0.0)
    assert load.handed_back is False and load.report["init_budget_s"] is None


@pytest.mark.parametrize("init_type", ["snap-start", "provisioned-concurrency"])
def test_with_snapstart_or_provisioned_init_ends_with_the_model_loaded(init_type: str) -> None:
    gate, slow = _gated()
    threading.Timer(0.2, gate.set).start()
    load = _start(slow, 0.01, {c.ENV_LAMBDA_INIT_TYPE: init_type})
    assert load.handed_back is False and load.loading is False
    assert load.report["init_budget_s"] is None and load.report["name"] == "model"


def test_an_invoke_short_of_time_says_the_model_is_still_loading_and_the_next_waits() -> None:
    gate, slow = _gated()
    load = _start(slow, 0.01)

    with pytest.raises(ModelNotReady) as err:
        load.get(Context(remaining_ms=c.LOAD_WAIT_MARGIN_MS + 50))
    assert err.value.uri == "s3://bucket/store/models/m/1"
    assert "still loading" in str(err.value) and "raise the function's timeout" in str(err.value)
    gate.set()
    assert load.get(Context()) == "model"


def test_a_load_failing_after_init_raises_its_init_error_outside_lambda() -> None:
    gate, failing = _gated(LoadError("signature 'serving_default' does not match"))
    load = _start(failing, 0.01)
    gate.set()

    with pytest.raises(LoadError, match="does not match"):
        load.get(Context())
    assert [str(e) for e in REC.failed] == ["signature 'serving_default' does not match"]


# ---------------------------------------------------------------------------- on Lambda


class _RuntimeApi(BaseHTTPRequestHandler):
    posts: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def runtime_api() -> Iterator[str]:
    """A stand-in for the Lambda Runtime API that records what is posted to it."""
    _RuntimeApi.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_on_lambda_a_failed_load_is_the_invocations_error_then_the_runtime_exits(
    runtime_api: str,
) -> None:
    gate, failing = _gated(LoadError("signature 'serving_default' does not match"))
    load = _start(failing, 0.01, {**ON_DEMAND, "AWS_LAMBDA_RUNTIME_API": runtime_api})
    gate.set()

    with pytest.raises(SystemExit) as exited:
        load.get(Context())

    assert exited.value.code == 1
    ((path, headers, body),) = _RuntimeApi.posts
    assert path == "/2018-06-01/runtime/invocation/req-1/error"
    assert headers["Lambda-Runtime-Function-Error-Type"] == "Unhandled"
    assert body["errorType"] == "LoadError" and body["requestId"] == "req-1"
    assert body["errorMessage"] == "signature 'serving_default' does not match"
    assert len(REC.failed) == 1


def test_an_unreachable_runtime_api_still_ends_the_environment() -> None:
    gate, failing = _gated(LoadError("broken"))
    load = _start(failing, 0.01, {**ON_DEMAND, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9"})
    gate.set()
    with pytest.raises(SystemExit):
        load.get(Context())


# ---------------------------------------------------------------------------- warm pings


def test_a_warm_ping_answers_at_once_while_the_model_loads_and_says_so() -> None:
    gate, slow = _gated()
    load = _start(slow, 0.01)
    state = EnvironmentState(env={}, process_age=lambda: 0.0)
    calls: list[object] = []

    @warm_handler(hold_cap_ms=0, state=state, load=lambda: load)
    def handler(event: Any, context: Any) -> Any:
        calls.append(event)
        return "predicted"

    ping = handler({"preheat": {"warm": {}}}, Context())
    assert ping["preheat"]["warm"]["loading"] is True and calls == []
    gate.set()
    load.get(Context())
    ping = handler({"preheat": {"warm": {}}}, Context())
    assert ping["preheat"]["warm"]["loading"] is False
    # Everything else the answer carried before is still there.
    assert {"environment_id", "init_ms", "first_call", "cold", "held_ms"} <= set(
        ping["preheat"]["warm"]
    )


def test_a_warm_ping_after_a_failed_load_fails_like_a_request() -> None:
    gate, failing = _gated(LoadError("broken"))
    load = _start(failing, 0.01)
    gate.set()
    while load.loading:  # the ping must find it failed, not still running
        time.sleep(0.01)

    @warm_handler(hold_cap_ms=0, state=EnvironmentState(env={}), load=lambda: load)
    def handler(event: Any, context: Any) -> Any:
        return "predicted"

    with pytest.raises(LoadError, match="broken"):
        handler({"preheat": {"warm": {}}}, Context())


def test_a_warm_ping_without_any_load_says_it_is_not_loading() -> None:
    @warm_handler(hold_cap_ms=0, state=EnvironmentState(env={}), load=lambda: None)
    def handler(event: Any, context: Any) -> Any:
        return "predicted"

    assert handler({"preheat": {"warm": {}}}, Context())["preheat"]["warm"]["loading"] is False
