"""One exception hierarchy for preheat; each class is a failure a caller may handle.

Messages are for people: they name the thing, the limit and the fix. Facts travel as
attributes so that callers never parse a message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class PreheatError(Exception):
    """Base of every error preheat raises on purpose."""


class ConfigurationError(PreheatError, ValueError):
    """A setting or argument has a value preheat cannot use."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{name}={value!r} is not valid: {allowed}")


class MissingExtra(PreheatError):
    """A verb needs an optional package that this installation lacks."""

    def __init__(self, verb: str, packages: Sequence[str], extras: Sequence[str]) -> None:
        self.verb = verb
        self.packages = tuple(packages)
        self.extras = tuple(extras)
        super().__init__(
            f"preheat {verb} needs {', '.join(self.packages)}: "
            f"pip install 'preheat[{','.join(self.extras)}]'"
        )


class AssetMissing(PreheatError):
    """preheat's own function sources or templates are not where its installation put them."""

    def __init__(self, what: str, path: Path) -> None:
        self.what = what
        self.path = path
        super().__init__(
            f"preheat's {what} is not at {path}: reinstall preheat from its wheel "
            "(`pip install preheat`), or run `make install` in a checkout"
        )


class ArtifactError(PreheatError):
    """Something is wrong with a model artifact or where it should be."""


class ArtifactNotFound(ArtifactError):
    """No artifact at the URI (no manifest, no alias, no bucket)."""

    def __init__(self, uri: str, detail: str = "") -> None:
        self.uri = uri
        hint = detail or "check the name and version, or push it first with `preheat push`"
        super().__init__(f"model {uri} not found: {hint}")


class ManifestError(ArtifactError):
    """A manifest is malformed, of an unknown format, or inconsistent."""


class UnsafePathError(ManifestError):
    """A path in a manifest, zip or directory would leave the artifact's root."""

    def __init__(self, path: str, root: str = "the artifact") -> None:
        self.path = path
        self.root = root
        super().__init__(f"path {path!r} escapes {root}: only relative paths inside it are allowed")


class IntegrityError(ArtifactError):
    """Bytes do not match the hash the manifest promises."""

    def __init__(self, what: str, expected: str, actual: str, detail: str = "") -> None:
        self.what = what
        self.expected = expected
        self.actual = actual
        extra = f"; {detail}" if detail else ""
        super().__init__(f"{what}: sha256 is {actual[:12]}…, manifest says {expected[:12]}…{extra}")


class FetchError(ArtifactError):
    """A remote read failed for good (after its retries)."""

    def __init__(self, what: str, cause: str, attempts: int) -> None:
        self.what = what
        self.cause = cause
        self.attempts = attempts
        super().__init__(f"could not fetch {what} after {attempts} attempts: {cause}")


class PushError(ArtifactError):
    """An upload to S3 failed or would overwrite a different version."""


class CacheFullError(PreheatError):
    """The disk tier cannot hold a version even after evicting everything it may."""

    def __init__(self, directory: str, needed: int, available: int, fix: str) -> None:
        self.directory = directory
        self.needed = needed
        self.available = available
        need, have = f"{needed / 1e6:.1f} MB", f"{available / 1e6:.1f} MB"
        if need == have:  # rounding would hide the shortfall
            need, have = f"{needed} bytes", f"{available} bytes"
        super().__init__(f"disk cache {directory} needs {need} but only {have} is available; {fix}")


class LoadError(PreheatError):
    """A runtime could not build a model from an artifact.

    `model` is the artifact's NAME/VERSION, `runtime` the runtime that tried ("tensorflow",
    "litert"), `stage` what failed: "load", "signature" (the artifact and its manifest
    disagree) or "warm-up".
    """

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        runtime: str | None = None,
        stage: str = "load",
    ) -> None:
        self.model = model
        self.runtime = runtime
        self.stage = stage
        super().__init__(message)


class ModelNotReady(PreheatError):
    """The load INIT handed back was still running when an invoke could wait no longer."""

    def __init__(self, uri: str, loading_s: float, waited_s: float) -> None:
        self.uri = uri
        self.loading_s = loading_s
        self.waited_s = waited_s
        super().__init__(
            f"model {uri} is still loading after {loading_s:.1f} s; this invoke waited "
            f"{waited_s:.1f} s, all its remaining time, and the next one waits again: raise "
            "the function's timeout, or ship the model in a faster tier (a layer or the image)"
        )


class BadRequest(PreheatError):
    """A prediction request the model cannot answer; maps to a 4xx response."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


class ToleranceExceeded(PreheatError):
    """A slimmed artifact's outputs differ from the source's by more than allowed."""

    def __init__(
        self, message: str, *, precision: str, report: Mapping[str, Any] | None = None
    ) -> None:
        self.precision = precision
        # The parity report of the failed check (errors, top-1 agreement); None when the
        # outputs could not be compared at all (the signatures differ).
        self.report = report
        super().__init__(message)


class UnsupportedModel(PreheatError):
    """A runtime or precision cannot express this model."""


class LayerTooLarge(PreheatError):
    """A layer or a set of layers breaks one of Lambda's size limits."""

    def __init__(
        self, message: str, *, name: str, size: int, limit: int, unit: str = "bytes"
    ) -> None:
        self.name = name
        self.size = size
        self.limit = limit
        self.unit = unit  # "bytes", or "layers" for the count of layers on one function
        super().__init__(message)


class LayerBuildError(PreheatError):
    """A layer could not be built, or the built layer failed its own checks (smoke import)."""


class ToolProcessError(PreheatError):
    """A helper process a tool starts (a local server, a reference run, pip) failed."""

    def __init__(self, what: str, reason: str, returncode: int | None = None) -> None:
        self.what = what
        self.reason = reason
        self.returncode = returncode
        code = f" (exit code {returncode})" if returncode is not None else ""
        super().__init__(f"{what} failed{code}: {reason}")


class DeployError(PreheatError):
    """A deploy step failed; the message names the resource and the reason.

    `resource` is what the step acted on (a stack, a bucket, a layer, a file), `code` AWS's
    error code when AWS refused.
    """

    def __init__(self, message: str, *, resource: str | None = None, code: str | None = None):
        self.resource = resource
        self.code = code
        super().__init__(message)


def first_line(exc: BaseException) -> str:
    """The first line of `exc`'s message, or its type's name when the message is empty.

    TensorFlow and the runtimes raise multi-page messages; a user-facing error keeps one line.
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
