"""The TensorFlow runtime: describe a SavedModel's signatures, load it and warm it up.

TensorFlow is imported inside the functions, never at module import, so that
`import preheat` stays light. Loading and predicting go through `tf_import.api()`: the
internal entry points a lean import provides (see tf_import.py). `describe_saved_model`
runs in the tools at push and slim time and imports TensorFlow in full.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from preheat.artifact.manifest import Manifest, Signature, TensorSpec
from preheat.exceptions import LoadError, UnsupportedModel, first_line
from preheat.runtimes import tf_import, warm_up

SERVING_KEY = "serving_default"


def _dtype_name(dtype: Any) -> str:
    return "string" if dtype.name == "string" else str(dtype.name)


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape.rank is None:
        return None
    return tuple(None if d is None else int(d) for d in shape.as_list())


def signature_of(key: str, fn: Any) -> Signature:
    """A manifest Signature from a concrete signature function of a loaded SavedModel."""
    _, kwargs = fn.structured_input_signature
    inputs = tuple(
        TensorSpec(name, _dtype_name(spec.dtype), _shape(spec.shape))
        for name, spec in sorted(kwargs.items())
    )
    outputs_struct = fn.structured_outputs
    if not isinstance(outputs_struct, dict):
        raise UnsupportedModel(f"signature {key!r} does not return a dict of named outputs")
    outputs = tuple(
        TensorSpec(name, _dtype_name(t.dtype), _shape(t.shape))
        for name, t in sorted(outputs_struct.items())
    )
    return Signature(key=key, inputs=inputs, outputs=outputs)


def describe_saved_model(path: Path) -> tuple[Signature, tuple[Signature, ...]]:
    """The serving signature of the SavedModel at `path` and all its other signatures."""
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise UnsupportedModel(f"{path} is not a SavedModel: it has no saved_model.pb")
    loaded = tf.saved_model.load(str(path))
    sigs = dict(loaded.signatures)
    if not sigs:
        raise UnsupportedModel(
            f"SavedModel {path} has no signatures; export it with a serving signature "
            "(model.export(path) in Keras 3, or tf.saved_model.save(..., signatures=...))"
        )
    key = SERVING_KEY if SERVING_KEY in sigs else sorted(sigs)[0]
    main = signature_of(key, sigs[key])
    others = tuple(signature_of(k, sigs[k]) for k in sorted(sigs) if k != key)
    return main, others


# Op types whose kernels draw from a generator state they keep between calls (stateless
# ops take their seed as an input and keep nothing). "StatefulPartitionedCall" is a plain
# function call, so the Stateful* names are listed one by one.
_RANDOM_PREFIXES = (
    "Random",
    "StatefulUniform",
    "StatefulStandardNormal",
    "StatefulTruncatedNormal",
    "StatefulRandomBinomial",
    "Rng",
)
_RANDOM_OPS = frozenset(
    {"TruncatedNormal", "ParameterizedTruncatedNormal", "Multinomial", "NonDeterministicInts"}
)


def _draws_random(op: str) -> bool:
    return op in _RANDOM_OPS or op.startswith(_RANDOM_PREFIXES)


class TensorFlowModel:
    """A loaded SavedModel's serving signature, answering with numpy arrays."""

    def __init__(
        self, loaded: Any, fn: Any, manifest: Manifest, directory: Path, api: tf_import.TFApi
    ) -> None:
        # `loaded` owns the variables and assets the signature function reads: keep it alive.
        self._loaded = loaded
        self._fn = fn
        self._api = api
        self._dtypes = {spec.name: _tf_dtype(api, spec.dtype) for spec in manifest.signature.inputs}
        self._manifest = manifest
        self.directory = directory
        # Filled by preheat.loader: where the model came from and what each INIT phase cost.
        self.init_report: dict[str, Any] = {}

    @property
    def signature(self) -> Signature:
        return self._manifest.signature

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {
            spec.name: self._api.constant(inputs[spec.name], dtype=self._dtypes[spec.name])
            for spec in self.signature.inputs
        }
        outputs = self._fn(**tensors)
        return {name: value.numpy() for name, value in outputs.items()}

    def predict_signature(
        self, key: str, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Run another signature the artifact keeps (its manifest's `signatures`), by key."""
        if key == self.signature.key:
            return self.predict(inputs)
        spec = next((s for s in self._manifest.signatures if s.key == key), None)
        sigs = dict(self._loaded.signatures)
        if spec is None or key not in sigs:
            raise KeyError(f"signature {key!r} is not in {self._manifest.name}")
        fn = sigs[key]
        tensors = {
            t.name: self._api.constant(inputs[t.name], dtype=_tf_dtype(self._api, t.dtype))
            for t in spec.inputs
        }
        return {name: value.numpy() for name, value in fn(**tensors).items()}

    def random_ops(self) -> frozenset[str]:
        """The op types in the signatures' graphs (nested functions included) that keep a
        random generator's state in their kernels; empty for nearly every inference model."""
        found: set[str] = set()
        for fn in dict(self._loaded.signatures).values():
            graph_def = fn.graph.as_graph_def()
            ops = [node.op for node in graph_def.node]
            for function in graph_def.library.function:
                ops.extend(node.op for node in function.node_def)
            found.update(op for op in ops if _draws_random(op))
        return frozenset(found)

    def __repr__(self) -> str:
        m = self._manifest
        return f"TensorFlowModel({m.name}/{m.version}, signature={m.signature.key!r})"


def _tf_dtype(api: tf_import.TFApi, dtype: str) -> Any:
    return api.string if dtype == "string" else api.as_dtype(dtype)


def _same_io(a: Signature, b: Signature) -> bool:
    return (a.inputs, a.outputs) == (b.inputs, b.outputs)


def _keras_needed(exc: BaseException) -> bool:
    """True when a load failed because Keras could not be imported (Keras 2 SavedModels)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ImportError):
            name = (seen.name or "").split(".")[0]
            if name in ("keras", "tf_keras") or "keras" in str(seen).lower():
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def _load_saved_model(api: tf_import.TFApi, directory: Path) -> Any:
    return api.load_saved_model(str(directory))


def _load_lean_or_full(directory: Path, manifest: Manifest) -> tuple[Any, tf_import.TFApi]:
    """Load with the import made; a failure under a lean import is retried after a full one.

    A full import registers more than the lean one (Keras' SavedModel classes when Keras is
    installed, every public module's side effects), so a lean failure says nothing until the
    full import has failed too.
    """
    api = tf_import.api()
    state = tf_import.current()
    try:
        return _load_saved_model(api, directory), api
    except Exception as exc:  # TensorFlow raises many types; decided below
        if state is None or state.path != "lean":
            raise
        reason = f"loading {manifest.name}/{manifest.version} failed: {first_line(exc)}"
    tf_import.complete(reason)
    api = tf_import.api()
    return _load_saved_model(api, directory), api


def load(directory: Path, manifest: Manifest, *, warmup: bool = True) -> TensorFlowModel:
    """Load the SavedModel in `directory` and bind the manifest's serving signature.

    With `warmup`, one inference on zeros shaped like the signature runs before returning,
    so the first request pays no allocation or first-call cost.
    """
    key = manifest.signature.key
    label = f"{manifest.name}/{manifest.version}"
    try:
        loaded, api = _load_lean_or_full(directory, manifest)
    except Exception as exc:  # TensorFlow raises many types; the user needs one line
        if _keras_needed(exc):
            raise LoadError(
                f"SavedModel {manifest.name}/{manifest.version} needs Keras to load "
                f"({first_line(exc)}); build the container image with "
                "--build-arg WITH_KERAS=true, or `pip install keras` in a zip or venv",
                model=label,
                runtime="tensorflow",
            ) from exc
        raise LoadError(
            f"TensorFlow could not load the SavedModel in {directory}: {first_line(exc)}; "
            "check that the artifact was pushed from a SavedModel directory",
            model=label,
            runtime="tensorflow",
        ) from exc
    sigs = dict(loaded.signatures)
    if key not in sigs:
        raise LoadError(
            f"SavedModel {manifest.name}/{manifest.version} has no signature {key!r} "
            f"(it has {', '.join(sorted(sigs)) or 'none'}); re-push it or fix the manifest",
            model=label,
            runtime="tensorflow",
            stage="signature",
        )
    fn = sigs[key]
    actual = signature_of(key, fn)
    if not _same_io(actual, manifest.signature):
        raise LoadError(
            f"signature {key!r} of {manifest.name}/{manifest.version} does not match its "
            "manifest (inputs or outputs differ); re-push the artifact",
            model=label,
            runtime="tensorflow",
            stage="signature",
        )
    model = TensorFlowModel(loaded, fn, manifest, directory, api)
    if warmup:
        warm_up(model)
    return model
