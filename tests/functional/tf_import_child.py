"""Child process of test_tf_import.py: load artifacts through preheat, run them, save the answers.

Usage: python tf_import_child.py CORE JOBS.pkl OUT.pkl. The process pins itself to CORE
before TensorFlow is imported (oneDNN's results depend on the thread count) and imports
TensorFlow the way PREHEAT_TF_IMPORT says, through the same code the loader uses.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any


def _keras_imported() -> bool:
    return any(m == "keras" or m.startswith("keras.") for m in sys.modules)


def _api_tree_imported() -> bool:
    return any(m.startswith("tensorflow._api") for m in sys.modules)


def main(core: int, jobs_path: Path, out_path: Path) -> None:
    os.sched_setaffinity(0, {core})
    from preheat.artifact import manifest as mf
    from preheat.exceptions import LoadError
    from preheat.runtimes import imports, load, tf_import

    jobs: dict[str, Any] = pickle.loads(jobs_path.read_bytes())
    result: dict[str, Any] = {"outputs": {}, "errors": {}}
    for name, job in jobs["models"].items():
        directory = Path(job["directory"])
        manifest = mf.read(directory)
        for key, inputs in job["inputs"].items():
            signature = next(s for s in (manifest.signature, *manifest.signatures) if s.key == key)
            try:
                model = load(directory, manifest.with_(signature=signature), warmup=False)
            except LoadError as exc:
                result["errors"][f"{name}/{key}"] = str(exc)
                continue
            result["outputs"][f"{name}/{key}"] = model.predict(inputs)
    record = imports.current("tensorflow")
    result["import"] = None if record is None else record.report()
    result["keras_imported"] = _keras_imported()
    result["api_tree_imported"] = _api_tree_imported()

    if jobs.get("read_public_name"):
        # Code that imports TensorFlow after a lean import gets the whole package.
        import tensorflow as tf

        result["public_constant"] = tf.constant([1, 2]).numpy().tolist()
        result["version"] = tf.__version__
        state = tf_import.current()
        result["after_public_name"] = None if state is None else (state.path, state.reason)
    out_path.write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
