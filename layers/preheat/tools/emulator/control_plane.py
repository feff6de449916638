"""The part of Lambda's control plane tools use, over its REST API (2015-03-31).

GetFunction, GetFunctionConfiguration, ListFunctions, PublishVersion,
ListVersionsByFunction and the alias operations, with the JSON shapes and error codes of
botocore's service model, so boto3, the AWS CLI and deploy scripts work unchanged.
"""

from __future__ import annotations

import math
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from preheat.tools.emulator.config import ACCOUNT_ID, function_arn
from preheat.tools.emulator.environment import python_version
from preheat.tools.emulator.errors import ApiError, invalid_parameter, unknown_operation, validation
from preheat.tools.emulator.versions import (
    LATEST,
    Alias,
    FunctionVersions,
    Version,
    function_ref,
    lambda_timestamp,
)

PREFIX = "/2015-03-31/functions"
# What one page of a list holds unless MaxItems says otherwise (Lambda's own default).
DEFAULT_PAGE = 50
MAX_PAGE = 10_000
# A placeholder role: the emulator runs every function as the caller's own credentials.
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/preheat-emulator"
# The /tmp size Lambda gives by default (the emulator does not limit it).
EPHEMERAL_MB = 512
_ROUTE = re.compile(rf"^{PREFIX}(?:/(?P<fn>[^/]+)(?:/(?P<kind>[a-z]+)(?:/(?P<alias>[^/]+))?)?)?/?$")

Query = Mapping[str, str]
Answer = tuple[int, dict[str, Any] | None]


class Functions(Protocol):
    """What the control plane needs from the emulator."""

    def versions(self, name: str) -> FunctionVersions: ...

    @property
    def catalog(self) -> Mapping[str, FunctionVersions]: ...

    def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> Version: ...


def _architecture() -> str:
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def configuration(version: Version, arn: str, revision_id: str) -> dict[str, Any]:
    """FunctionConfiguration, as GetFunctionConfiguration and the lists answer it."""
    fn = version.fn
    code = version.code()
    published = version.number != LATEST
    out: dict[str, Any] = {
        "FunctionName": fn.name,
        "FunctionArn": arn,
        "Runtime": f"python{python_version(fn.python)}",
        "Role": ROLE_ARN,
        "Handler": fn.handler,
        "CodeSize": code.size,
        "Description": version.description,
        # Lambda's timeouts are whole seconds; a fractional test timeout rounds up.
        "Timeout": math.ceil(fn.timeout_s),
        "MemorySize": fn.memory_mb,
        "LastModified": lambda_timestamp(version.published_at if published else code.modified),
        "CodeSha256": code.sha256,
        "Version": version.number,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": revision_id,
        "State": version.state,
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [_architecture()],
        "EphemeralStorage": {"Size": EPHEMERAL_MB},
        "SnapStart": {
            "ApplyOn": "PublishedVersions" if fn.snapstart else "None",
            "OptimizationStatus": "On" if fn.snapstart and published else "Off",
        },
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{fn.name}"},
    }
    if fn.env:
        out["Environment"] = {"Variables": dict(fn.env)}
    if version.state_reason is not None:
        out["StateReason"] = version.state_reason
        out["StateReasonCode"] = version.state_reason_code
    return out


def alias_configuration(alias: Alias) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AliasArn": alias.arn,
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.weights:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return out


def _page(items: Sequence[dict[str, Any]], query: Query, key: str) -> dict[str, Any]:
    """One page of a list and the marker of the next, if any (the marker is an offset)."""
    raw_max = query.get("MaxItems")
    try:
        size = DEFAULT_PAGE if raw_max is None else int(raw_max)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE:
        raise validation(
            raw_max,
            "maxItems",
            f"Member must have value between 1 and {MAX_PAGE}",
        )
    marker = query.get("Marker")
    start = int(marker) if marker and marker.isdigit() else 0
    if marker and not marker.isdigit():
        raise invalid_parameter(
            f"Invalid Marker {marker!r}: pass the NextMarker of a previous page"
        )
    out: dict[str, Any] = {key: list(items[start : start + size])}
    if start + size < len(items):
        out["NextMarker"] = str(start + size)
    return out


class ControlPlane:
    """Routes one control-plane request to the emulator; raises ApiError as Lambda answers."""

    def __init__(self, functions: Functions) -> None:
        self._functions = functions

    def handle(self, method: str, path: str, query: Query, body: bytes) -> Answer:
        match = _ROUTE.match(path)
        if match is None:
            raise unknown_operation()
        raw_fn, kind, alias = match.group("fn"), match.group("kind"), match.group("alias")
        if raw_fn is None:
            if method == "GET":
                return 200, self.list_functions(query)
            raise unknown_operation()
        handler = self._routes().get((method, kind, alias is not None))
        if handler is None:
            raise unknown_operation()
        return handler(raw_fn, alias or "", query, _json(body, method))

    def _routes(
        self,
    ) -> dict[tuple[str, str | None, bool], Callable[[str, str, Query, dict[str, Any]], Answer]]:
        return {
            ("GET", None, False): self.get_function,
            ("GET", "configuration", False): self.get_function_configuration,
            ("POST", "versions", False): self.publish_version,
            ("GET", "versions", False): self.list_versions,
            ("POST", "aliases", False): self.create_alias,
            ("GET", "aliases", False): self.list_aliases,
            ("GET", "aliases", True): self.get_alias,
            ("PUT", "aliases", True): self.update_alias,
            ("DELETE", "aliases", True): self.delete_alias,
        }

    # -- functions and versions ---------------------------------------------------------

    def _qualified(self, raw_fn: str, query: Query) -> tuple[FunctionVersions, Version, str]:
        """The version a FunctionName and Qualifier name, and the ARN to report it under."""
        name, qualifier = function_ref(raw_fn, query.get("Qualifier"))
        versions = self._functions.versions(name)
        if qualifier is None:
            return versions, versions.latest, function_arn(name)
        if qualifier == LATEST or qualifier.isdigit():
            return versions, versions.version(qualifier), function_arn(name, qualifier)
        alias = versions.alias(qualifier)
        return versions, versions.version(alias.function_version), alias.arn

    def _unqualified(self, raw_fn: str) -> FunctionVersions:
        name, qualifier = function_ref(raw_fn)
        if qualifier is not None:
            raise invalid_parameter(f"Cannot provide qualifier {qualifier} for this operation")
        return self._functions.versions(name)

    @staticmethod
    def _config(versions: FunctionVersions, version: Version, arn: str) -> dict[str, Any]:
        revision = versions.latest_revision() if version.number == LATEST else version.revision_id
        return configuration(version, arn, revision)

    def get_function_configuration(
        self, raw_fn: str, _alias: str, query: Query, _body: dict[str, Any]
    ) -> Answer:
        versions, version, arn = self._qualified(raw_fn, query)
        return 200, self._config(versions, version, arn)

    def get_function(self, raw_fn: str, _alias: str, query: Query, _body: dict[str, Any]) -> Answer:
        versions, version, arn = self._qualified(raw_fn, query)
        out: dict[str, Any] = {
            "Configuration": self._config(versions, version, arn),
            # The code is a directory on this machine, not a package in S3: no Location.
            "Code": {"RepositoryType": "S3"},
        }
        reserved = version.fn.reserved_concurrency
        if reserved is not None:
            out["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
        return 200, out

    def list_functions(self, query: Query) -> dict[str, Any]:
        every = query.get("FunctionVersion")
        if every not in (None, "ALL"):
            raise validation(every, "functionVersion", "Member must satisfy enum value set: [ALL]")
        items: list[dict[str, Any]] = []
        for name in sorted(self._functions.catalog):
            versions = self._functions.catalog[name]
            if every is None:
                items.append(self._config(versions, versions.latest, function_arn(name)))
            else:
                items.extend(self._config(versions, v, v.arn) for v in versions.versions())
        return _page(items, query, "Functions")

    def publish_version(
        self, raw_fn: str, _alias: str, _query: Query, body: dict[str, Any]
    ) -> Answer:
        versions = self._unqualified(raw_fn)
        version = self._functions.publish_version(
            versions.name,
            code_sha256=_text(body, "CodeSha256"),
            description=_text(body, "Description"),
            revision_id=_text(body, "RevisionId"),
        )
        return 201, self._config(versions, version, version.arn)

    def list_versions(
        self, raw_fn: str, _alias: str, query: Query, _body: dict[str, Any]
    ) -> Answer:
        versions = self._unqualified(raw_fn)
        items = [self._config(versions, v, v.arn) for v in versions.versions()]
        return 200, _page(items, query, "Versions")

    # -- aliases ------------------------------------------------------------------------

    def create_alias(self, raw_fn: str, _alias: str, _query: Query, body: dict[str, Any]) -> Answer:
        versions = self._unqualified(raw_fn)
        alias = versions.create_alias(
            body.get("Name"),
            body.get("FunctionVersion"),
            body.get("Description"),
            body.get("RoutingConfig"),
        )
        return 201, alias_configuration(alias)

    def list_aliases(self, raw_fn: str, _alias: str, query: Query, _body: dict[str, Any]) -> Answer:
        versions = self._unqualified(raw_fn)
        items = [
            alias_configuration(a) for a in versions.list_aliases(query.get("FunctionVersion"))
        ]
        return 200, _page(items, query, "Aliases")

    def get_alias(self, raw_fn: str, alias: str, _query: Query, _body: dict[str, Any]) -> Answer:
        return 200, alias_configuration(self._unqualified(raw_fn).alias(alias))

    def update_alias(self, raw_fn: str, alias: str, _query: Query, body: dict[str, Any]) -> Answer:
        updated = self._unqualified(raw_fn).update_alias(
            alias,
            body.get("FunctionVersion"),
            body.get("Description"),
            body.get("RoutingConfig"),
            body.get("RevisionId"),
        )
        return 200, alias_configuration(updated)

    def delete_alias(self, raw_fn: str, alias: str, _query: Query, _body: dict[str, Any]) -> Answer:
        self._unqualified(raw_fn).delete_alias(alias)
        return 204, None


def _json(body: bytes, method: str) -> dict[str, Any]:
    if method not in ("POST", "PUT") or not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400, "InvalidRequestContentException", "The request body must be a JSON object"
        )
    return data


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_parameter(f"{key} must be a string")
    return value
