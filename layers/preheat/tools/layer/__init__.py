"""The layer builder: a LiteRT runtime layer and model layers, reproducible and within limits."""

from preheat.tools.layer.limits import check_limits
from preheat.tools.layer.model_layer import build_model_layer
from preheat.tools.layer.result import LayerResult
from preheat.tools.layer.runtime_layer import build_runtime_layer

__all__ = ["LayerResult", "build_model_layer", "build_runtime_layer", "check_limits"]
