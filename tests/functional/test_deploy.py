"""`preheat deploy` end to end against moto's S3, CloudFormation, Lambda, IAM and EventBridge.

One moto server (in server mode, over HTTP) answers every service. moto's CloudFormation
skips some resource types and properties (see the deploy section of the README); where it
does, these tests check what moto can show and say so.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.tools.deploy import Clients, DeployRequest, DeployResult, Waiting, deploy
from preheat.tools.local.s3 import S3Server

# moto warns (from its server thread) about the resource types its CloudFormation skips.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")

REGION = "us-east-1"
CHUNK = c.MIN_CHUNK_SIZE
SIGNATURE = mf.Signature(
    key="serving_default",
    inputs=(mf.TensorSpec("x", "float32", (None, 4)),),
    outputs=(mf.TensorSpec("y", "float32", (None, 3)),),
)
FAST = Waiting(timeout_s=30, interval_s=0.05)


def _client(server: S3Server, service: str) -> Any:
    session: Any = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def aws(s3_server: S3Server) -> Callable[[str], Any]:
    return lambda service: _client(s3_server, service)


@pytest.fixture
def clients(aws: Callable[[str], Any]) -> Clients:
    return Clients(REGION, factory=aws)


def write_litert_artifact(directory: Path, files: dict[str, bytes]) -> Path:
    """A LiteRT artifact of the given files (the deploy ships bytes; it never loads them)."""
    directory.mkdir(parents=True)
    for rel, data in files.items():
        (directory / rel).write_bytes(data)
    mf.build(
        directory,
        name="dense",
        version="0",
        runtime="litert",
        precision="fp32",
        signature=SIGNATURE,
        chunk_size=CHUNK,
    ).write(directory)
    return directory


def make_runtime_layer(target: Path) -> Path:
    """A small runtime layer: preheat's own sources under python/ (no third-party wheels)."""
    import preheat

    root = Path(preheat.__file__).parent
    with zipfile.ZipFile(target, "w") as zf:
        for p in sorted(root.rglob("*.py")):
            info = zipfile.ZipInfo(
                f"python/preheat/{p.relative_to(root).as_posix()}", (1980, 1, 1, 0, 0, 0)
            )
            zf.writestr(info, p.read_bytes())
    return target


@pytest.fixture(scope="module")
def runtime_layer_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_runtime_layer(tmp_path_factory.mktemp("layer") / "runtime.zip")


def payload(seed: int, size: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    yield f"ph-{suffix}", f"preheat-test-{suffix}"


def run_deploy(
    model: Path, stack: str, bucket: str, clients: Clients, layer: Path, tmp: Path, **kw: Any
) -> DeployResult:
    request = DeployRequest(
        stack=stack,
        bucket=bucket,
        model=model,
        name="dense",
        region=REGION,
        warm=2,
        runtime_layer_zip=layer,
        **kw,
    )
    return deploy(request, clients=clients, waiting=FAST, work_dir=tmp)


def function_config(aws: Callable[[str], Any], name: str) -> dict[str, Any]:
    cfg: dict[str, Any] = aws("lambda").get_function_configuration(FunctionName=name)
    return cfg


def test_deploy_end_to_end_then_new_version_then_nothing(
    tmp_path: Path,
    names: tuple[str, str],
    clients: Clients,
    aws: Callable[[str], Any],
    runtime_layer_zip: Path,
) -> None:
    stack, bucket = names
    files = {"model.tflite": payload(1, 3 * CHUNK + 1000), "labels.txt": payload(2, 2 * CHUNK)}
    v1 = write_litert_artifact(tmp_path / "v1", files)

    first = run_deploy(v1, stack, bucket, clients, runtime_layer_zip, tmp_path / "w1")
    assert first.done is not None
    plan1, done1 = first.plan, first.done

    # The bucket came from the stack (bucket stage first), then everything was uploaded.
    assert plan1.create_bucket_stack and plan1.stack_action == "create"
    s3 = aws("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    for blob in plan1.desired.blobs:
        assert blob.key in keys
    manifest = plan1.desired.manifest
    chunk_keys = {f"preheat/blobs/sha256/{ch.sha256}" for f in manifest.files for ch in f.chunks}
    assert chunk_keys <= keys
    manifest_key = plan1.desired.model_uri.removeprefix(f"s3://{bucket}/") + "/manifest.json"
    assert manifest_key in keys
    assert done1.chunks_uploaded == len(chunk_keys) and done1.chunks_skipped == 0
    blob_bytes = sum(b.zip.size for b in plan1.desired.blobs)
    assert done1.uploaded_bytes == manifest.total_bytes + blob_bytes
    assert done1.skipped_bytes == 0
    # The model layer holds the artifact where the read-only tier looks for the deployed URI,
    # with the very manifest that was pushed.
    model_layer = next(b for b in plan1.desired.blobs if b.label == "model layer")
    inside = f"preheat/models/dense/{plan1.desired.version}/manifest.json"
    with zipfile.ZipFile(model_layer.zip.path) as zf:
        layered = mf.loads(zf.read(inside))
    pushed = mf.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert layered == pushed
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    cf = aws("cloudformation")
    status = cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    assert status == "UPDATE_COMPLETE"  # created with the bucket, then updated with the rest
    events = [e["ResourceStatus"] for e in cf.describe_stack_events(StackName=stack)["StackEvents"]]
    assert "CREATE_COMPLETE" in events

    # Function configuration: environment, role, memory from the template's parameters.
    cfg = function_config(aws, f"{stack}-inference")
    assert cfg["Environment"]["Variables"]["PREHEAT_MODEL_URI"] == plan1.desired.model_uri
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    }
    role_arn = aws("iam").get_role(RoleName=resources["InferenceRole"])["Role"]["Arn"]
    assert cfg["Role"] == role_arn
    assert cfg["MemorySize"] == 2048
    # The layers were published from the uploaded zips, and the stack was given their ARNs.
    published = done1.published_layers
    assert set(published) == {f"{stack}-runtime", f"{stack}-model"}
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cf.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]
    }
    assert params["RuntimeLayerArn"] == published[f"{stack}-runtime"]
    assert params["ModelLayerArn"] == published[f"{stack}-model"]
    lam = aws("lambda")
    for name, arn in published.items():
        versions = lam.list_layer_versions(LayerName=name)["LayerVersions"]
        spec = next(s for s in plan1.desired.layers if s.name == name)
        assert [(v["LayerVersionArn"], v["Description"]) for v in versions] == [
            (arn, spec.description)
        ]

    # The schedule rule targets the warmer with its targets and concurrency as input.
    events_client = aws("events")
    rules = [r for r in events_client.list_rules()["Rules"] if r["Name"].startswith(f"{stack}-")]
    assert [r["ScheduleExpression"] for r in rules] == ["rate(5 minutes)"]
    (target,) = events_client.list_targets_by_rule(Rule=rules[0]["Name"])["Targets"]
    assert target["Arn"] == function_config(aws, f"{stack}-warmer")["FunctionArn"]
    assert json.loads(target["Input"]) == {
        "targets": [{"function": f"{stack}-inference", "qualifier": "live", "concurrency": 2}]
    }
    # moto cannot run functions without Docker: the prewarm fails and is only a warning.
    assert done1.warnings and "prewarm" in done1.warnings[0]
    assert done1.stack is not None and done1.stack.status == "UPDATE_COMPLETE"

    # A new version with one file changed: only that file's chunks (and the model layer,
    # whose content changed) are uploaded, and the stack is updated.
    files2 = dict(files, **{"labels.txt": payload(3, 2 * CHUNK)})
    v2 = write_litert_artifact(tmp_path / "v2", files2)
    second = run_deploy(v2, stack, bucket, clients, runtime_layer_zip, tmp_path / "w2")
    assert second.done is not None
    plan2, done2 = second.plan, second.done
    assert plan2.desired.version != plan1.desired.version
    changed = [
        ch for f in plan2.desired.manifest.files if f.path == "labels.txt" for ch in f.chunks
    ]
    assert done2.chunks_uploaded == len(changed)
    model_layer = next(b for b in plan2.desired.blobs if b.label == "model layer")
    assert [b.key for b in plan2.uploads] == [model_layer.key]
    assert done2.uploaded_bytes == sum(ch.size for ch in changed) + model_layer.zip.size
    assert done2.skipped_bytes == (
        manifest.total_bytes - 2 * CHUNK + sum(b.zip.size for b in plan2.present)
    )
    assert list(done2.published_layers) == [f"{stack}-model"]
    assert done2.stack is not None and done2.stack.action == "update"
    cfg2 = function_config(aws, f"{stack}-inference")
    assert cfg2["Environment"]["Variables"]["PREHEAT_MODEL_URI"] == plan2.desired.model_uri
    # moto applies Layers on an update (not on a create): now they can be read back.
    assert [layer["Arn"] for layer in cfg2["Layers"]] == [
        published[f"{stack}-runtime"],
        done2.published_layers[f"{stack}-model"],
    ]

    # The same inputs again: nothing to upload, publish or change.
    before = len(cf.describe_stack_events(StackName=stack)["StackEvents"])
    third = run_deploy(v2, stack, bucket, clients, runtime_layer_zip, tmp_path / "w3")
    assert third.done is not None
    assert third.plan.changes_nothing, {
        k: v for k, v in third.plan.to_dict().items() if k != "parameters" and k != "present"
    }
    assert third.done.uploaded_bytes == 0 and third.done.chunks_uploaded == 0
    assert third.done.stack is not None and third.done.stack.action == "none"
    assert len(cf.describe_stack_events(StackName=stack)["StackEvents"]) == before


def test_dry_run_changes_nothing(
    tmp_path: Path,
    names: tuple[str, str],
    clients: Clients,
    aws: Callable[[str], Any],
    runtime_layer_zip: Path,
) -> None:
    stack, bucket = names
    model = write_litert_artifact(tmp_path / "m", {"model.tflite": payload(7, CHUNK + 10)})
    result = run_deploy(
        model, stack, bucket, clients, runtime_layer_zip, tmp_path / "w", dry_run=True
    )
    assert result.done is None
    plan = result.plan
    assert plan.stack_action == "create" and plan.create_bucket_stack
    assert plan.chunks_to_upload == 2 and plan.chunk_bytes_to_upload == CHUNK + 10
    assert "create the stack with the model bucket" in plan.describe()
    assert bucket not in {b["Name"] for b in aws("s3").list_buckets().get("Buckets", [])}
    with pytest.raises(Exception, match="does not exist"):
        aws("cloudformation").describe_stacks(StackName=stack)


def test_existing_bucket_is_used_not_owned_and_destroy_keeps_it(
    tmp_path: Path,
    names: tuple[str, str],
    clients: Clients,
    aws: Callable[[str], Any],
    runtime_layer_zip: Path,
) -> None:
    from preheat.exceptions import DeployError
    from preheat.tools.deploy import destroy

    stack, bucket = names
    aws("s3").create_bucket(Bucket=bucket)
    model = write_litert_artifact(tmp_path / "m", {"model.tflite": payload(9, CHUNK)})
    result = run_deploy(
        model,
        stack,
        bucket,
        clients,
        runtime_layer_zip,
        tmp_path / "w",
        model_layer=False,
        prewarm=False,
    )
    assert result.done is not None and result.done.stack is not None
    assert result.done.stack.status == "CREATE_COMPLETE"
    assert not result.plan.create_bucket_stack
    assert result.plan.parameters["CreateBucket"] == "false"
    assert result.plan.parameters["ModelLayerArn"] == ""
    assert result.done.prewarm is None and not result.done.warnings

    with pytest.raises(DeployError, match="not created by stack"):
        destroy(stack, clients, delete_bucket=True, waiting=FAST)
    gone = destroy(stack, clients, waiting=FAST)
    assert gone.stack_deleted and not gone.bucket_deleted
    assert aws("s3").list_objects_v2(Bucket=bucket)["KeyCount"] > 0


def test_destroy_with_delete_bucket_empties_and_removes_it(
    tmp_path: Path,
    names: tuple[str, str],
    clients: Clients,
    aws: Callable[[str], Any],
    runtime_layer_zip: Path,
) -> None:
    from preheat.tools.deploy import destroy

    stack, bucket = names
    model = write_litert_artifact(tmp_path / "m", {"model.tflite": payload(11, CHUNK)})
    run_deploy(model, stack, bucket, clients, runtime_layer_zip, tmp_path / "w", prewarm=False)
    result = destroy(stack, clients, delete_bucket=True, waiting=FAST)
    assert result.bucket_deleted and result.objects_deleted > 0
    assert bucket not in {b["Name"] for b in aws("s3").list_buckets().get("Buckets", [])}


@pytest.mark.slow
def test_deploy_with_the_real_runtime_layer_builder(
    tmp_path: Path, names: tuple[str, str], clients: Clients, aws: Callable[[str], Any]
) -> None:
    """The whole path with no prebuilt parts: the layer builder makes the LiteRT runtime layer."""
    stack, bucket = names
    model = write_litert_artifact(tmp_path / "m", {"model.tflite": payload(21, CHUNK)})
    request = DeployRequest(
        stack=stack, bucket=bucket, model=model, name="dense", region=REGION, prewarm=False
    )
    result = deploy(request, clients=clients, waiting=FAST, work_dir=tmp_path / "w")
    assert result.done is not None and result.done.stack is not None
    assert result.done.stack.status == "UPDATE_COMPLETE"
    layer = result.plan.desired.runtime_layer.blob
    with zipfile.ZipFile(layer.zip.path) as zf:
        names_in_layer = set(zf.namelist())
    assert "python/preheat/__init__.py" in names_in_layer
    assert any(n.startswith("python/ai_edge_litert/") for n in names_in_layer)
    head = aws("s3").head_object(Bucket=bucket, Key=layer.key)
    assert head["ContentLength"] == layer.zip.size


def test_deploy_the_tensorflow_runtime_as_an_image(
    tmp_path: Path,
    names: tuple[str, str],
    clients: Clients,
    aws: Callable[[str], Any],
    runtime_layer_zip: Path,
) -> None:
    stack, bucket = names
    model = tmp_path / "tf"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(payload(31, 5000))
    mf.build(
        model, name="dense", version="0", runtime="tensorflow", precision="exact",
        signature=SIGNATURE, chunk_size=CHUNK,
    ).write(model)  # fmt: skip
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/preheat:1"
    result = run_deploy(
        model, stack, bucket, clients, runtime_layer_zip, tmp_path / "w",
        runtime="tensorflow", image_uri=image, prewarm=False,
    )  # fmt: skip
    assert result.done is not None and result.done.stack is not None
    assert result.done.stack.status == "UPDATE_COMPLETE"
    params = result.plan.parameters
    assert params["PackageType"] == "Image" and params["ImageUri"] == image
    assert params["ModelLayerArn"] == "" and result.plan.desired.model_layer is None
    # The warmer still runs from the runtime layer; no model layer was built or published.
    assert list(result.done.published_layers) == [f"{stack}-runtime"]
    code = aws("lambda").get_function(FunctionName=f"{stack}-inference")["Code"]
    assert code.get("ImageUri") == image


def test_deploy_the_image_with_snapstart(
    tmp_path: Path,
    names: tuple[str, str],
    clients: Clients,
    aws: Callable[[str], Any],
    runtime_layer_zip: Path,
) -> None:
    stack, bucket = names
    model = tmp_path / "tf"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(payload(32, 5000))
    mf.build(
        model, name="dense", version="0", runtime="tensorflow", precision="exact",
        signature=SIGNATURE, chunk_size=CHUNK,
    ).write(model)  # fmt: skip
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/preheat:1"
    result = run_deploy(
        model, stack, bucket, clients, runtime_layer_zip, tmp_path / "w",
        runtime="tensorflow", image_uri=image, snapstart=True, model_in_image=True,
        prewarm=False,
    )  # fmt: skip
    assert result.done is not None and result.done.stack is not None
    assert result.done.stack.status == "UPDATE_COMPLETE"
    cfn = aws("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in cfn["Parameters"]}
    assert params["SnapStart"] == "true" and params["PackageType"] == "Image"
    assert params["ProvisionedConcurrency"] == "0" and params["EphemeralStorageSize"] == "512"
    # SnapStart snapshots published versions only: the stack publishes one (callers use the
    # alias on it, which moto does not keep; test_template checks the alias names it).
    versions = aws("lambda").list_versions_by_function(FunctionName=f"{stack}-inference")
    assert {v["Version"] for v in versions["Versions"]} - {"$LATEST"}
