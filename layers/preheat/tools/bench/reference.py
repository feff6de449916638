"""The source model's answers to the benchmark's inputs, computed in a child process.

Run as `python -m preheat.tools.bench.reference SRC INPUTS.npz OUT.npz`. A separate process keeps
TensorFlow out of the benchmark's own interpreter (and its threads off the CPUs while
environments are measured). Each input is answered alone, batch of one, as the functions
answer it, so that an exact strategy can be held to bit identity.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from preheat.exceptions import ToolProcessError
from preheat.tools.bench.parity import Inputs, Outputs


def _save(path: Path, batches: Sequence[dict[str, np.ndarray]]) -> None:
    arrays = {f"{i}/{name}": a for i, b in enumerate(batches) for name, a in b.items()}
    np.savez(path, **arrays)  # type: ignore[arg-type]


def _load(path: Path) -> list[dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=True) as data:
        out: dict[int, dict[str, np.ndarray]] = {}
        for key in data.files:
            i, name = key.split("/", 1)
            out.setdefault(int(i), {})[name] = data[key]
    return [out[i] for i in sorted(out)]


def compute(
    source: Path,
    inputs: Sequence[Inputs],
    python: str = sys.executable,
    cpus: Sequence[int] | None = None,
) -> list[Outputs]:
    """The serving signature's outputs for each input, from plain `tf.saved_model.load`.

    `cpus`: the cores the functions run on. TensorFlow's CPU kernels split work by the
    cores they see, and outputs differ in their last bits between one core and two: the
    reference must see what the functions see for an exact strategy to be held to bit
    identity.
    """
    with tempfile.TemporaryDirectory(prefix="preheat-ref-") as tmp:
        src, dst = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        _save(src, inputs)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        res = subprocess.run(
            [python, "-m", "preheat.tools.bench.reference", str(source), str(src), str(dst)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            preexec_fn=(lambda: os.sched_setaffinity(0, set(cpus))) if cpus else None,
        )
        if res.returncode != 0:
            lines = res.stderr.strip().splitlines()
            raise ToolProcessError(
                "computing the source model's outputs",
                lines[-1] if lines else "no output",
                res.returncode,
            )
        return _load(dst)


def main(argv: Sequence[str]) -> int:
    import tensorflow as tf

    source, src, dst = (Path(a) for a in argv)
    from preheat.runtimes.tensorflow import SERVING_KEY

    signatures = tf.saved_model.load(str(source)).signatures
    serve = signatures[SERVING_KEY if SERVING_KEY in signatures else sorted(signatures)[0]]
    outputs = [
        {k: v.numpy() for k, v in serve(**{n: tf.constant(a) for n, a in b.items()}).items()}
        for b in _load(src)
    ]
    _save(dst, outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
