"""The strategies the benchmark compares, as a registry: one small class per way to ship a model.

A strategy says whether it can run here, and prepares a `Deployment`: which handler, which
environment variables, which layers, and whether an environment must run once before the
measured ones (to seed a shared disk tier). New strategies register themselves with
`register` and need nothing else from the runner.

The SnapStart strategies are opt-in (`--snapstart`, or by name): they need a Python 3.12
environment (TensorFlow's is installed with pip on first use) and are reported apart.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preheat import constants as c
from preheat.exceptions import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

INFERENCE_HANDLER = "app.handler"
BASELINE_HANDLER = "app.handler"
# Lambda's SnapStart for Python starts with python3.12.
SNAPSTART_PYTHON = "3.12"


@dataclass(frozen=True)
class Deployment:
    """How the emulator runs one strategy's function."""

    code_dir: Path
    handler: str
    env: Mapping[str, str]
    layers: tuple[Path, ...] = ()
    # Bytes the function must bring in (from S3 or a layer) and the artifact's parity record.
    artifact_bytes: int | None = None
    artifact_parity: Mapping[str, Any] | None = None
    # Run one unmeasured environment first (it fills a shared disk tier).
    prime: bool = False
    # The interpreter environments run with (None: this one, with its site-packages).
    python: str | None = None
    # SnapStart on: INIT runs when a version is published, each cold start restores it.
    snapstart: bool = False


@dataclass
class Context:
    """What strategies share while preparing: the source model, S3, a work directory."""

    source: Path
    name: str
    version: str
    workdir: Path
    functions_dir: Path
    bucket: str
    s3: S3Client
    s3_env: Mapping[str, str]
    progress: Callable[[str], None] = lambda _msg: None
    # Results of shared steps (an artifact pushed once and used by several strategies).
    memo: dict[str, Any] = field(default_factory=dict)
    # Each TensorFlow environment's versions against what pip gives (for the report).
    environments: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]


class Strategy(ABC):
    name: str
    description: str
    # Measured as restores of a published version and reported apart (see summary.py).
    snapstart: bool = False

    def unavailable(self) -> str | None:
        """Why this strategy cannot run here (a missing part), or None when it can."""
        return None

    @abstractmethod
    def prepare(self, ctx: Context) -> Deployment: ...


def _missing(module: str, what: str) -> str | None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"needs {what} ({module} is not installed in this preheat)"


# ---------------------------------------------------------------------------- shared steps


def upload_tree(ctx: Context, prefix: str) -> int:
    """Upload the source SavedModel's files as plain objects under `prefix`; return bytes."""
    total = 0
    for path in sorted(p for p in ctx.source.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(ctx.source).as_posix()}"
        ctx.s3.upload_file(str(path), ctx.bucket, key)
        total += path.stat().st_size
    return total


def push_artifact(ctx: Context, artifact: Path, name: str) -> tuple[str, int]:
    """Push an artifact (or SavedModel) as `preheat push` does by default; its URI and bytes.

    A SavedModel is re-saved exact first, so the bytes are those of what was pushed.
    """
    from preheat.tools.push import push

    result = push(
        artifact,
        f"s3://{ctx.bucket}/preheat",
        name=name,
        version=ctx.version,
        s3_client=ctx.s3,
        on_stage=lambda text: ctx.progress(f"push {name}: {text}"),
    )
    return result.uri, result.manifest.total_bytes


def inference_code(ctx: Context) -> Path:
    return ctx.functions_dir / "inference"


# ---------------------------------------------------------------------------- strategies


class Baseline(Strategy):
    """What users write today, in what `pip install tensorflow-cpu boto3` gives them."""

    name = "baseline"
    description = "boto3 download_file in INIT, then import tensorflow, load; first call traced"

    def prepare(self, ctx: Context) -> Deployment:
        prefix = f"baseline/{ctx.name}/{ctx.version}"
        size = ctx.once("baseline-upload", lambda: upload_tree(ctx, prefix))
        env = {**ctx.s3_env, "BASELINE_BUCKET": ctx.bucket, "BASELINE_PREFIX": prefix}
        layer, python = tensorflow_runtime(ctx, "user")
        return Deployment(ctx.functions_dir / "baseline", BASELINE_HANDLER, env,
                          layers=(layer,), artifact_bytes=size, python=python)  # fmt: skip


class PreheatTF(Strategy):
    """The SavedModel pushed as `preheat push` does by default (re-saved exact), fetched
    from S3 overlapped with the TensorFlow import, warm-up in INIT, in preheat's lean
    TensorFlow environment (the container image's packages).

    With `disk=True`, every measured environment finds the version already in its disk
    tier. The tier is a directory shared by the function's environments and seeded once by
    an unmeasured environment running the same code: the files are then exactly what the
    cache itself writes, with no knowledge of its layout here.
    """

    def __init__(self, disk: bool = False) -> None:
        self.disk = disk
        self.name = "preheat-tf-disk" if disk else "preheat-tf"
        self.description = (
            "preheat, the version already in the disk tier (no S3 bytes)"
            if disk
            else "preheat push (exact), S3 fetch overlapped with a lean TensorFlow import"
        )

    def prepare(self, ctx: Context) -> Deployment:
        uri, size = ctx.once("push-tf", lambda: push_artifact(ctx, ctx.source, ctx.name))
        env = {**ctx.s3_env, c.ENV_MODEL_URI: uri}
        if self.disk:
            shared = ctx.workdir / "disk-tier"
            shared.mkdir(parents=True, exist_ok=True)
            env[c.ENV_CACHE_DIR] = str(shared)
        layer, python = tensorflow_runtime(ctx, "lean")
        return Deployment(inference_code(ctx), INFERENCE_HANDLER, env, layers=(layer,),
                          artifact_bytes=size, prime=self.disk, python=python)  # fmt: skip


_LITERT_NEEDS = (
    ("preheat.tools.slim.convert", "preheat slim (LiteRT conversion)"),
    ("preheat.tools.layer.runtime_layer", "preheat layer (the LiteRT runtime layer)"),
    ("ai_edge_litert", "the LiteRT interpreter (pip install 'preheat[litert]')"),
)


class PreheatLiteRT(Strategy):
    """The model converted by `preheat slim` to LiteRT at one precision, fetched from S3.

    Deployed as Lambda runs it: a zip function on the LiteRT runtime layer, in a stand-in
    for the managed runtime (see managed.py) that sees its layers and what Lambda provides,
    never this machine's site-packages (so no TensorFlow).
    """

    def __init__(self, precision: str) -> None:
        self.precision = precision
        self.name = f"preheat-litert-{precision}"
        self.description = f"LiteRT {precision} artifact fetched from S3, LiteRT runtime layer"

    def unavailable(self) -> str | None:
        return next((r for m, w in _LITERT_NEEDS if (r := _missing(m, w))), None)

    def artifact(self, ctx: Context) -> tuple[Path, Mapping[str, Any] | None, str, int]:
        artifact, parity = ctx.once(f"slim-{self.precision}", lambda: slim(ctx, self.precision))
        uri, size = ctx.once(
            f"push-{self.precision}",
            lambda: push_artifact(ctx, artifact, f"{ctx.name}-litert-{self.precision}"),
        )
        return artifact, parity, uri, size

    def prepare(self, ctx: Context) -> Deployment:
        _, parity, uri, size = self.artifact(ctx)
        runtime_dir, python = ctx.once("litert-runtime", lambda: litert_runtime(ctx))
        env = {**ctx.s3_env, c.ENV_MODEL_URI: uri}
        return Deployment(inference_code(ctx), INFERENCE_HANDLER, env, layers=(runtime_dir,),
                          artifact_bytes=size, artifact_parity=parity, python=python)  # fmt: skip


class PreheatLayer(PreheatLiteRT):
    """The LiteRT fp16 model baked into a model layer beside the runtime layer: no S3 at INIT."""

    def __init__(self) -> None:
        super().__init__("fp16")
        self.name = "preheat-layer"
        self.description = "LiteRT fp16 model in a model layer, LiteRT runtime layer, no S3"

    def prepare(self, ctx: Context) -> Deployment:
        from preheat.tools.layer import build_model_layer

        artifact, parity, uri, size = self.artifact(ctx)
        runtime_dir, python = ctx.once("litert-runtime", lambda: litert_runtime(ctx))
        model = build_model_layer(artifact, ctx.workdir / "layer-zips")
        model_dir = _unzip(model.zip_path, ctx.workdir / "layers" / "model")
        # The read-only tier finds the version under /opt; the S3 URI names it (and stays
        # the fallback), as a deployed function is configured.
        env = {**ctx.s3_env, c.ENV_MODEL_URI: uri}
        return Deployment(inference_code(ctx), INFERENCE_HANDLER, env,
                          layers=(runtime_dir, model_dir), artifact_bytes=size,
                          artifact_parity=parity, python=python)  # fmt: skip


def _unzip(zip_path: Path, target: Path) -> Path:
    from preheat.tools.layer.zipsafe import extract

    extract(zip_path, target)
    return target


def tensorflow_runtime(ctx: Context, kind: str) -> tuple[Path, str]:
    """A TensorFlow environment (see environments.py) and the managed runtime's stand-in."""

    def make() -> tuple[Path, str]:
        from preheat.tools.bench.environments import tensorflow_layer
        from preheat.tools.bench.managed import interpreter

        ctx.progress(f"linking the {kind} TensorFlow environment")
        layer = tensorflow_layer(kind, ctx.workdir / "environments", progress=ctx.progress)
        resolution = layer / "resolution.json"
        if resolution.is_file():
            ctx.environments[kind] = json.loads(resolution.read_text())
        return layer, str(interpreter(ctx.workdir))

    result: tuple[Path, str] = ctx.once(f"tensorflow-{kind}", make)
    return result


def litert_runtime(ctx: Context) -> tuple[Path, str]:
    """The LiteRT runtime layer, unpacked, and an interpreter of the Python it targets."""
    from preheat.tools.bench.managed import interpreter
    from preheat.tools.layer import build_runtime_layer
    from preheat.tools.layer.plan import default_python

    python = default_python("litert")
    ctx.progress(f"building the LiteRT runtime layer for Python {python}")
    layer = build_runtime_layer("litert", ctx.workdir / "layer-zips", python=python,
                                progress=ctx.progress)  # fmt: skip
    runtime_dir = _unzip(layer.zip_path, ctx.workdir / "layers" / "runtime")
    return runtime_dir, str(interpreter(ctx.workdir, python))


def slim(
    ctx: Context, precision: str, runtime: str = "litert"
) -> tuple[Path, Mapping[str, Any] | None]:
    """Slim the source with `preheat slim`; return the artifact and its parity record."""
    from preheat.tools.slim import slim as _slim

    out = ctx.workdir / f"{runtime}-{precision}"
    ctx.progress(f"slimming to {runtime} {precision}")
    result = _slim(
        ctx.source,
        out,
        runtime=runtime,
        precision=precision,
        name=f"{ctx.name}-{runtime}-{precision}",
        version=ctx.version,
        force=True,
        progress=ctx.progress,
    )
    return result.out, result.manifest.parity


# ---------------------------------------------------------------------------- SnapStart


def _running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _snapstart_capable(version: str) -> bool:
    """Whether Python `version` ("3.12") has SnapStart (compared as numbers: 3.9 < 3.12)."""
    as_tuple = tuple(int(p) for p in version.split(".")[:2])
    return as_tuple >= tuple(int(p) for p in SNAPSTART_PYTHON.split("."))


def _snapstart_python_missing() -> str | None:
    """Why no Python with SnapStart can run here, or None."""
    from preheat.tools.layer.plan import find_interpreter

    if _snapstart_capable(_running_python()) or find_interpreter(SNAPSTART_PYTHON):
        return None
    return (
        f"needs Python {SNAPSTART_PYTHON}+ (SnapStart starts there): install "
        f"python{SNAPSTART_PYTHON} (e.g. pyenv install {SNAPSTART_PYTHON})"
    )


class PreheatTFSnapStart(PreheatTF):
    """preheat-tf's function and artifact with SnapStart on, in the lean TensorFlow
    environment on Python 3.12+ (installed with pip once when this Python is older)."""

    snapstart = True

    def __init__(self) -> None:
        super().__init__()
        self.name = "preheat-tf-snapstart"
        self.description = "preheat-tf with SnapStart: INIT at publish, each cold start a restore"

    def unavailable(self) -> str | None:
        return _snapstart_python_missing()

    def prepare(self, ctx: Context) -> Deployment:
        uri, size = ctx.once("push-tf", lambda: push_artifact(ctx, ctx.source, ctx.name))
        env = {**ctx.s3_env, c.ENV_MODEL_URI: uri}
        layer, python = snapstart_tensorflow_runtime(ctx)
        return Deployment(inference_code(ctx), INFERENCE_HANDLER, env, layers=(layer,),
                          artifact_bytes=size, python=python, snapstart=True)  # fmt: skip


class PreheatLiteRTSnapStart(PreheatLiteRT):
    """preheat-litert-fp16's function, artifact and runtime layer with SnapStart on (the
    LiteRT layer already targets Python 3.12+, the oldest on Amazon Linux 2023)."""

    snapstart = True

    def __init__(self) -> None:
        super().__init__("fp16")
        self.name = "preheat-litert-snapstart"
        self.description = (
            "preheat-litert-fp16 with SnapStart: INIT at publish, each cold start a restore"
        )

    def unavailable(self) -> str | None:
        return super().unavailable() or _snapstart_python_missing()

    def prepare(self, ctx: Context) -> Deployment:
        from preheat.tools.layer.plan import default_python

        python = default_python("litert")
        if not _snapstart_capable(python):
            raise ConfigurationError(
                "strategy", self.name, f"the LiteRT layer targets Python {python}; SnapStart "
                f"needs {SNAPSTART_PYTHON}+: run preheat on Python {SNAPSTART_PYTHON}+",
            )  # fmt: skip
        return dataclasses.replace(super().prepare(ctx), snapstart=True)


def snapstart_tensorflow_runtime(ctx: Context) -> tuple[Path, str]:
    """The lean TensorFlow environment on a Python SnapStart runs: this one when it is
    3.12+, else one installed for Python 3.12 with pip (once, cached; see environments.py)."""
    if _snapstart_capable(_running_python()):
        return tensorflow_runtime(ctx, "lean")

    def make() -> tuple[Path, str]:
        from preheat.tools.bench.environments import pip_tensorflow_layer
        from preheat.tools.bench.managed import interpreter

        layer = pip_tensorflow_layer(
            SNAPSTART_PYTHON, ctx.workdir / "environments", progress=ctx.progress
        )
        return layer, str(interpreter(ctx.workdir, SNAPSTART_PYTHON))

    result: tuple[Path, str] = ctx.once(f"tensorflow-lean-{SNAPSTART_PYTHON}", make)
    return result


# ---------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    _REGISTRY[strategy.name] = strategy
    return strategy


for _s in (
    Baseline(),
    PreheatTF(),
    PreheatTF(disk=True),
    PreheatLiteRT("fp32"),
    PreheatLiteRT("fp16"),
    PreheatLiteRT("int8"),
    PreheatLayer(),
    PreheatTFSnapStart(),
    PreheatLiteRTSnapStart(),
):
    register(_s)


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            "strategy", name, f"use one or more of {', '.join(_REGISTRY)}"
        ) from None


def parse(spec: str | None, snapstart: bool = False) -> list[Strategy]:
    """`a,b,c` to strategies, baseline first; None for the default ones (every one but the
    opt-in SnapStart ones), "all" for every registered one. `snapstart` adds the SnapStart
    ones to either."""
    if spec is None or spec.strip() == "":
        chosen = [s for s in _REGISTRY.values() if not s.snapstart]
    elif spec.strip() == "all":
        chosen = list(_REGISTRY.values())
    else:
        seen: dict[str, Strategy] = {}
        for part in spec.split(","):
            if part.strip():
                seen.setdefault(part.strip(), get(part.strip()))
        chosen = list(seen.values())
        if not chosen:
            raise ConfigurationError("strategies", spec, "name at least one strategy")
    if snapstart:
        chosen += [s for s in _REGISTRY.values() if s.snapstart and s not in chosen]
    return sorted(chosen, key=lambda s: s.name != "baseline")


def default_functions_dir() -> Path:
    """The functions/ folder this preheat carries (a wheel's copy or the checkout's)."""
    from preheat.tools import assets

    return assets.functions_dir()
