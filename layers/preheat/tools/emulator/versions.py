"""Versions and aliases of the emulated functions: what a qualifier names, and what it runs.

`$LATEST` runs the function's code directory as it is now. PublishVersion freezes it: the
code is copied into the emulator's work dir and the configuration kept, so later edits of
the source do not reach the version. An alias names one version, or two with a weight for
the second (Lambda's `RoutingConfig.AdditionalVersionWeights`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from preheat.tools.emulator.config import FunctionConfig, function_arn
from preheat.tools.emulator.errors import (
    ApiError,
    alias_exists,
    alias_not_found,
    invalid_parameter,
    not_found,
    precondition_failed,
    validation,
)

LATEST = "$LATEST"
# Lambda's patterns for the names the control plane takes (botocore checks only lengths).
ALIAS_PATTERN = r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
VERSION_PATTERN = r"(\$LATEST|[0-9]+)"
QUALIFIER_PATTERN = r"(|[a-zA-Z0-9$_-]+)"
_ALIAS = re.compile(rf"^{ALIAS_PATTERN}$")
_VERSION = re.compile(rf"^{VERSION_PATTERN}$")
_QUALIFIER = re.compile(rf"^{QUALIFIER_PATTERN}$")
MAX_ALIAS_LENGTH = 128
MAX_DESCRIPTION_LENGTH = 256
# Bytecode a run leaves in the code directory is not part of the code.
_IGNORED = ("__pycache__", "*.pyc")

Random = Callable[[], float]


def split_function_name(raw: str) -> tuple[str, str | None]:
    """A name, `name:qualifier`, a partial ARN or a full ARN -> (name, qualifier)."""
    parts = raw.split(":")
    if parts[0] == "arn" and len(parts) >= 7:
        return parts[6], (parts[7] if len(parts) > 7 else None)
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2], (parts[3] if len(parts) > 3 else None)
    if len(parts) == 2:
        return parts[0], parts[1]
    return raw, None


def function_ref(raw: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """(name, qualifier) from a FunctionName and an optional `Qualifier`, as Lambda reads them.

    A qualifier in the name and a different `Qualifier` is refused, as Lambda refuses it.
    """
    name, derived = split_function_name(raw)
    qualifier = qualifier or None
    if derived is not None and qualifier is not None and derived != qualifier:
        raise invalid_parameter(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    chosen = qualifier if qualifier is not None else (derived or None)
    if chosen is not None and (len(chosen) > 128 or not _QUALIFIER.match(chosen)):
        raise validation(
            chosen,
            "qualifier",
            f"Member must satisfy regular expression pattern: {QUALIFIER_PATTERN}",
        )
    return name, chosen


def lambda_timestamp(when: float) -> str:
    """Lambda's LastModified form: 2026-12-01T15:47:34.123+0000."""
    moment = datetime.fromtimestamp(when, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


@dataclass(frozen=True)
class CodeDigest:
    """What Lambda reports about a deployment package: its hash and size."""

    sha256: str  # base64 of the SHA-256, as Lambda's CodeSha256
    size: int
    modified: float  # newest file's mtime, seconds since the epoch


def _code_files(root: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in filenames:
            if not name.endswith(".pyc"):
                full = Path(dirpath) / name
                found.append((full.relative_to(root).as_posix(), full))
    return sorted(found)


def code_digest(root: Path) -> CodeDigest:
    """A stable digest of a code directory: each file's path and bytes, in order.

    Not the SHA-256 of a zip (a zip's bytes depend on the zipper), but the same content
    always gives the same value and any change gives another, which is what callers
    compare it for.
    """
    h = hashlib.sha256()
    size = 0
    newest = 0.0
    for rel, path in _code_files(root):
        data = path.read_bytes()
        h.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
        size += len(data)
        newest = max(newest, path.stat().st_mtime)
    return CodeDigest(base64.b64encode(h.digest()).decode("ascii"), size, newest)


@dataclass
class Version:
    """`$LATEST` or a published version: the configuration it runs and its state."""

    number: str
    fn: FunctionConfig
    description: str = ""
    # Frozen at publish; for $LATEST read from the code directory when asked.
    digest: CodeDigest | None = None
    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    published_at: float = 0.0
    state: str = "Active"
    state_reason: str | None = None
    state_reason_code: str | None = None

    @property
    def name(self) -> str:
        return self.fn.name

    @property
    def arn(self) -> str:
        return function_arn(self.fn.name, self.number)

    def code(self) -> CodeDigest:
        return self.digest if self.digest is not None else code_digest(self.fn.code_dir)

    def fail(self, reason: str, code: str = "FunctionError") -> None:
        self.state, self.state_reason, self.state_reason_code = "Failed", reason, code


@dataclass
class Alias:
    name: str
    function: str
    function_version: str
    description: str = ""
    # At most one entry: a second version and the share of invokes it gets.
    weights: dict[str, float] = field(default_factory=dict)
    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def arn(self) -> str:
        return function_arn(self.function, self.name)

    def route(self, rand: Random) -> str:
        """The version this invoke runs: the second one with its weight's probability."""
        for extra, weight in self.weights.items():
            if rand() < weight:
                return extra
        return self.function_version


def check_alias_name(name: object) -> str:
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_ALIAS_LENGTH
        or not _ALIAS.match(name)
    ):
        raise validation(
            name, "name", f"Member must satisfy regular expression pattern: {ALIAS_PATTERN}"
        )
    return name


def _check_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        raise validation(
            description,
            "description",
            f"Member must have length less than or equal to {MAX_DESCRIPTION_LENGTH}",
        )
    return description


def _check_version(value: object) -> str:
    if not isinstance(value, str) or not _VERSION.match(value):
        raise validation(
            value,
            "functionVersion",
            f"Member must satisfy regular expression pattern: {VERSION_PATTERN}",
        )
    return value


def _weights_error(weights: Mapping[object, object], constraint: str) -> ApiError:
    shown = "{" + ", ".join(f"{k}={v}" for k, v in weights.items()) + "}"
    return validation(shown, "routingConfig.additionalVersionWeights", constraint)


class FunctionVersions:
    """One function's `$LATEST`, published versions and aliases; safe across threads."""

    def __init__(self, fn: FunctionConfig, clock: Callable[[], float]) -> None:
        self.name = fn.name
        self.latest = Version(LATEST, fn)
        self.published: dict[str, Version] = {}
        self.aliases: dict[str, Alias] = {}
        self._wall = clock
        self._next = 1
        self._lock = threading.RLock()

    # -- reading ------------------------------------------------------------------------

    def version(self, number: str) -> Version:
        with self._lock:
            found = self.latest if number == LATEST else self.published.get(number)
        if found is None:
            raise not_found(function_arn(self.name, number))
        return found

    def versions(self) -> list[Version]:
        with self._lock:
            return [self.latest, *sorted(self.published.values(), key=lambda v: int(v.number))]

    def alias(self, name: str) -> Alias:
        with self._lock:
            found = self.aliases.get(name)
        if found is None:
            raise alias_not_found(function_arn(self.name, name))
        return found

    def resolve(self, qualifier: str | None, rand: Random) -> Version:
        """The version an invoke with `qualifier` runs; 404 as Lambda for an unknown one."""
        if qualifier is None or qualifier == LATEST:
            return self.latest
        with self._lock:
            alias = None if qualifier.isdigit() else self.aliases.get(qualifier)
            target = alias.route(rand) if alias is not None else qualifier
            found = self.latest if target == LATEST else self.published.get(target)
        if found is None:
            raise not_found(function_arn(self.name, qualifier))
        return found

    # -- publishing ---------------------------------------------------------------------

    def publish(
        self,
        versions_dir: Path,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
        state: str = "Active",
    ) -> tuple[Version, bool]:
        """Freeze `$LATEST` as the next version; (version, whether it is new).

        As on Lambda, nothing changed since the last version returns that version.
        """
        text = _check_description(description)
        with self._lock:
            fn = self.latest.fn
            if revision_id is not None and revision_id != self.latest_revision():
                raise precondition_failed()
            current = code_digest(fn.code_dir)
            if code_sha256 is not None and code_sha256 != current.sha256:
                raise invalid_parameter(
                    f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in "
                    f"$LATEST ({current.sha256}). Please try again with the CodeSHA256 in $LATEST."
                )
            if self.published:
                last = self.published[str(self._next - 1)]
                if last.digest is not None and last.digest.sha256 == current.sha256:
                    return last, False
            number = str(self._next)
            code = versions_dir / number / "code"
            # The version's digest is of the copy: what it will run, even if the source
            # changed while it was being copied.
            shutil.copytree(
                fn.code_dir, code, symlinks=False, ignore=shutil.ignore_patterns(*_IGNORED)
            )
            frozen = code_digest(code)
            version = Version(
                number,
                dataclasses.replace(fn, code_dir=code, env=dict(fn.env)),
                description=text,
                digest=frozen,
                published_at=self._wall(),
                state=state,
            )
            self.published[number] = version
            self._next += 1
            return version, True

    def latest_revision(self) -> str:
        """$LATEST's RevisionId: it changes when its code does."""
        digest = base64.b64decode(code_digest(self.latest.fn.code_dir).sha256)
        return str(uuid.UUID(bytes=digest[:16]))

    # -- aliases ------------------------------------------------------------------------

    def _routing(self, primary: str, routing: object) -> dict[str, float]:
        if routing is None:
            return {}
        if not isinstance(routing, Mapping):
            raise invalid_parameter("RoutingConfig must be an object with AdditionalVersionWeights")
        weights = routing.get("AdditionalVersionWeights") or {}
        if not isinstance(weights, Mapping):
            raise invalid_parameter("AdditionalVersionWeights must map a version to a weight")
        if not weights:
            return {}
        if len(weights) > 1:
            raise invalid_parameter(
                "Number of items in AdditionalVersionWeights cannot be greater than 1"
            )
        ((extra, weight),) = weights.items()
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not 0.0 <= weight <= 1.0
        ):
            raise _weights_error(
                weights,
                "Map value must satisfy constraint: [Member must have value less than or "
                "equal to 1.0, Member must have value greater than or equal to 0.0]",
            )
        if not isinstance(extra, str) or not extra.isdigit():
            raise _weights_error(
                weights,
                "Map keys must satisfy constraint: [Member must satisfy regular expression "
                "pattern: [0-9]+]",
            )
        if extra == primary:
            raise invalid_parameter(
                f"Invalid function version {primary}. Function version {primary} is already "
                "included in routing configuration."
            )
        if primary == LATEST:
            raise invalid_parameter(
                "$LATEST is not supported for an alias pointing to more than 1 version"
            )
        self.version(extra)
        return {extra: float(weight)}

    def create_alias(
        self,
        name: object,
        function_version: object,
        description: object = None,
        routing: object = None,
    ) -> Alias:
        alias_name = check_alias_name(name)
        target = _check_version(function_version)
        text = _check_description(description)
        with self._lock:
            self.version(target)
            if alias_name in self.aliases:
                raise alias_exists(function_arn(self.name, alias_name))
            alias = Alias(alias_name, self.name, target, text, self._routing(target, routing))
            self.aliases[alias_name] = alias
            return alias

    def update_alias(
        self,
        name: str,
        function_version: object = None,
        description: object = None,
        routing: object = None,
        revision_id: object = None,
    ) -> Alias:
        with self._lock:
            alias = self.alias(name)
            if revision_id is not None and revision_id != alias.revision_id:
                raise precondition_failed()
            target = alias.function_version
            if function_version is not None:
                target = _check_version(function_version)
                self.version(target)
            weights = alias.weights if routing is None else self._routing(target, routing)
            if routing is None and weights:
                # The old weights must still fit the new primary version.
                weights = self._routing(target, {"AdditionalVersionWeights": weights})
            text = alias.description if description is None else _check_description(description)
            updated = Alias(name, self.name, target, text, weights)
            self.aliases[name] = updated
            return updated

    def delete_alias(self, name: str) -> None:
        with self._lock:
            self.alias(name)
            del self.aliases[name]

    def list_aliases(self, function_version: str | None = None) -> list[Alias]:
        with self._lock:
            return [
                a
                for a in sorted(self.aliases.values(), key=lambda a: a.name)
                if function_version is None or a.function_version == function_version
            ]
