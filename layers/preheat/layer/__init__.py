"""The layer builder: a LiteRT runtime layer and model layers, reproducible and within limits."""

from preheat.layer.limits import check_limits
from preheat.layer.model import build_model_layer
from preheat.layer.result import LayerResult
from preheat.layer.runtime import build_runtime_layer

__all__ = ["LayerResult", "build_model_layer", "build_runtime_layer", "check_limits"]
