"""Exceptions a caller may catch carry their facts as attributes, beside the message."""

from __future__ import annotations

import pytest

from preheat import constants as c
from preheat.exceptions import LayerTooLarge, ToleranceExceeded
from preheat.tools.layer import check_limits
from preheat.tools.layer import plan as layer_plan
from tests.unit.test_layer_limits import MIB, _layer


def test_layers_over_the_unzipped_limit_carry_their_size_and_the_limit() -> None:
    with pytest.raises(LayerTooLarge) as err:
        check_limits([_layer("rt", 200 * MIB)], function_unzipped_bytes=60 * MIB)
    assert err.value.name == "function and layers"
    assert err.value.size == 260 * MIB
    assert err.value.limit == c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES
    assert err.value.unit == "bytes"


def test_too_many_layers_carry_the_count_and_the_limit() -> None:
    with pytest.raises(LayerTooLarge) as err:
        check_limits([_layer(f"l{i}", MIB) for i in range(c.LAMBDA_MAX_LAYERS + 1)])
    assert (err.value.size, err.value.limit, err.value.unit) == (6, 5, "layers")


def test_a_tensorflow_runtime_layer_is_refused_with_the_limit() -> None:
    with pytest.raises(LayerTooLarge) as err:
        layer_plan.plan("tensorflow", python="3.12", arch="x86_64")
    assert err.value.limit == c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES
    assert err.value.size > err.value.limit


def test_tolerance_exceeded_keeps_the_message_and_the_report() -> None:
    report = {"max_abs_error": 0.5, "bit_identical": False}
    err = ToleranceExceeded("LiteRT fp16 misses the tolerance", precision="fp16", report=report)
    assert str(err) == "LiteRT fp16 misses the tolerance"
    assert err.precision == "fp16" and err.report == report


def test_a_helper_process_failure_carries_what_why_and_the_exit_code() -> None:
    from preheat.exceptions import ToolProcessError

    err = ToolProcessError("the S3 server", "it exited at start", 3)
    assert (err.what, err.reason, err.returncode) == ("the S3 server", "it exited at start", 3)
    assert str(err) == "the S3 server failed (exit code 3): it exited at start"
