"""The desired state of a deploy: every file, layer and stack parameter that should exist.

Built from the request and local work only (slimming, zips); no AWS call happens here.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.exceptions import ConfigurationError, LayerTooLarge
from preheat.tools.deploy import validate as v
from preheat.tools.deploy.request import DeployRequest
from preheat.tools.deploy.stages import BuiltZip, Stages, bucket_template_path, template_path
from preheat.uri import model_uri

MIB = 1024 * 1024
MIN_EPHEMERAL_MB = 512
MAX_EPHEMERAL_MB = 10240
# Room in /tmp besides the model: the cache's partial files and whatever the handler writes.
EPHEMERAL_HEADROOM_MB = 256

Say = Callable[[str], None]


@dataclass(frozen=True)
class Blob:
    """A zip to store in the bucket under a key named by its content."""

    kind: str  # "layer" or "code"
    label: str
    key: str
    zip: BuiltZip

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "key": self.key, "bytes": self.zip.size}


@dataclass(frozen=True)
class LayerSpec:
    """A layer version to publish (or reuse): its name and the blob holding its content."""

    name: str
    blob: Blob

    @property
    def description(self) -> str:
        # The content hash in the description lets a later deploy find and reuse this version.
        return f"preheat sha256:{self.blob.zip.sha256}"


@dataclass(frozen=True)
class Desired:
    request: DeployRequest
    artifact: Path
    manifest: mf.Manifest
    version: str
    model_uri: str
    runtime_layer: LayerSpec
    model_layer: LayerSpec | None
    inference_code: Blob
    warmer_code: Blob
    template_body: str
    bucket_template_body: str
    ephemeral_mb: int
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def blobs(self) -> list[Blob]:
        layers = [self.runtime_layer] + ([self.model_layer] if self.model_layer else [])
        return [layer.blob for layer in layers] + [self.inference_code, self.warmer_code]

    @property
    def layers(self) -> list[LayerSpec]:
        return [self.runtime_layer] + ([self.model_layer] if self.model_layer else [])

    @property
    def inference_function(self) -> str:
        return f"{self.request.stack}-inference"

    @property
    def warmer_function(self) -> str:
        return f"{self.request.stack}-warmer"

    def fingerprint(self) -> str:
        """A hash of everything deployed: it changes exactly when the stack should."""
        h = hashlib.sha256(self.template_body.encode())
        h.update(orjson.dumps(self.parameters, option=orjson.OPT_SORT_KEYS))
        for layer in self.layers:
            h.update(f"{layer.name}:{layer.blob.zip.sha256}".encode())
        return h.hexdigest()[:32]

    def stack_parameters(self, layer_arns: dict[str, str], create_bucket: bool) -> dict[str, str]:
        """Every parameter of the full stage, given the published layers' ARNs."""
        return {
            **self.parameters,
            "CreateBucket": "true" if create_bucket else "false",
            "RuntimeLayerArn": layer_arns.get(self.runtime_layer.name, ""),
            "ModelLayerArn": layer_arns.get(self.model_layer.name, "") if self.model_layer else "",
            "DeployFingerprint": self.fingerprint(),
        }

    def bucket_parameters(self) -> dict[str, str]:
        """The first step of a new stack: the bucket alone, so uploads can precede functions."""
        return {"BucketName": self.request.bucket}


def ephemeral_mb(model_bytes: int, model_in_layer: bool) -> int:
    """/tmp sized to hold the model's disk tier (unless a layer serves it) with headroom."""
    need = 0 if model_in_layer else math.ceil(model_bytes * 1.25 / MIB)
    size = max(MIN_EPHEMERAL_MB, need + EPHEMERAL_HEADROOM_MB)
    if size > MAX_EPHEMERAL_MB:
        raise ConfigurationError(
            "--model",
            f"{model_bytes / 1e9:.1f} GB",
            f"Lambda's /tmp holds at most {MAX_EPHEMERAL_MB} MB; slim the model "
            "(preheat slim --precision fp16 or int8)",
        )
    return size


def check_snapstart_storage(request: DeployRequest, ephemeral: int, model_bytes: int) -> None:
    """SnapStart snapshots /tmp with the rest and allows at most 512 MB of it."""
    if not request.snapstart or ephemeral <= v.SNAPSTART_MAX_EPHEMERAL_MB:
        return
    where = (
        "bake it into the image (--build-arg MODEL_DIR) and pass --model-in-image"
        if request.runtime == "tensorflow"
        else "ship it in the model layer (drop --no-model-layer)"
    )
    raise ConfigurationError(
        "--snapstart",
        f"{model_bytes / MIB:.0f} MiB model",
        f"its disk tier needs {ephemeral} MB of /tmp and SnapStart allows "
        f"{v.SNAPSTART_MAX_EPHEMERAL_MB} MB: {where}, slim it (--precision fp16 or int8), "
        "or drop --snapstart",
    )


def _check_layer_limit(name: str, model_bytes: int, runtime_bytes: int) -> None:
    total = model_bytes + runtime_bytes
    if total > c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES:
        raise LayerTooLarge(
            f"model layer {name} ({model_bytes / MIB:.1f} MiB) and the runtime layer "
            f"({runtime_bytes / MIB:.1f} MiB) come to {total / MIB:.1f} MiB unzipped; Lambda "
            f"allows {c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES / MIB:.0f} MiB for a function and its "
            "layers together: pass --no-model-layer (the model is fetched from S3 during INIT), "
            "slim it smaller (--precision fp16 or int8), or use --runtime tensorflow with the "
            "container image (infra/Dockerfile)",
            name=f"model layer {name} with the runtime layer",
            size=total,
            limit=c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES,
        )


def _artifact(request: DeployRequest, stages: Stages, work: Path, say: Say) -> Path:
    if (request.model / c.MANIFEST_NAME).is_file():
        found = mf.read(request.model)
        if found.runtime != request.runtime:
            raise ConfigurationError(
                "--runtime",
                request.runtime,
                f"artifact {request.model} is for the {found.runtime} runtime: pass --runtime "
                f"{found.runtime} or slim the SavedModel again",
            )
        return request.model
    say(f"slimming {request.model} for {request.runtime}")
    assert request.name is not None
    return stages.slim(
        request.model,
        work / "artifact",
        runtime=request.runtime,
        precision=request.precision,
        name=request.name,
        say=say,
    )


def _as_deployed(
    artifact: Path, manifest: mf.Manifest, name: str, version: str, work: Path
) -> Path:
    """The artifact under the name and version it is deployed as.

    The model layer puts an artifact at `<root>/NAME/VERSION` from its manifest, and the
    read-only tier looks there for the deployed URI's name and version, so they must agree.
    Files are hard-linked where the file system allows, else copied.
    """
    if manifest.name == name and manifest.version == version:
        return artifact
    target = work / f"artifact-{name}-{version}"
    if target.exists():
        shutil.rmtree(target)
    for entry in manifest.files:
        dest = target / entry.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(artifact / entry.path, dest)
        except OSError:
            shutil.copy2(artifact / entry.path, dest)
    manifest.with_(name=name, version=version).write(target)
    return target


def build(
    request: DeployRequest,
    *,
    stages: Stages | None = None,
    work_dir: Path | None = None,
    say: Say = lambda _m: None,
    functions_dir: Path | None = None,
) -> Desired:
    """What should exist after deploying `request` (already validated)."""
    stages = stages or Stages()
    work = work_dir or Path(tempfile.mkdtemp(prefix="preheat-deploy-"))
    assert request.name is not None
    artifact = _artifact(request, stages, work, say)
    manifest = mf.read(artifact)
    model_bytes = manifest.total_bytes
    if request.model_layer:
        # Fail before building anything when the model alone cannot fit.
        _check_layer_limit(request.name, model_bytes, 0)
    version = request.version or f"c{mf.fingerprint(manifest.files)[:12]}"
    artifact = _as_deployed(artifact, manifest, request.name, version, work)
    manifest = mf.read(artifact)
    uri = model_uri(request.bucket, request.prefix, request.name, version)
    # A model in a layer or baked into the image is read where it lies: /tmp holds no copy.
    ephemeral = ephemeral_mb(model_bytes, request.model_layer or request.model_in_image)
    check_snapstart_storage(request, ephemeral, model_bytes)

    if request.runtime_layer_zip is not None:
        from preheat.tools.deploy.stages import describe_zip

        rt_zip = describe_zip(request.runtime_layer_zip)
    else:
        rt_zip = stages.runtime_layer(
            "litert", work / "layers", python=request.python, arch=request.arch, say=say
        )
    prefix = request.prefix

    def blob(kind: str, label: str, z: BuiltZip) -> Blob:
        folder = "layers" if kind == "layer" else "code"
        return Blob(kind, label, f"{prefix}/{folder}/sha256/{z.sha256}.zip", z)

    runtime_layer = LayerSpec(f"{request.stack}-runtime", blob("layer", "runtime layer", rt_zip))
    model_layer: LayerSpec | None = None
    if request.model_layer:
        ml_zip = stages.model_layer(artifact, work / "model-layer", say=say)
        _check_layer_limit(request.name, ml_zip.unzipped, rt_zip.unzipped)
        model_layer = LayerSpec(f"{request.stack}-model", blob("layer", "model layer", ml_zip))
    elif request.runtime == "litert":
        _check_layer_limit(request.name, 0, rt_zip.unzipped)
    inference = blob(
        "code", "inference code", stages.code_zip("inference", work / "code", functions_dir)
    )
    warmer = blob("code", "warmer code", stages.code_zip("warmer", work / "code", functions_dir))

    parameters = {
        "BucketName": request.bucket,
        "ModelPrefix": prefix,
        "ModelUri": uri,
        "PackageType": request.package_type,
        "PythonRuntime": request.lambda_runtime,
        "Architecture": request.arch,
        "MemorySize": str(request.memory_mb),
        "Timeout": str(request.timeout_s),
        "EphemeralStorageSize": str(ephemeral),
        "InferenceCodeS3Key": inference.key,
        "ImageUri": request.image_uri or "",
        "AliasName": request.alias,
        "SnapStart": "true" if request.snapstart else "false",
        "ProvisionedConcurrency": str(request.provisioned),
        "FunctionUrl": "true" if request.function_url else "false",
        "WarmerCodeS3Key": warmer.key,
        "WarmSchedule": request.schedule,
        "WarmConcurrency": str(request.warm),
        "SecondWarmSchedule": request.second_schedule or "",
        "SecondWarmConcurrency": str(request.second_warm if request.second_schedule else 0),
        "LogRetentionDays": str(request.log_retention_days),
    }
    return Desired(
        request=request,
        artifact=artifact,
        manifest=manifest,
        version=version,
        model_uri=uri,
        runtime_layer=runtime_layer,
        model_layer=model_layer,
        inference_code=inference,
        warmer_code=warmer,
        template_body=template_path().read_text(),
        bucket_template_body=bucket_template_path().read_text(),
        ephemeral_mb=ephemeral,
        parameters=parameters,
    )
