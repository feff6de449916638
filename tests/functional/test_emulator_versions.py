"""Lambda's control plane in the emulator: versions, aliases and qualifiers, driven through
boto3's `lambda` client and the AWS CLI, with awslambdaric running each version's code."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from preheat.tools.emulator import Emulator, FunctionConfig
from preheat.warm.engine import warm_target

Start = Callable[..., Emulator]
Make = Callable[..., FunctionConfig]
ClientFor = Callable[..., Any]

ARN = "arn:aws:lambda:us-east-1:123456789012:function"
AWS_CLI = Path(sys.executable).with_name("aws")
HANDLERS_WARM = Path(__file__).resolve().parent / "handlers_warm"

# A handler whose answer names the code it runs, so an edit of the source is visible.
APP = """
import os

CODE = {code!r}


def handler(event, context):
    return {{
        "code": CODE,
        "event": event,
        "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
        "log_stream": context.log_stream_name,
        "arn": context.invoked_function_arn,
        "color": os.environ.get("COLOR"),
    }}
"""


def write_app(code_dir: Path, code: str) -> None:
    (code_dir / "app.py").write_text(APP.format(code=code))


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    write_app(path, "one")
    return path


@pytest.fixture
def app(make_function: Make, code_dir: Path) -> FunctionConfig:
    return make_function("app", code_dir=code_dir, handler="app.handler", env={"COLOR": "blue"})


def call(client: Any, name: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    return response, json.loads(response["Payload"].read())


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response: Any = exc.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


# -- qualifiers ------------------------------------------------------------------------


def test_an_unknown_version_or_alias_is_404_as_on_lambda(
    start_emulator: Start, app: FunctionConfig, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(app)
    client = lambda_client_for(emu)

    for name, kwargs, shown in (
        ("app", {"Qualifier": "7"}, "app:7"),
        ("app", {"Qualifier": "live"}, "app:live"),
        ("app:7", {}, "app:7"),
        (f"{ARN}:app:live", {}, "app:live"),
    ):
        with pytest.raises(ClientError) as exc:
            call(client, name, **kwargs)
        assert error_of(exc) == (
            404,
            "ResourceNotFoundException",
            f"Function not found: {ARN}:{shown}",
        )
    with pytest.raises(ClientError) as exc:
        call(client, "app:1", Qualifier="2")
    assert error_of(exc) == (
        400,
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
    )
    # Nothing ran for any of them; $LATEST spelled out still does.
    assert emu.stats("app").cold_starts == 0
    response, answer = call(client, "app", Qualifier="$LATEST")
    assert response["ExecutedVersion"] == "$LATEST" and answer["version"] == "$LATEST"
    assert answer["arn"] == f"{ARN}:app:$LATEST"


# -- versions --------------------------------------------------------------------------


def test_a_published_version_keeps_its_code_after_the_source_changes(
    start_emulator: Start, app: FunctionConfig, code_dir: Path, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(app)
    client = lambda_client_for(emu)

    v1 = client.publish_version(FunctionName="app", Description="first")
    write_app(code_dir, "two")
    v2 = client.publish_version(FunctionName="app")
    again = client.publish_version(FunctionName="app")  # nothing changed: no new version

    assert (v1["Version"], v1["FunctionArn"], v1["Description"]) == ("1", f"{ARN}:app:1", "first")
    assert v2["Version"] == again["Version"] == "2"
    assert v1["CodeSha256"] != v2["CodeSha256"] == again["CodeSha256"]
    assert v1["Environment"] == {"Variables": {"COLOR": "blue"}}
    answers = {}
    for qualifier in ("1", "2", "$LATEST"):
        response, answer = call(client, "app", Qualifier=qualifier, LogType="Tail")
        log = base64.b64decode(response["LogResult"]).decode()
        assert response["ExecutedVersion"] == answer["version"] == qualifier
        assert f"Version: {qualifier}\n" in log  # the START line
        assert f"/[{qualifier}]" in answer["log_stream"]
        assert answer["arn"] == f"{ARN}:app:{qualifier}"
        assert answer["color"] == "blue"
        answers[qualifier] = answer["code"]
    assert answers == {"1": "one", "2": "two", "$LATEST": "two"}
    # The source changes again: version 2 does not follow, a fresh $LATEST environment does.
    write_app(code_dir, "three")
    for env in emu.stats("app").environments:
        emu.kill_environment(env.env_id)
    assert call(client, "app:2")[1]["code"] == "two"
    assert call(client, "app")[1]["code"] == "three"
    # One pool per version: each version's environments run only its invokes.
    stats = emu.stats("app")
    assert sorted(e.version for e in stats.environments) == ["$LATEST", "$LATEST", "1", "2", "2"]
    assert all(f"/[{e.version}]" in e.log_stream for e in stats.environments)
    by_env = {e.env_id: e.version for e in stats.environments}
    assert [i.version for i in stats.invocations] == [by_env[i.env_id] for i in stats.invocations]
    versions = client.list_versions_by_function(FunctionName="app")["Versions"]
    assert [(v["Version"], v["FunctionArn"]) for v in versions] == [
        ("$LATEST", f"{ARN}:app:$LATEST"),
        ("1", f"{ARN}:app:1"),
        ("2", f"{ARN}:app:2"),
    ]
    assert (
        client.get_function_configuration(FunctionName="app", Qualifier="1")["CodeSha256"]
        == v1["CodeSha256"]
    )


def test_get_function_and_list_functions_answer_lambdas_shapes(
    start_emulator: Start, app: FunctionConfig, make_function: Make, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(app, make_function("echo", reserved_concurrency=3))
    client = lambda_client_for(emu)

    cfg = client.get_function_configuration(FunctionName="app")
    assert {k: cfg[k] for k in ("FunctionName", "FunctionArn", "Handler", "Version")} == {
        "FunctionName": "app",
        "FunctionArn": f"{ARN}:app",
        "Handler": "app.handler",
        "Version": "$LATEST",
    }
    assert cfg["Runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert (cfg["MemorySize"], cfg["Timeout"]) == (128, 5)
    assert (cfg["State"], cfg["LastUpdateStatus"], cfg["PackageType"]) == (
        "Active",
        "Successful",
        "Zip",
    )
    assert cfg["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    assert cfg["Architectures"][0] in ("x86_64", "arm64")
    assert len(base64.b64decode(cfg["CodeSha256"])) == 32
    full = client.get_function(FunctionName=f"{ARN}:echo")
    assert full["Configuration"]["FunctionName"] == "echo"
    assert full["Concurrency"] == {"ReservedConcurrentExecutions": 3}
    # The same code gives the same digest; $LATEST's revision follows its code.
    assert (
        client.get_function(FunctionName="app")["Configuration"]["RevisionId"] == cfg["RevisionId"]
    )

    page = client.list_functions(MaxItems=1)
    assert [f["FunctionName"] for f in page["Functions"]] == ["app"]
    rest = client.list_functions(Marker=page["NextMarker"])
    assert [f["FunctionName"] for f in rest["Functions"]] == ["echo"] and "NextMarker" not in rest
    client.publish_version(FunctionName="echo")
    every = client.list_functions(FunctionVersion="ALL")["Functions"]
    assert [(f["FunctionName"], f["Version"]) for f in every] == [
        ("app", "$LATEST"),
        ("echo", "$LATEST"),
        ("echo", "1"),
    ]
    with pytest.raises(ClientError) as exc:
        client.get_function(FunctionName="app", Qualifier="3")
    assert error_of(exc) == (404, "ResourceNotFoundException", f"Function not found: {ARN}:app:3")
    with pytest.raises(ClientError) as exc:
        client.get_function(FunctionName="nope")
    assert error_of(exc)[:2] == (404, "ResourceNotFoundException")


# -- aliases ---------------------------------------------------------------------------


def test_alias_operations_and_their_errors(
    start_emulator: Start, app: FunctionConfig, code_dir: Path, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(app)
    client = lambda_client_for(emu)
    client.publish_version(FunctionName="app")
    write_app(code_dir, "two")
    client.publish_version(FunctionName="app")

    live = client.create_alias(FunctionName="app", Name="live", FunctionVersion="1")
    assert (live["AliasArn"], live["FunctionVersion"], live["Description"]) == (
        f"{ARN}:app:live",
        "1",
        "",
    )
    response, answer = call(client, "app", Qualifier="live")
    assert response["ExecutedVersion"] == "1" and answer["code"] == "one"
    # The invoked ARN is the alias's, as on Lambda; the version runs underneath.
    assert answer["arn"] == f"{ARN}:app:live" and answer["version"] == "1"

    updated = client.update_alias(
        FunctionName="app",
        Name="live",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}},
        Description="canary",
    )
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.25}}
    assert updated["RevisionId"] != live["RevisionId"]
    got = client.get_alias(FunctionName="app", Name="live")
    got.pop("ResponseMetadata")
    updated.pop("ResponseMetadata")
    assert got == updated and got["Description"] == "canary"
    client.create_alias(FunctionName="app", Name="next", FunctionVersion="2")
    listed = client.list_aliases(FunctionName="app")["Aliases"]
    assert [(a["Name"], a["FunctionVersion"]) for a in listed] == [("live", "1"), ("next", "2")]
    only_2 = client.list_aliases(FunctionName="app", FunctionVersion="2")["Aliases"]
    assert [a["Name"] for a in only_2] == ["next"]

    attempts: list[tuple[Callable[[], object], tuple[int, str, str | None]]] = [
        (
            lambda: client.create_alias(FunctionName="app", Name="live", FunctionVersion="2"),
            (409, "ResourceConflictException", f"Alias already exists: {ARN}:app:live"),
        ),
        (
            lambda: client.create_alias(FunctionName="app", Name="x", FunctionVersion="9"),
            (404, "ResourceNotFoundException", f"Function not found: {ARN}:app:9"),
        ),
        (
            lambda: client.update_alias(
                FunctionName="app",
                Name="live",
                RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
            ),
            (
                400,
                "InvalidParameterValueException",
                "Invalid function version 1. Function version 1 is already included in "
                "routing configuration.",
            ),
        ),
        (
            lambda: client.create_alias(
                FunctionName="app",
                Name="y",
                FunctionVersion="$LATEST",
                RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
            ),
            (
                400,
                "InvalidParameterValueException",
                "$LATEST is not supported for an alias pointing to more than 1 version",
            ),
        ),
        (
            lambda: client.update_alias(FunctionName="app", Name="live", RevisionId="stale"),
            (412, "PreconditionFailedException", None),
        ),
        (
            lambda: client.create_alias(FunctionName="app", Name="12", FunctionVersion="1"),
            (400, "ValidationException", None),
        ),
        (
            lambda: client.get_alias(FunctionName="app", Name="gone"),
            (404, "ResourceNotFoundException", f"Cannot find alias arn: {ARN}:app:gone"),
        ),
    ]
    for attempt, expected in attempts:
        with pytest.raises(ClientError) as exc:
            attempt()
        status, code, message = error_of(exc)
        assert (status, code) == expected[:2], message
        assert expected[2] is None or message == expected[2]

    client.delete_alias(FunctionName="app", Name="live")
    with pytest.raises(ClientError) as exc:
        call(client, "app:live")
    assert error_of(exc) == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {ARN}:app:live",
    )
    assert [a["Name"] for a in client.list_aliases(FunctionName="app")["Aliases"]] == ["next"]


def test_alias_weights_follow_the_injected_random_source(
    start_emulator: Start, app: FunctionConfig, code_dir: Path, lambda_client_for: ClientFor
) -> None:
    draws: Iterator[float] = iter([0.10, 0.90, 0.29, 0.31, 0.0])
    emu = start_emulator(app, random_source=lambda: next(draws))
    client = lambda_client_for(emu)
    emu.publish_version("app")
    write_app(code_dir, "two")
    emu.publish_version("app")
    emu.versions("app").create_alias("live", "1", routing={"AdditionalVersionWeights": {"2": 0.3}})

    executed = [call(client, "app:live")[0]["ExecutedVersion"] for _ in range(5)]

    # A draw below the weight goes to the additional version.
    assert executed == ["2", "1", "2", "1", "2"]


def test_alias_weights_split_real_traffic(
    start_emulator: Start, app: FunctionConfig, code_dir: Path, lambda_client_for: ClientFor
) -> None:
    emu = start_emulator(app, random_source=random.Random(20261201).random)
    client = lambda_client_for(emu)
    client.publish_version(FunctionName="app")
    write_app(code_dir, "two")
    client.publish_version(FunctionName="app")
    client.create_alias(
        FunctionName="app",
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.2}},
    )
    n = 300

    codes = [call(client, "app", Qualifier="live")[1]["code"] for _ in range(n)]

    # Binomial(300, 0.2): mean 60, standard deviation 6.9; four of them either side.
    to_two = codes.count("two")
    assert 60 - 28 <= to_two <= 60 + 28, to_two
    assert codes.count("one") == n - to_two
    # Two warm environments served it all, one per version.
    assert emu.stats("app").cold_starts == 2


# -- the AWS CLI -----------------------------------------------------------------------


def aws(emu: Emulator, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "AWS_ENDPOINT_URL_LAMBDA": emu.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
    }
    return subprocess.run(
        [str(AWS_CLI), "lambda", *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.mark.skipif(not AWS_CLI.exists(), reason="the awscli package is not installed")
def test_the_aws_cli_drives_versions_and_aliases(
    start_emulator: Start, app: FunctionConfig, code_dir: Path, tmp_path: Path
) -> None:
    emu = start_emulator(app)
    out = tmp_path / "out.json"

    missing = aws(emu, tmp_path, "invoke", "--function-name", "app", "--qualifier", "7", str(out))
    assert missing.returncode != 0
    assert "(ResourceNotFoundException)" in missing.stderr
    assert f"Function not found: {ARN}:app:7" in missing.stderr

    assert ok(aws(emu, tmp_path, "publish-version", "--function-name", "app"))["Version"] == "1"
    write_app(code_dir, "two")
    assert ok(aws(emu, tmp_path, "publish-version", "--function-name", "app"))["Version"] == "2"
    created = ok(
        aws(emu, tmp_path, "create-alias", "--function-name", "app", "--name", "live",
            "--function-version", "1")
    )  # fmt: skip
    assert created["AliasArn"] == f"{ARN}:app:live"
    updated = ok(
        aws(emu, tmp_path, "update-alias", "--function-name", "app", "--name", "live",
            "--routing-config", '{"AdditionalVersionWeights": {"2": 0.5}}')
    )  # fmt: skip
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}
    got = ok(aws(emu, tmp_path, "get-alias", "--function-name", "app", "--name", "live"))
    assert got["RoutingConfig"] == updated["RoutingConfig"]
    listed = ok(aws(emu, tmp_path, "list-aliases", "--function-name", "app"))
    assert [a["Name"] for a in listed["Aliases"]] == ["live"]

    invoked = ok(
        aws(emu, tmp_path, "invoke", "--function-name", "app", "--qualifier", "live", str(out))
    )
    assert invoked["StatusCode"] == 200
    assert (
        invoked["ExecutedVersion"] == {"one": "1", "two": "2"}[json.loads(out.read_text())["code"]]
    )

    config = ok(aws(emu, tmp_path, "get-function", "--function-name", "app", "--qualifier", "1"))
    assert config["Configuration"]["Version"] == "1"
    versions = ok(aws(emu, tmp_path, "list-versions-by-function", "--function-name", "app"))
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1", "2"]
    functions = ok(aws(emu, tmp_path, "list-functions"))
    assert [f["FunctionName"] for f in functions["Functions"]] == ["app"]

    assert (
        ok(aws(emu, tmp_path, "delete-alias", "--function-name", "app", "--name", "live")) is None
    )
    gone = aws(emu, tmp_path, "get-alias", "--function-name", "app", "--name", "live")
    assert gone.returncode != 0 and "(ResourceNotFoundException)" in gone.stderr


# -- the warmer ------------------------------------------------------------------------


def test_the_warmer_warms_the_version_behind_an_alias(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor
) -> None:
    warm = make_function(
        "warm_app", name="warm", code_dir=HANDLERS_WARM, handler="warm_app.handler"
    )
    emu = start_emulator(warm)
    client = lambda_client_for(emu)
    client.publish_version(FunctionName="warm")
    client.create_alias(FunctionName="warm", Name="live", FunctionVersion="1")

    report = warm_target(client, "warm", "live", 3)
    missing = warm_target(client, "warm", "canary", 1)

    assert report.ok and report.warm == 3 and report.cold_starts == 3, report.reason
    live = emu.stats("warm").live_environments
    assert len(live) == 3 and all("/[1]" in e.log_stream for e in live)
    assert len(set(report.environment_ids)) == 3
    assert not missing.ok and missing.errors == {"not_found": 1}
    assert missing.reason is not None and "warm:canary not found" in missing.reason


# -- SnapStart versions ----------------------------------------------------------------


def snap(make_function: Make, python312: str, **env: str) -> FunctionConfig:
    return make_function(
        "snap_hooks", name="snap", python=python312, snapstart=True, env=env, timeout_s=10.0
    )


def parked(emu: Emulator, version: str) -> list[str]:
    return [
        e.env_id
        for e in emu.environments("snap")
        if e.state == "parked" and f"/[{version}]" in e.log_stream
    ]


def test_publishing_a_snapstart_version_parks_a_snapshot_that_its_cold_start_restores(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, python312: str
) -> None:
    emu = start_emulator(snap(make_function, python312))
    client = lambda_client_for(emu)
    latest = client.get_function_configuration(FunctionName="snap")
    assert latest["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}

    published = client.publish_version(FunctionName="snap")

    # Answered once the snapshot was ready: one environment parked for version 1.
    assert (published["Version"], published["State"]) == ("1", "Active")
    assert published["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
    (first,) = parked(emu, "1")
    response = client.invoke(FunctionName="snap:1", Payload=b"{}", LogType="Tail")
    answer = json.loads(response["Payload"].read())
    report = base64.b64decode(response["LogResult"]).decode().rstrip("\n").splitlines()[-1]
    assert response["ExecutedVersion"] == "1" and "FunctionError" not in response
    assert answer["init_type"] == "snap-start"
    assert answer["events"] == ["init", "before_snapshot", "after_restore", "invoke"]
    assert "Restore Duration" in report and "Init Duration" not in report
    (restored,) = [i for i in emu.stats("snap").invocations if i.cold]
    assert restored.env_id == first and restored.restore_duration_ms
    # The spare is made again in the background, for the next cold start.
    assert wait_for(lambda: len(parked(emu, "1")) == 1 and parked(emu, "1") != [first])
    # $LATEST is not snapstarted on Lambda: its cold start is an on-demand INIT.
    plain = json.loads(client.invoke(FunctionName="snap")["Payload"].read())
    assert plain["init_type"] == "on-demand"


def test_a_snapstart_version_whose_snapshot_fails_is_failed_and_refuses_invokes(
    start_emulator: Start, make_function: Make, lambda_client_for: ClientFor, python312: str
) -> None:
    emu = start_emulator(snap(make_function, python312, FAIL_BEFORE_SNAPSHOT="1"))
    client = lambda_client_for(emu)

    published = client.publish_version(FunctionName="snap")

    assert (published["Version"], published["State"]) == ("1", "Failed")
    assert published["StateReasonCode"] == "FunctionError"
    assert published["StateReason"].startswith("Runtime.BeforeSnapshotError: ")
    assert "the model's sockets would not close" in published["StateReason"]
    assert (
        client.get_function(FunctionName="snap", Qualifier="1")["Configuration"]["State"]
        == "Failed"
    )
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName="snap", Qualifier="1", Payload=b"{}")
    assert error_of(exc) == (
        409,
        "ResourceConflictException",
        "The operation cannot be performed at this time. "
        "The function is currently in the following state: Failed",
    )
    assert parked(emu, "1") == []


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
