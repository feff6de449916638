"""preheat: cut the cold start of TensorFlow inference on AWS Lambda.

`import preheat` is light (no TensorFlow). When PREHEAT_MODEL_URI is set, it starts
fetching the model at once in background threads, so the fetch overlaps the handler's
own heavy imports; `load_model()` then joins that fetch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from preheat.exceptions import (
    ArtifactError,
    ArtifactNotFound,
    BadRequest,
    CacheFullError,
    ConfigurationError,
    FetchError,
    IntegrityError,
    ManifestError,
    PreheatError,
)
from preheat.settings import Settings

if TYPE_CHECKING:
    from preheat.runtimes.base import Model

__version__ = "0.1.0"


def load_model(uri: str | None = None, **settings: Any) -> Model:
    """Load the model at `uri` (or PREHEAT_MODEL_URI) from the fastest tier that has it.

    Settings not given here come from PREHEAT_* variables, then defaults (see Settings).
    The model is warmed up before it is returned, unless warmup=False.
    """
    from preheat.loader import load_model as _load

    return _load(uri, **settings)


__all__ = [
    "ArtifactError",
    "ArtifactNotFound",
    "BadRequest",
    "CacheFullError",
    "ConfigurationError",
    "FetchError",
    "IntegrityError",
    "ManifestError",
    "PreheatError",
    "Settings",
    "load_model",
]

# Start fetching during INIT, before the handler imports its runtime (see prefetch.py).
from preheat.cache import prefetch as _prefetch  # noqa: E402

_prefetch.start_from_env()
