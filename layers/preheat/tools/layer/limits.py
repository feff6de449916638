"""Lambda's size limits for a function and its layers, with the way out when one is broken."""

from __future__ import annotations

from collections.abc import Sequence

from preheat import constants as c
from preheat.exceptions import LayerTooLarge
from preheat.tools.layer.result import LayerResult

ALTERNATIVES = (
    "use the LiteRT runtime (`preheat slim --runtime litert`, `preheat layer --runtime litert`), "
    "keep the model in S3 instead of a layer (`preheat push`), "
    "or deploy the container image (infra/Dockerfile, up to 10 GB)"
)


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def largest(layers: Sequence[LayerResult], count: int = 3) -> list[tuple[str, int]]:
    """The biggest packages across `layers`, as (layer/package, unzipped bytes)."""
    items = [(f"{r.name}:{pkg}", size) for r in layers for pkg, size in r.packages.items()]
    return sorted(items, key=lambda kv: -kv[1])[:count]


def check_limits(layers: Sequence[LayerResult], function_unzipped_bytes: int = 0) -> list[str]:
    """Raise LayerTooLarge if a hard limit is broken; return notes on the soft ones.

    Hard: at most 5 layers, and 250 MiB unzipped for the function and its layers together.
    Soft: a zip over 50 MiB cannot be uploaded directly, but can be through S3.
    """
    if len(layers) > c.LAMBDA_MAX_LAYERS:
        raise LayerTooLarge(
            f"{len(layers)} layers; Lambda allows {c.LAMBDA_MAX_LAYERS} per function: "
            "merge layers or deploy the container image (infra/Dockerfile)",
            name="layers of one function",
            size=len(layers),
            limit=c.LAMBDA_MAX_LAYERS,
            unit="layers",
        )
    total = function_unzipped_bytes + sum(r.unzipped_bytes for r in layers)
    if total > c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES:
        top = ", ".join(f"{name} {_mb(size)}" for name, size in largest(layers))
        raise LayerTooLarge(
            f"function and layers are {_mb(total)} unzipped; Lambda allows "
            f"{_mb(c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES)} (largest: {top}); {ALTERNATIVES}",
            name="function and layers",
            size=total,
            limit=c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES,
        )
    return [
        f"layer {r.zip_path.name} is {_mb(r.zipped_bytes)} zipped, over the "
        f"{_mb(c.LAMBDA_ZIP_DIRECT_UPLOAD_LIMIT_BYTES)} direct-upload limit: upload it through S3"
        for r in layers
        if r.zipped_bytes > c.LAMBDA_ZIP_DIRECT_UPLOAD_LIMIT_BYTES
    ]
