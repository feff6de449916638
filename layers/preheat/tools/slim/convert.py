"""Convert a SavedModel to LiteRT, and run the result with the interpreter that ships.

Conversion uses TensorFlow's converter; the parity run uses `ai_edge_litert`, the same
interpreter the runtime layer carries, so what is measured is what will answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from preheat.artifact.manifest import Signature
from preheat.exceptions import UnsupportedModel
from preheat.tools.slim.exact import quiet
from preheat.tools.slim.inputs import Batch

Outputs = dict[str, np.ndarray]
LITERT_PRECISIONS = ("fp32", "fp16", "int8")


def expressible(signatures: Sequence[Signature]) -> str | None:
    """Why LiteRT's built-in ops cannot take these signatures, or None if they may."""
    for sig in signatures:
        for t in (*sig.inputs, *sig.outputs):
            if t.dtype == "string":
                kind = "input" if t in sig.inputs else "output"
                return (
                    f"LiteRT's built-in ops take no strings ({kind} {t.name!r} of signature "
                    f"{sig.key!r} is a string)"
                )
    return None


def _ops_summary(message: str) -> str:
    # The converter's error is pages long; the names of the ops it could not map are the news.
    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)'", message)))
    if ops:
        return "ops not in LiteRT's built-in set: " + ", ".join(ops[:8])
    lines = [ln.strip() for ln in message.splitlines() if "error" in ln.lower()]
    return (lines[0] if lines else message.strip().splitlines()[0])[:300]


def convert(src: Path, keys: Sequence[str], precision: str) -> bytes:
    """The LiteRT flatbuffer of `src`'s signatures `keys` at `precision`."""
    import tensorflow as tf

    if precision not in LITERT_PRECISIONS:
        raise UnsupportedModel(
            f"precision {precision!r} is not a LiteRT precision: use {', '.join(LITERT_PRECISIONS)}"
        )
    with quiet():
        converter = tf.lite.TFLiteConverter.from_saved_model(str(src), signature_keys=list(keys))
        if precision in ("fp16", "int8"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        # Only built-in ops: the shipped interpreter has no TensorFlow (Flex) kernels.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            flat = converter.convert()
        except Exception as exc:  # the converter raises ConverterError and friends
            raise UnsupportedModel(
                f"LiteRT cannot express this model: {_ops_summary(str(exc))}"
            ) from exc
    return bytes(flat)


def run(path: Path, samples: Mapping[str, Sequence[Batch]]) -> dict[str, list[Outputs]]:
    """Every signature's outputs from the LiteRT model at `path`, via ai_edge_litert."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    available = interpreter.get_signature_list()
    results: dict[str, list[Outputs]] = {}
    for key, batches in samples.items():
        if key not in available:
            raise UnsupportedModel(
                f"the LiteRT model lost signature {key!r} (it has {sorted(available)})"
            )
        runner = interpreter.get_signature_runner(key)
        dtypes = {n: np.dtype(d["dtype"]) for n, d in runner.get_input_details().items()}
        results[key] = [
            {
                name: np.array(value, copy=True)
                for name, value in runner(
                    **{n: np.ascontiguousarray(a, dtype=dtypes[n]) for n, a in batch.items()}
                ).items()
            }
            for batch in batches
        ]
    return results
