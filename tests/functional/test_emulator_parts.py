"""The emulator's pure parts: configuration checks, name parsing, REPORT lines, layer merging."""

from __future__ import annotations

from pathlib import Path

import pytest

from preheat.exceptions import ConfigurationError
from preheat.tools.emulator import Emulator, FunctionConfig, InvocationRecord
from preheat.tools.emulator.errors import ApiError
from preheat.tools.emulator.opt import build_opt
from preheat.tools.emulator.versions import split_function_name


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"name": "bad name!"}, "letters, digits"),
        ({"handler": "nodot"}, "module.function"),
        ({"memory_mb": 64}, "128 to 10240"),
        ({"memory_mb": 20_000}, "128 to 10240"),
        ({"timeout_s": 0}, "more than 0"),
        ({"timeout_s": 901}, "at most 900"),
        ({"init_timeout_s": -1}, "positive"),
        ({"idle_timeout_s": 0}, "positive"),
        ({"reserved_concurrency": -1}, "0 or more"),
        ({"code_dir": Path("/no/such/dir")}, "existing directory"),
        ({"layers": (Path("/no/such/layer"),)}, "existing directory"),
    ],
)
def test_function_config_refuses_what_lambda_would(
    tmp_path: Path, change: dict[str, object], phrase: str
) -> None:
    args: dict[str, object] = {"name": "f", "code_dir": tmp_path, "handler": "app.handler"}
    args.update(change)
    with pytest.raises(ConfigurationError, match=phrase):
        FunctionConfig(**args)  # type: ignore[arg-type]


def test_emulator_refuses_duplicate_names_and_a_zero_limit(tmp_path: Path) -> None:
    fn = FunctionConfig("f", tmp_path, "app.handler")
    with pytest.raises(ConfigurationError, match="distinct name"):
        Emulator([fn, fn])
    with pytest.raises(ConfigurationError, match="1 or more"):
        Emulator([fn], max_concurrency=0)


def test_a_busy_port_is_a_one_line_configuration_error(tmp_path: Path) -> None:
    fn = FunctionConfig("f", tmp_path, "app.handler")
    with Emulator([fn], workdir=tmp_path / "a") as first:
        port = int(first.endpoint_url.rsplit(":", 1)[1])
        with pytest.raises(ConfigurationError, match="pick another port"):
            Emulator([fn], port=port, workdir=tmp_path / "b").start()
    assert list((tmp_path / "b").iterdir()) == []


def test_unknown_invocation_type_and_function_are_api_errors(tmp_path: Path) -> None:
    fn = FunctionConfig("f", tmp_path, "app.handler")
    with Emulator([fn], workdir=tmp_path / "w") as emu:
        with pytest.raises(ApiError) as exc:
            emu.invoke("f", b"{}", invocation_type="Sometimes")
        assert (exc.value.status, exc.value.error_type) == (400, "InvalidParameterValueException")
        with pytest.raises(ApiError) as exc:
            emu.invoke("g", b"{}")
        assert exc.value.status == 404


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("f", ("f", None)),
        ("f:live", ("f", "live")),
        ("123456789012:function:f", ("f", None)),
        ("123456789012:function:f:$LATEST", ("f", "$LATEST")),
        ("arn:aws:lambda:us-east-1:123456789012:function:f", ("f", None)),
        ("arn:aws:lambda:us-east-1:123456789012:function:f:7", ("f", "7")),
    ],
)
def test_function_names_in_every_form_lambda_accepts(
    raw: str, expected: tuple[str, str | None]
) -> None:
    assert split_function_name(raw) == expected


def _record(**change: object) -> InvocationRecord:
    values: dict[str, object] = {
        "request_id": "r1",
        "function": "f",
        "env_id": "e",
        "invocation_type": "RequestResponse",
        "cold": True,
        "outcome": "success",
        "init_duration_ms": 123.456,
        "duration_ms": 1.5,
        "billed_duration_ms": 126,
        "memory_size_mb": 512,
        "max_memory_used_mb": 40,
        "error_type": None,
        "started_at": 0.0,
    }
    values.update(change)
    return InvocationRecord(**values)  # type: ignore[arg-type]


def test_report_lines_read_as_lambdas() -> None:
    assert _record().report_line() == (
        "REPORT RequestId: r1\tDuration: 1.50 ms\tBilled Duration: 126 ms\t"
        "Memory Size: 512 MB\tMax Memory Used: 40 MB\tInit Duration: 123.46 ms\t"
    )
    warm = _record(cold=False, init_duration_ms=None).report_line()
    assert "Init Duration" not in warm
    timeout = _record(outcome="timeout", error_type="Sandbox.Timedout").report_line()
    assert timeout.endswith("Status: timeout\tError Type: Sandbox.Timedout\t")


def test_layers_merge_with_later_layers_winning(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    (one / "python" / "pkg").mkdir(parents=True)
    (one / "python" / "pkg" / "a.py").write_text("one")
    (one / "python" / "pkg" / "b.py").write_text("one")
    (one / "bin").mkdir()
    (one / "bin" / "tool").write_text("one")
    (two / "python" / "pkg").mkdir(parents=True)
    (two / "python" / "pkg" / "b.py").write_text("two")
    (two / "bin").write_text("now a file")

    opt = build_opt(tmp_path / "opt", [one, two])

    assert (opt / "python" / "pkg" / "a.py").read_text() == "one"
    assert (opt / "python" / "pkg" / "b.py").read_text() == "two"
    assert (opt / "bin").read_text() == "now a file"
    # Nothing was copied and the sources are untouched.
    assert (opt / "python" / "pkg" / "a.py").is_symlink()
    assert (one / "bin" / "tool").read_text() == "one"
