"""Import TensorFlow for serving: lean (what loading and calling a SavedModel needs) or in full.

`import tensorflow` runs `tensorflow/__init__.py`, which builds the whole public API tree
(`tensorflow._api.v2`, testing modules and `compat.v1` included) and imports Keras' optimizers
whenever Keras is installed; serving a SavedModel needs none of it. The lean import registers
the `tensorflow` package without running its `__init__.py`, switches on TF2 behaviour as that
file would, and imports the internal modules behind `tf.saved_model.load`, `tf.constant` and
`tf.dtypes`. Those are the very functions the public names point at, so outputs are the same.

The package module left in `sys.modules` completes itself into a full import the first time
anyone reads a public name from it (`tf.function`, `tf.keras`...): code that imports
TensorFlow after a lean import still gets all of it, at the full price, then.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import site
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from preheat.exceptions import first_line

TFImportPath = Literal["lean", "full"]
TF_IMPORT_PATHS: tuple[TFImportPath, ...] = ("lean", "full")

log = logging.getLogger("preheat")

# Dunder names that `tensorflow/__init__.py` defines: reading one means the caller wants the
# full package. Other dunder probes (`__wrapped__`, `__test__`...) come from tools inspecting
# modules and must not cost a full import.
_PUBLIC_DUNDERS = frozenset(
    {
        "__all__",
        "__version__",
        "__git_version__",
        "__compiler_version__",
        "__cxx11_abi_flag__",
        "__cxx_version__",
        "__monolithic_build__",
        "__internal__",
        "__operators__",
    }
)


@dataclass(frozen=True)
class TFImport:
    """How TensorFlow was imported in this process, what it cost and why that path."""

    path: TFImportPath
    seconds: float
    reason: str
    # Time spent completing a lean import into a full one after the lean path failed.
    fallback_s: float = 0.0


@dataclass(frozen=True)
class TFApi:
    """The few TensorFlow entry points the load and predict path uses, from internal modules.

    Each is the object the public name (`tf.saved_model.load`, `tf.constant`, `tf.as_dtype`,
    `tf.string`) is bound to, whichever way TensorFlow was imported.
    """

    load_saved_model: Any
    constant: Any
    as_dtype: Any
    string: Any


# How the reasons of the two fallbacks begin (see ensure and complete).
_LEAN_FAILED = "the lean import failed"
_FELL_BACK = "fell back from lean"
_FALLBACK_REASONS = (_LEAN_FAILED, _FELL_BACK)

_lock = threading.RLock()
_state: TFImport | None = None


def is_fully_imported() -> bool:
    """True when `tensorflow/__init__.py` has run to its end in this process."""
    module = sys.modules.get("tensorflow")
    # __version__ is set by the package's own __init__.py, never by the lean import.
    return module is not None and "__version__" in vars(module)


def current() -> TFImport | None:
    """The import this process made, if any (None until `ensure` ran)."""
    return _state


def ensure(path: TFImportPath = "lean") -> TFImport:
    """Import TensorFlow once for this process, by `path`, falling back to a full import.

    Idempotent: later calls return the first call's record whatever `path` they ask for,
    except that asking for "full" after a lean import completes it.
    """
    global _state
    with _lock:
        if _state is not None:
            if path == "full" and _state.path == "lean":
                complete(f"{_env_name()}=full was asked after a lean import")
            assert _state is not None
            return _state
        start = time.perf_counter()
        if is_fully_imported():
            path_taken: TFImportPath = "full"
            reason = "tensorflow was already imported in full by this process"
        elif path == "full":
            _full_import()
            path_taken, reason = "full", f"{_env_name()}=full"
        else:
            try:
                _import_lean()
            except Exception as exc:  # any failure of the lean path: the full import decides
                _full_import()
                path_taken = "full"
                reason = f"{_LEAN_FAILED} ({first_line(exc)})"
            else:
                path_taken, reason = "lean", f"{_env_name()}=lean"
        _state = TFImport(path_taken, round(time.perf_counter() - start, 4), reason)
        _log(_state)
        return _state


def complete(reason: str) -> TFImport:
    """Turn a lean import into a full one (run `tensorflow/__init__.py`), recording why."""
    global _state
    with _lock:
        if _state is None:
            return ensure("full")
        if _state.path == "full":
            return _state
        start = time.perf_counter()
        _full_import()
        _state = TFImport(
            "full",
            _state.seconds,
            f"{_FELL_BACK}: {reason}",
            fallback_s=round(time.perf_counter() - start, 4),
        )
        _log(_state)
        return _state


def api() -> TFApi:
    """The entry points of the load and predict path; imports TensorFlow lean if not yet done."""
    if _state is None:
        ensure(_path_from_env())
    from tensorflow.python.framework import constant_op, dtypes
    from tensorflow.python.saved_model import load as saved_model_load

    return TFApi(
        load_saved_model=saved_model_load.load,
        constant=constant_op.constant,
        as_dtype=dtypes.as_dtype,
        string=dtypes.string,
    )


def _env_name() -> str:
    from preheat import constants as c

    return c.ENV_TF_IMPORT


def _path_from_env() -> TFImportPath:
    from preheat.settings import Settings

    return Settings.from_env().tf_import


def _log(state: TFImport) -> None:
    if not state.reason.startswith(_FALLBACK_REASONS):
        log.info("TensorFlow imported %s in %.2f s (%s)", state.path, state.seconds, state.reason)
    else:
        # A fallback costs the full import's time: worth seeing at Lambda's default level.
        log.warning(
            "TensorFlow imported in full instead of lean: %s (import %.2f s, fallback %.2f s)",
            state.reason,
            state.seconds,
            state.fallback_s,
        )


# ---------------------------------------------------------------- the lean import itself


def _import_lean() -> None:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        raise ImportError("tensorflow is not installed", name="tensorflow")
    package = importlib.util.module_from_spec(spec)
    # Reading a public name from the package completes the full import (see module docstring).
    package.__getattr__ = _completing_getattr(package)  # type: ignore[method-assign]
    sys.modules["tensorflow"] = package
    # What tensorflow/__init__.py does before building the API tree: TensorFlow's own modules
    # consult tf2.enabled() and this variable while they are imported.
    os.environ.setdefault("ENABLE_RUNTIME_UPTIME_TELEMETRY", "1")
    os.environ["TF2_BEHAVIOR"] = "1"
    from tensorflow.python import pywrap_tensorflow  # noqa: F401  (loads the C++ library first)
    from tensorflow.python.compat import v2_compat

    v2_compat.enable_v2_behavior()
    importlib.import_module("tensorflow.python.saved_model.load")
    importlib.import_module("tensorflow.python.framework.constant_op")
    _load_kernel_plugins(Path(spec.submodule_search_locations[0]))


def _load_kernel_plugins(package_dir: Path) -> None:
    """Load the op and device libraries a full import would, so both run the same kernels."""
    dirs = [package_dir / "core" / "kernels"]
    dirs += [Path(p) / "tensorflow-plugins" for p in _site_packages()]
    device_lib = os.environ.get("TF_PLUGGABLE_DEVICE_LIBRARY_PATH", "")
    if not device_lib and not any(d.is_dir() for d in dirs):
        return  # the common case: nothing to load, and load_library need not be imported
    from tensorflow.python.framework import load_library

    if dirs[0].is_dir():
        load_library.load_library(str(dirs[0]))
    for d in dict.fromkeys(dirs[1:]):
        if d.is_dir():
            load_library.load_library(str(d))
            load_library.load_pluggable_device_library(str(d))
    if device_lib:
        load_library.load_pluggable_device_library(device_lib)


def _site_packages() -> list[str]:
    found = [p for p in sys.path if "site-packages" in p]
    if site.ENABLE_USER_SITE and site.USER_SITE:
        found.append(site.USER_SITE)
    found += site.getsitepackages()
    for scheme in sysconfig.get_scheme_names():
        for key in ("purelib", "platlib"):
            found.append(sysconfig.get_path(key, scheme))
    return found


def _completing_getattr(package: ModuleType) -> Any:
    def __getattr__(name: str) -> Any:
        if name.startswith("__") and name not in _PUBLIC_DUNDERS:
            raise AttributeError(f"module 'tensorflow' has no attribute {name!r}")
        complete(f"code read tensorflow.{name} after the lean import")
        return getattr(package, name)

    return __getattr__


def _run_package_init(package: ModuleType) -> None:
    # The package's __init__.py runs in the very module object the lean import registered, so
    # every reference taken to it (and every submodule already imported) stays valid.
    vars(package).pop("__getattr__", None)
    spec = package.__spec__
    assert spec is not None and spec.loader is not None
    try:
        spec.loader.exec_module(package)
    except BaseException:
        # As a failed import does: no half-built package stays behind for the next importer.
        sys.modules.pop("tensorflow", None)
        raise


def _full_import() -> None:
    module = sys.modules.get("tensorflow")
    if isinstance(module, ModuleType) and not is_fully_imported():
        # After a lean import (whole or partial) the submodules already imported are complete;
        # the package's __init__.py reuses them and builds only what is missing.
        _run_package_init(module)
    else:
        importlib.import_module("tensorflow")
