"""Re-save a SavedModel with only what serving needs: its signatures, each variable once.

A Keras 3 `model.export` tracks every weight twice (under `variables` and `_all_variables`),
and a training checkpoint may carry optimizer slots; the signatures capture neither twice.
The new SavedModel holds exactly the variables, tables and assets the signatures capture.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from preheat.exceptions import UnsupportedModel, first_line
from preheat.tools.slim.inputs import Batch

Outputs = dict[str, np.ndarray]


@contextmanager
def quiet() -> Iterator[None]:
    """TensorFlow's own deprecation chatter is not the user's problem."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def load(src: Path) -> Any:
    import tensorflow as tf

    if not (src / "saved_model.pb").is_file():
        raise UnsupportedModel(
            f"{src} is not a SavedModel: it has no saved_model.pb; give the directory "
            "written by model.export() or tf.saved_model.save()"
        )
    try:
        with quiet():
            return tf.saved_model.load(str(src))
    except Exception as exc:  # TensorFlow raises many types for a broken model
        first = first_line(exc)
        raise UnsupportedModel(f"cannot load SavedModel {src.name}: {first}") from exc


def run(loaded: Any, samples: Mapping[str, Sequence[Batch]]) -> dict[str, list[Outputs]]:
    """Every signature's outputs on its sample batches."""
    import tensorflow as tf

    results: dict[str, list[Outputs]] = {}
    with quiet():
        for key, batches in samples.items():
            fn = loaded.signatures[key]
            results[key] = [
                {
                    name: np.asarray(t.numpy())
                    for name, t in fn(**{n: tf.constant(a) for n, a in batch.items()}).items()
                }
                for batch in batches
            ]
    return results


def _captured(loaded: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """Variables, resources (tables) and assets the signatures need, each once."""
    import tensorflow as tf

    captured: set[int] = set()
    variables: list[Any] = []
    seen: set[int] = set()
    for fn in loaded.signatures.values():
        captured.update(id(ext) for ext, _ in fn.graph.captures)
        for v in fn.variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    resources: list[Any] = []
    assets: list[Any] = []
    for obj in tf.train.TrackableView(loaded).descendants():
        if isinstance(obj, tf.saved_model.Asset):
            assets.append(obj)
        elif isinstance(obj, tf.saved_model.experimental.TrackableResource) and not isinstance(
            obj, tf.Variable
        ):
            handle = getattr(obj, "resource_handle", None)
            if handle is not None and id(handle) in captured:
                resources.append(obj)
    return variables, resources, assets


def _retrace(fn: Any) -> Callable[..., Any]:
    """A tf.function with the same named inputs that calls the loaded signature."""
    import tensorflow as tf

    _, kwargs = fn.structured_input_signature
    names = sorted(kwargs)
    specs = [tf.TensorSpec(kwargs[n].shape, kwargs[n].dtype, name=n) for n in names]

    def call(*args: Any) -> Any:
        return fn(**dict(zip(names, args, strict=True)))

    return tf.function(call, input_signature=specs).get_concrete_function()  # type: ignore[no-any-return]


def vocabulary(loaded: Any, src: Path) -> list[str]:
    """Strings a model knows: the keys of its string tables and the lines of its assets."""
    import tensorflow as tf

    words: set[str] = set()
    _, resources, assets = _captured(loaded)
    for res in resources:
        try:
            with quiet():
                keys, _ = tf.raw_ops.LookupTableExportV2(
                    table_handle=res.resource_handle, Tkeys=tf.string, Tvalues=tf.int64
                )
            words.update(k.decode("utf-8", "replace") for k in keys.numpy().tolist())
        except (tf.errors.OpError, TypeError, ValueError):
            continue  # not a string -> int64 table
    for asset in assets:
        path = Path(asset.asset_path.numpy().decode())
        if path.is_file() and path.stat().st_size <= 16 * 1024 * 1024:
            text = path.read_bytes().decode("utf-8", "replace")
            words.update(line.split("\t")[0] for line in text.splitlines() if line.strip())
    words.discard("")
    return sorted(words)


def resave(loaded: Any, dst: Path) -> dict[str, int]:
    """Write `loaded`'s signatures and what they capture, once each, to `dst`."""
    import tensorflow as tf

    variables, resources, assets = _captured(loaded)
    module = tf.Module()
    # Tracking them on the root is what makes the saver write each one exactly once.
    module.variables_ = list(variables)
    module.resources_ = list(resources)
    module.assets_ = list(assets)
    try:
        with quiet():
            signatures = {key: _retrace(fn) for key, fn in loaded.signatures.items()}
            tf.saved_model.save(module, str(dst), signatures=signatures)
    except Exception as exc:  # TensorFlow raises many types; the user needs one line
        first = first_line(exc)
        raise UnsupportedModel(
            f"cannot re-save only the serving parts of this model ({first[:200]}); "
            "ship the source SavedModel as it is, or try --runtime litert"
        ) from exc
    return {"variables": len(variables), "tables": len(resources), "assets": len(assets)}
