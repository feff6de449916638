"""Versions, aliases and qualifiers of the emulated functions, without running any."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from preheat.tools.emulator.config import FunctionConfig
from preheat.tools.emulator.control_plane import ControlPlane, alias_configuration
from preheat.tools.emulator.errors import ApiError
from preheat.tools.emulator.versions import (
    LATEST,
    Alias,
    FunctionVersions,
    Version,
    code_digest,
    function_ref,
    lambda_timestamp,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("CODE = 1\n")
    return src


@pytest.fixture
def versions(source: Path) -> FunctionVersions:
    return FunctionVersions(FunctionConfig("fn", source, "app.handler"), lambda: 1_700_000_000.0)


def api_error(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str]:
    return exc.value.status, exc.value.error_type, exc.value.message


@pytest.mark.parametrize(
    ("raw", "qualifier", "expected"),
    [
        ("fn", None, ("fn", None)),
        ("fn:7", None, ("fn", "7")),
        ("fn", "live", ("fn", "live")),
        ("fn:live", "live", ("fn", "live")),
        (f"{ARN}:fn", "$LATEST", ("fn", "$LATEST")),
        (f"{ARN}:fn:3", None, ("fn", "3")),
        ("123456789012:function:fn:live", None, ("fn", "live")),
        ("fn", "", ("fn", None)),
    ],
)
def test_function_ref_reads_names_arns_and_the_qualifier(
    raw: str, qualifier: str | None, expected: tuple[str, str | None]
) -> None:
    assert function_ref(raw, qualifier) == expected


def test_function_ref_refuses_two_different_qualifiers_and_bad_ones() -> None:
    with pytest.raises(ApiError) as exc:
        function_ref("fn:1", "2")
    assert api_error(exc) == (
        400,
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
    )
    with pytest.raises(ApiError) as exc:
        function_ref("fn", "a/b")
    assert exc.value.error_type == "ValidationException" and "'a/b' at 'qualifier'" in (
        exc.value.message
    )


def test_an_alias_routes_below_its_weight_to_the_additional_version() -> None:
    alias = Alias("live", "fn", "1", weights={"2": 0.3})
    draws: Iterator[float] = iter([0.0, 0.2999, 0.3, 0.99])
    assert [alias.route(lambda: next(draws)) for _ in range(4)] == ["2", "2", "1", "1"]
    assert Alias("plain", "fn", "4").route(lambda: 0.0) == "4"


def test_code_digest_follows_content_and_ignores_bytecode(source: Path) -> None:
    first = code_digest(source)
    (source / "__pycache__").mkdir()
    (source / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0" * 64)
    assert code_digest(source) == first
    (source / "app.py").write_text("CODE = 2\n")
    changed = code_digest(source)
    assert changed.sha256 != first.sha256 and changed.size == first.size
    (source / "app.py").write_text("CODE = 1\n")
    assert code_digest(source).sha256 == first.sha256


def test_publish_freezes_a_copy_and_skips_an_unchanged_one(
    versions: FunctionVersions, source: Path, tmp_path: Path
) -> None:
    one, new = versions.publish(tmp_path / "v", description="first")
    same, again = versions.publish(tmp_path / "v")
    (source / "app.py").write_text("CODE = 2\n")
    two, _ = versions.publish(tmp_path / "v")

    assert (one.number, new, same.number, again, two.number) == ("1", True, "1", False, "2")
    assert (one.fn.code_dir / "app.py").read_text() == "CODE = 1\n"
    assert one.fn.code_dir != source and one.fn.env == {} and one.description == "first"
    assert [v.number for v in versions.versions()] == [LATEST, "1", "2"]
    assert versions.resolve("1", lambda: 0.0) is one
    with pytest.raises(ApiError) as exc:
        versions.resolve("3", lambda: 0.0)
    assert api_error(exc) == (404, "ResourceNotFoundException", f"Function not found: {ARN}:fn:3")


def test_publish_checks_the_code_sha_and_revision(
    versions: FunctionVersions, tmp_path: Path
) -> None:
    with pytest.raises(ApiError) as exc:
        versions.publish(tmp_path / "v", code_sha256="nope")
    assert exc.value.error_type == "InvalidParameterValueException"
    assert exc.value.message.startswith("CodeSHA256 (nope) is different from current CodeSHA256")
    with pytest.raises(ApiError) as exc:
        versions.publish(tmp_path / "v", revision_id="stale")
    assert exc.value.status == 412
    published, _ = versions.publish(tmp_path / "v", revision_id=versions.latest_revision())
    assert published.number == "1"


def test_alias_rules(versions: FunctionVersions, source: Path, tmp_path: Path) -> None:
    versions.publish(tmp_path / "v")
    (source / "app.py").write_text("CODE = 2\n")
    versions.publish(tmp_path / "v")
    weights = {"AdditionalVersionWeights": {"2": 0.5}}

    live = versions.create_alias("live", "1", "canary", weights)
    assert alias_configuration(live) == {
        "AliasArn": f"{ARN}:fn:live",
        "Name": "live",
        "FunctionVersion": "1",
        "Description": "canary",
        "RevisionId": live.revision_id,
        "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}},
    }
    # Moving the alias onto its additional version is refused while the weights stand.
    with pytest.raises(ApiError) as exc:
        versions.update_alias("live", function_version="2")
    assert exc.value.message.startswith("Invalid function version 2.")
    moved = versions.update_alias("live", "2", routing={"AdditionalVersionWeights": {}})
    assert (moved.function_version, moved.weights, moved.description) == ("2", {}, "canary")
    for bad, expected in (
        ({"AdditionalVersionWeights": {"2": 1.5}}, "ValidationException"),
        ({"AdditionalVersionWeights": {"x": 0.5}}, "ValidationException"),
        ({"AdditionalVersionWeights": {"1": 0.1, "2": 0.1}}, "InvalidParameterValueException"),
        ({"AdditionalVersionWeights": {"9": 0.1}}, "ResourceNotFoundException"),
    ):
        with pytest.raises(ApiError) as exc:
            versions.create_alias("other", "1", routing=bad)
        assert exc.value.error_type == expected, bad
    with pytest.raises(ApiError) as exc:
        versions.create_alias("7", "1")
    assert exc.value.error_type == "ValidationException" and "at 'name'" in exc.value.message
    versions.create_alias("latest", LATEST)
    assert versions.resolve("latest", lambda: 0.0) is versions.latest
    versions.delete_alias("latest")
    with pytest.raises(ApiError) as exc:
        versions.delete_alias("latest")
    assert api_error(exc) == (
        404,
        "ResourceNotFoundException",
        f"Cannot find alias arn: {ARN}:fn:latest",
    )


class _Functions:
    def __init__(self, versions: FunctionVersions) -> None:
        self.catalog = {versions.name: versions}

    def versions(self, name: str) -> FunctionVersions:
        return self.catalog[name]

    def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> Version:
        raise AssertionError("not called")


def test_the_control_plane_routes_only_lambdas_paths(versions: FunctionVersions) -> None:
    plane = ControlPlane(_Functions(versions))
    status, body = plane.handle("GET", "/2015-03-31/functions/fn/configuration", {}, b"")
    assert status == 200 and body is not None and body["FunctionArn"] == f"{ARN}:fn"
    assert body["LastModified"].endswith("+0000") and body["Timeout"] == 30
    for method, path in (
        ("GET", "/2015-03-31/functions/fn/nothing"),
        ("PATCH", "/2015-03-31/functions/fn/aliases"),
        ("GET", "/2099-01-01/functions"),
    ):
        with pytest.raises(ApiError) as exc:
            plane.handle(method, path, {}, b"")
        assert exc.value.error_type == "UnknownOperationException", path
    with pytest.raises(ApiError) as exc:
        plane.handle("POST", "/2015-03-31/functions/fn/aliases", {}, b"{not json")
    assert exc.value.error_type == "InvalidRequestContentException"
    with pytest.raises(ApiError) as exc:
        plane.handle("GET", "/2015-03-31/functions", {"MaxItems": "0"}, b"")
    assert exc.value.error_type == "ValidationException"


def test_lambda_timestamp_has_milliseconds_and_utc_offset() -> None:
    assert lambda_timestamp(1_700_000_000.25) == "2023-11-14T22:13:20.250+0000"
