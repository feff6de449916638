"""Deploy stages without AWS: validation before any call, planning, change set handling."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.exceptions import ConfigurationError, DeployError, LayerTooLarge
from preheat.tools.deploy import Clients, DeployRequest, Waiting, build, deploy, plan
from preheat.tools.deploy.remote import Observed, StackState
from preheat.tools.deploy.stack import apply

SIGNATURE = mf.Signature(
    key="serving_default",
    inputs=(mf.TensorSpec("x", "float32", (None, 4)),),
    outputs=(mf.TensorSpec("y", "float32", (None, 3)),),
)


class NoAWS:
    """A client that fails the test on any call: proves validation happens first."""

    def __init__(self, calls: list[str]) -> None:
        self._calls = calls

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*_a: Any, **_k: Any) -> Any:
            self._calls.append(name)
            raise AssertionError(f"AWS was called ({name}) before the input was checked")

        return call


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def no_aws(calls: list[str]) -> Clients:
    return Clients("us-east-1", factory=lambda _service: NoAWS(calls))


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    d = tmp_path / "artifact"
    d.mkdir()
    (d / "model.tflite").write_bytes(b"\x01" * 5000)
    mf.build(
        d, name="dense", version="1", runtime="litert", precision="fp32", signature=SIGNATURE
    ).write(d)
    return d


@pytest.fixture
def layer_zip(tmp_path: Path) -> Path:
    z = tmp_path / "runtime.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("python/preheat/__init__.py", "")
    return z


def request(artifact: Path, layer_zip: Path, **kw: Any) -> DeployRequest:
    base = DeployRequest(
        stack="demo", bucket="demo-models", model=artifact, runtime_layer_zip=layer_zip
    )
    return replace(base, **kw)


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"bucket": "My_Bucket"}, ConfigurationError, "--bucket"),
        ({"bucket": "ab"}, ConfigurationError, "2 characters"),
        ({"bucket": "a" * 64}, ConfigurationError, "64 characters"),
        ({"bucket": "192.168.1.1"}, ConfigurationError, "IP address"),
        ({"bucket": "my..bucket"}, ConfigurationError, "'..'"),
        ({"stack": "s" * 129}, ConfigurationError, "CloudFormation allows 128"),
        ({"stack": "s" * 60}, ConfigurationError, "at most 54"),
        ({"stack": "1stack"}, ConfigurationError, "start with a letter"),
        ({"region": "moon-east-1"}, ConfigurationError, "no such region"),
        ({"runtime": "tensorflow"}, ConfigurationError, "--image-uri"),
        ({"python": "3.11"}, ConfigurationError, "Amazon Linux 2023"),
        ({"schedule": "every 5 minutes"}, ConfigurationError, "rate("),
        ({"schedule": "rate(1 minutes)"}, ConfigurationError, "singular"),
        ({"warm": 5000}, ConfigurationError, "--warm"),
        ({"prefix": "a/../b"}, ConfigurationError, "--prefix"),
        ({"model": Path("/nonexistent/model")}, ConfigurationError, "no such directory"),
        # What Lambda refuses with SnapStart.
        ({"snapstart": True, "python": "3.11"}, ConfigurationError, "SnapStart needs Python 3.12"),
        ({"snapstart": True, "provisioned": 2}, ConfigurationError, "on a SnapStart function"),
        ({"model_in_image": True}, ConfigurationError, "--model-in-image"),
    ],
)
def test_bad_input_fails_before_any_aws_call(
    artifact: Path,
    layer_zip: Path,
    no_aws: Clients,
    calls: list[str],
    tmp_path: Path,
    change: dict[str, Any],
    error: type[Exception],
    words: str,
) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(").replace(".", r"\.")) as info:
        deploy(request(artifact, layer_zip, **change), clients=no_aws, work_dir=tmp_path / "w")
    assert "\n" not in str(info.value)
    assert calls == []


def test_a_model_over_the_layer_limit_is_refused_with_alternatives(
    tmp_path: Path, layer_zip: Path, no_aws: Clients, calls: list[str]
) -> None:
    # A manifest that promises 320 MiB: the check reads sizes, not bytes.
    d = tmp_path / "big"
    d.mkdir()
    size = 40 * c.DEFAULT_CHUNK_SIZE  # over 250 MB
    chunks = [{"sha256": "0" * 64, "size": c.DEFAULT_CHUNK_SIZE}] * (size // c.DEFAULT_CHUNK_SIZE)
    manifest = {
        "format": c.ARTIFACT_FORMAT,
        "name": "big",
        "version": "1",
        "runtime": "litert",
        "precision": "fp32",
        "files": [{"path": "model.tflite", "size": size, "sha256": "0" * 64, "chunks": chunks}],
        "signature": {"key": "serving_default", "inputs": [], "outputs": []},
    }
    (d / "manifest.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(LayerTooLarge) as info:
        deploy(request(d, layer_zip), clients=no_aws, work_dir=tmp_path / "w")
    message = str(info.value)
    for alternative in ("--no-model-layer", "--runtime tensorflow", "250 MiB"):
        assert alternative in message
    assert calls == []


def _promised(tmp_path: Path, runtime: str, mib: int) -> Path:
    """An artifact whose manifest promises `mib` MiB: the checks read sizes, not bytes."""
    d = tmp_path / f"big-{runtime}"
    d.mkdir()
    size = mib * 1024 * 1024
    chunk = c.DEFAULT_CHUNK_SIZE
    chunks = [{"sha256": "0" * 64, "size": chunk}] * (size // chunk)
    manifest = {
        "format": c.ARTIFACT_FORMAT,
        "name": "big",
        "version": "1",
        "runtime": runtime,
        "precision": "fp32",
        "files": [{"path": "model.bin", "size": size, "sha256": "0" * 64, "chunks": chunks}],
        "signature": {"key": "serving_default", "inputs": [], "outputs": []},
    }
    (d / "manifest.json").write_bytes(orjson.dumps(manifest))
    return d


@pytest.mark.parametrize(
    ("runtime", "change", "fix"),
    [
        ("litert", {"model_layer": False}, "drop --no-model-layer"),
        ("tensorflow", {"image_uri": "123.dkr.ecr/x:1"}, "--model-in-image"),
    ],
)
def test_snapstart_refuses_a_model_whose_disk_tier_needs_over_512_mb(
    tmp_path: Path,
    layer_zip: Path,
    no_aws: Clients,
    calls: list[str],
    runtime: str,
    change: dict[str, Any],
    fix: str,
) -> None:
    big = _promised(tmp_path, runtime, 320)
    req = request(big, layer_zip, runtime=runtime, snapstart=True, version="1", **change)
    with pytest.raises(ConfigurationError) as info:
        deploy(req, clients=no_aws, work_dir=tmp_path / "w")
    message = str(info.value)
    assert "\n" not in message
    for words in ("--snapstart", "SnapStart allows 512 MB", fix, "drop --snapstart"):
        assert words in message
    assert calls == []


def test_snapstart_on_the_image_with_the_model_in_it(tmp_path: Path, layer_zip: Path) -> None:
    big = _promised(tmp_path, "tensorflow", 320)
    req = request(
        big,
        layer_zip,
        runtime="tensorflow",
        image_uri="123.dkr.ecr/x:1",
        snapstart=True,
        model_in_image=True,
        version="1",
    ).validated()
    desired = build(req, work_dir=tmp_path / "w")
    p = plan(desired, observed_for(desired))
    assert p.parameters["SnapStart"] == "true" and p.parameters["PackageType"] == "Image"
    # The model is read from the image: /tmp keeps Lambda's default, which SnapStart allows.
    assert p.parameters["EphemeralStorageSize"] == "512"
    assert p.parameters["ProvisionedConcurrency"] == "0"
    assert "SnapStart" in p.describe() and "never $LATEST" in p.describe()


def test_artifact_of_another_runtime_is_refused(
    artifact: Path, layer_zip: Path, no_aws: Clients, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="litert runtime"):
        deploy(
            request(artifact, layer_zip, runtime="tensorflow", image_uri="123.dkr.ecr/x:1"),
            clients=no_aws,
            work_dir=tmp_path / "w",
        )


def observed_for(desired: Any, **kw: Any) -> Observed:
    base = Observed(
        bucket_exists=False,
        stack=None,
        keys_present=set(),
        chunks_present=set(),
        manifest_present=False,
        layer_versions={},
    )
    return replace(base, **kw)


def test_plan_for_a_new_stack_and_a_new_bucket(
    artifact: Path, layer_zip: Path, tmp_path: Path
) -> None:
    desired = build(request(artifact, layer_zip).validated(), work_dir=tmp_path / "w")
    p = plan(desired, observed_for(desired))
    assert p.create_bucket_stack and p.stack_action == "create"
    assert [b.label for b in p.uploads] == [
        "runtime layer",
        "model layer",
        "inference code",
        "warmer code",
    ]
    assert [s.name for s in p.publish] == ["demo-runtime", "demo-model"]
    assert p.chunks_to_upload == 1 and p.chunk_bytes_to_upload == 5000
    assert p.parameters["CreateBucket"] == "true"
    assert p.parameters["PackageType"] == "Zip"
    assert p.parameters["ModelUri"] == desired.model_uri
    assert p.prewarm and not p.changes_nothing
    assert "create the stack with the model bucket" in p.describe()


def test_plan_when_everything_is_in_place_changes_nothing(
    artifact: Path, layer_zip: Path, tmp_path: Path
) -> None:
    desired = build(request(artifact, layer_zip).validated(), work_dir=tmp_path / "w")
    arns = {
        s.name: f"arn:aws:lambda:us-east-1:123456789012:layer:{s.name}:3" for s in desired.layers
    }
    params = desired.stack_parameters(arns, create_bucket=True)
    chunks = {(ch.sha256, ch.size) for f in desired.manifest.files for ch in f.chunks}
    observed = observed_for(
        desired,
        bucket_exists=True,
        stack=StackState("demo", "UPDATE_COMPLETE", params, desired.template_body),
        keys_present={b.key for b in desired.blobs},
        chunks_present=chunks,
        manifest_present=True,
        layer_versions={s.name: {s.blob.zip.sha256: arns[s.name]} for s in desired.layers},
    )
    p = plan(desired, observed)
    assert p.changes_nothing and p.stack_action == "none" and not p.prewarm
    assert p.upload_bytes == 0
    assert "no changes" in p.describe()

    # One parameter differs (more memory): only the stack changes.
    bigger = build(
        request(artifact, layer_zip, memory_mb=4096).validated(), work_dir=tmp_path / "w2"
    )
    p2 = plan(bigger, observed)
    assert p2.stack_action == "update" and not p2.uploads and p2.chunks_to_upload == 0


@pytest.mark.parametrize(
    ("status", "words"),
    [("UPDATE_IN_PROGRESS", "wait for it"), ("ROLLBACK_COMPLETE", "preheat destroy")],
)
def test_plan_refuses_a_stack_it_cannot_update(
    artifact: Path, layer_zip: Path, tmp_path: Path, status: str, words: str
) -> None:
    desired = build(request(artifact, layer_zip).validated(), work_dir=tmp_path / "w")
    observed = observed_for(desired, bucket_exists=True, stack=StackState("demo", status, {}, ""))
    with pytest.raises(DeployError, match=words) as err:
        plan(desired, observed)
    assert err.value.resource == desired.request.stack


def test_existing_bucket_is_not_created_by_the_stack(
    artifact: Path, layer_zip: Path, tmp_path: Path
) -> None:
    desired = build(request(artifact, layer_zip).validated(), work_dir=tmp_path / "w")
    p = plan(desired, observed_for(desired, bucket_exists=True))
    assert not p.create_bucket_stack and p.parameters["CreateBucket"] == "false"


def test_code_zips_are_reproducible(artifact: Path, layer_zip: Path, tmp_path: Path) -> None:
    a = build(request(artifact, layer_zip).validated(), work_dir=tmp_path / "a")
    b = build(request(artifact, layer_zip).validated(), work_dir=tmp_path / "b")
    assert [x.key for x in a.blobs] == [x.key for x in b.blobs]
    assert a.fingerprint() == b.fingerprint()


class FakeCloudFormation:
    """CloudFormation's answers for one change set, scripted: stands in where moto cannot fail."""

    def __init__(
        self, cs_status: str, reason: str, stack_statuses: list[str], events: list[dict[str, Any]]
    ) -> None:
        self.cs_status = cs_status
        self.reason = reason
        self.stack_statuses = stack_statuses
        self.events = events
        self.deleted: list[str] = []
        self.executed = False

    def create_change_set(self, **kw: Any) -> dict[str, str]:
        assert kw["Capabilities"] == ["CAPABILITY_IAM"]
        return {"Id": "cs-1"}

    def describe_change_set(self, ChangeSetName: str) -> dict[str, Any]:
        return {"Status": self.cs_status, "StatusReason": self.reason, "Changes": []}

    def delete_change_set(self, ChangeSetName: str) -> None:
        self.deleted.append(ChangeSetName)

    def execute_change_set(self, ChangeSetName: str) -> None:
        self.executed = True

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        status = (
            self.stack_statuses.pop(0) if len(self.stack_statuses) > 1 else self.stack_statuses[0]
        )
        return {"Stacks": [{"StackStatus": status}]}

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {"StackEvents": self.events if self.executed else self.events[-1:]}


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_failed_update_names_the_resource_and_its_reason() -> None:
    events = [  # newest first, as CloudFormation lists them
        {
            "LogicalResourceId": "demo",
            "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE",
            "Timestamp": T0 + timedelta(3),
        },
        {
            "LogicalResourceId": "InferenceFunction",
            "ResourceType": "AWS::Lambda::Function",
            "ResourceStatus": "UPDATE_FAILED",
            "ResourceStatusReason": "Layers consume more than the available size of 262144000 bytes",
            "Timestamp": T0 + timedelta(2),
        },
        {
            "LogicalResourceId": "demo",
            "ResourceStatus": "UPDATE_IN_PROGRESS",
            "Timestamp": T0 + timedelta(1),
        },
        {"LogicalResourceId": "demo", "ResourceStatus": "CREATE_COMPLETE", "Timestamp": T0},
    ]
    cf = FakeCloudFormation(
        "CREATE_COMPLETE", "", ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"], events
    )
    with pytest.raises(DeployError) as info:
        apply(
            cf,
            "demo",
            "{}",
            {},
            create=False,
            change_set_name="cs",
            waiting=Waiting(10, 0, lambda _s: None),
        )
    message = str(info.value)
    assert "UPDATE_ROLLBACK_COMPLETE" in message
    assert info.value.resource == "demo"
    assert "InferenceFunction (AWS::Lambda::Function)" in message
    assert "262144000 bytes" in message


def test_an_empty_change_set_means_no_changes() -> None:
    cf = FakeCloudFormation(
        "FAILED", "The submitted information didn't contain changes.", ["UPDATE_COMPLETE"], []
    )
    result = apply(
        cf,
        "demo",
        "{}",
        {},
        create=False,
        change_set_name="cs",
        waiting=Waiting(10, 0, lambda _s: None),
    )
    assert result.action == "none" and cf.deleted == ["cs-1"] and not cf.executed


def test_waiting_is_bounded() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    cf = FakeCloudFormation("CREATE_COMPLETE", "", ["UPDATE_IN_PROGRESS"], [])
    with pytest.raises(DeployError, match="still UPDATE_IN_PROGRESS after 60 s"):
        apply(
            cf,
            "demo",
            "{}",
            {},
            create=False,
            change_set_name="cs",
            waiting=Waiting(timeout_s=60, interval_s=5, sleep=sleep, clock=lambda: now[0]),
        )
    assert now[0] == 60


def test_destroy_refuses_without_a_terminal_or_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from preheat.tools.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["destroy", "--stack", "demo"]) == 2
    err = capsys.readouterr().err
    assert "--yes" in err and len(err.strip().splitlines()) == 1


def test_options_reach_the_stack_parameters(
    artifact: Path, layer_zip: Path, tmp_path: Path
) -> None:
    req = request(
        artifact,
        layer_zip,
        provisioned=2,
        function_url=True,
        warm=4,
        second_schedule="cron(0/5 8-18 ? * MON-FRI *)",
        second_warm=10,
        memory_mb=3008,
        arch="arm64",
        model_layer=False,
    ).validated()
    desired = build(req, work_dir=tmp_path / "w")
    p = plan(desired, observed_for(desired))
    expected = {
        "SnapStart": "false",
        "ProvisionedConcurrency": "2",
        "FunctionUrl": "true",
        "WarmConcurrency": "4",
        "SecondWarmSchedule": "cron(0/5 8-18 ? * MON-FRI *)",
        "SecondWarmConcurrency": "10",
        "MemorySize": "3008",
        "Architecture": "arm64",
        "PythonRuntime": "python3.12",
        "ModelLayerArn": "",
    }
    assert {k: p.parameters[k] for k in expected} == expected
    # Without a model layer the model lands in /tmp: it is sized for it.
    assert int(p.parameters["EphemeralStorageSize"]) >= 512
    assert "no model layer" in p.describe()
