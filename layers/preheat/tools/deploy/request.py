"""What the user asked `preheat deploy` for, validated in full before anything runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from preheat import constants as c
from preheat.exceptions import ConfigurationError
from preheat.tools.deploy import validate as v
from preheat.uri import check_name

RUNTIMES: tuple[str, ...] = ("litert", "tensorflow")
ARCHITECTURES: tuple[str, ...] = ("x86_64", "arm64")
# The template offers no older runtime: LiteRT and numpy wheels need Amazon Linux 2023.
PYTHONS: tuple[str, ...] = ("3.12", "3.13")
LOG_RETENTION_DAYS: tuple[int, ...] = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365)


@dataclass(frozen=True)
class DeployRequest:
    stack: str
    bucket: str
    model: Path
    runtime: str = "litert"
    precision: str | None = None
    name: str | None = None
    version: str | None = None
    prefix: str = "preheat"
    region: str | None = None
    warm: int = 1
    schedule: str = "rate(5 minutes)"
    second_schedule: str | None = None
    second_warm: int = 0
    image_uri: str | None = None
    model_layer: bool = True
    # The image carries the model at the read-only tier's path (infra/Dockerfile MODEL_DIR).
    model_in_image: bool = False
    runtime_layer_zip: Path | None = None
    python: str = "3.12"
    arch: str = "x86_64"
    memory_mb: int = 2048
    timeout_s: int = 30
    alias: str = "live"
    snapstart: bool = False
    provisioned: int = 0
    function_url: bool = False
    log_retention_days: int = 14
    prewarm: bool = True
    dry_run: bool = False

    @property
    def package_type(self) -> str:
        return "Zip" if self.runtime == "litert" else "Image"

    @property
    def lambda_runtime(self) -> str:
        return f"python{self.python}"

    def validated(
        self, known_regions: Callable[[], Sequence[str]] = v.known_regions
    ) -> DeployRequest:
        """This request with defaults resolved, or a ConfigurationError naming the first fault."""
        v.stack_name(self.stack)
        v.bucket_name(self.bucket)
        prefix = v.prefix(self.prefix)
        if self.region is not None:
            v.region(self.region, known_regions)
        if self.runtime not in RUNTIMES:
            raise ConfigurationError("--runtime", self.runtime, f"use {' or '.join(RUNTIMES)}")
        if self.arch not in ARCHITECTURES:
            raise ConfigurationError("--arch", self.arch, f"use {' or '.join(ARCHITECTURES)}")
        if self.snapstart:
            v.snapstart(self.python, self.provisioned)
        if self.python not in PYTHONS:
            raise ConfigurationError(
                "--python",
                self.python,
                f"use one of {', '.join(PYTHONS)} (LiteRT wheels need Amazon Linux 2023)",
            )
        if not self.model.exists():
            raise ConfigurationError(
                "--model", str(self.model), "no such directory: give a SavedModel or an artifact"
            )
        if not self.model.is_dir() or not (
            (self.model / c.MANIFEST_NAME).is_file() or (self.model / "saved_model.pb").is_file()
        ):
            raise ConfigurationError(
                "--model",
                str(self.model),
                "it has neither manifest.json nor saved_model.pb; give an artifact or a SavedModel",
            )
        name = check_name("--name", self.name or _default_name(self.model))
        if self.version is not None:
            check_name("--version", self.version)
        v.alias(self.alias)
        v.schedule(self.schedule)
        if self.second_schedule:
            v.schedule(self.second_schedule)
        v.int_range("--warm", self.warm, 0, 1000)
        v.int_range("--second-warm", self.second_warm, 0, 1000)
        v.int_range("--memory", self.memory_mb, 128, 10240, " MB")
        v.int_range("--timeout", self.timeout_s, 1, 900, " seconds")
        v.int_range("--provisioned", self.provisioned, 0, 10000)
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ConfigurationError(
                "--log-retention",
                self.log_retention_days,
                f"use one of {', '.join(map(str, LOG_RETENTION_DAYS))} days",
            )
        if self.runtime == "tensorflow":
            if not self.image_uri:
                raise ConfigurationError(
                    "--image-uri",
                    self.image_uri,
                    "the tensorflow runtime runs as a container image: build infra/Dockerfile, "
                    "push it to ECR and pass its URI (or use --runtime litert)",
                )
        elif self.model_in_image:
            raise ConfigurationError(
                "--model-in-image", True, "only the tensorflow runtime's image carries a model"
            )
        elif self.image_uri:
            raise ConfigurationError(
                "--image-uri", self.image_uri, "only the tensorflow runtime uses an image"
            )
        if self.runtime_layer_zip is not None and not self.runtime_layer_zip.is_file():
            raise ConfigurationError(
                "--runtime-layer", str(self.runtime_layer_zip), "no such file: give a layer zip"
            )
        return replace(
            self,
            prefix=prefix,
            name=name,
            model_layer=self.model_layer and self.runtime == "litert",
        )


def _default_name(model: Path) -> str:
    """The model's name when --name is not given: the artifact's own, else the directory's."""
    manifest = model / c.MANIFEST_NAME
    if manifest.is_file():
        from preheat.artifact import manifest as mf

        return mf.read(model).name
    return model.resolve().name
