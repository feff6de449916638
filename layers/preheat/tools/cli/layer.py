"""`preheat layer`: build the LiteRT runtime layer (and a model layer) as reproducible zips."""

from __future__ import annotations

import argparse
from pathlib import Path

from preheat.tools.cli._common import Output, human_bytes

HELP = "build Lambda layer zips: the LiteRT runtime layer and, with --model, a model layer"

EPILOG = """\
The runtime layer holds preheat's runtime part and its dependencies (ai-edge-litert,
numpy, orjson, aws-lambda-powertools, filelock) under python/, for the target Python and
architecture, precompiled, pruned, selectively stripped and smoke-imported before the zip
is accepted. boto3 is not bundled: the Lambda Python runtime provides it.
The model layer puts an artifact under preheat/models/NAME/VERSION/, which Lambda unpacks
to /opt/preheat/models/NAME/VERSION/, where preheat's read-only tier finds it.
Zips are reproducible and named by their content hash; an identical one is reused.

The tensorflow runtime cannot fit a layer (Lambda allows 250 MB unzipped): deploy the
container image (infra/Dockerfile) instead.

examples:
  preheat layer --runtime litert --out dist/layers
  preheat layer --runtime litert --model artifacts/resnet --arch arm64 --out dist/layers
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "--runtime",
        default="litert",
        metavar="{litert,tensorflow}",
        help="runtime of the layer (default: litert)",
    )
    parser.add_argument(
        "--model", metavar="ARTIFACT", type=Path, help="also build a model layer from ARTIFACT"
    )
    parser.add_argument(
        "--python",
        metavar="X.Y",
        help="target Lambda Python (default: the running one; 3.12 when that is older, "
        "since ai-edge-litert needs Amazon Linux 2023)",
    )
    parser.add_argument(
        "--arch", default="x86_64", metavar="{x86_64,arm64}", help="target architecture"
    )
    parser.add_argument(
        "--function-bytes",
        metavar="N",
        default="0",
        help="the function's own unzipped size, counted against the 250 MB limit",
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, required=True, help="directory for the layer zips"
    )


def run(args: argparse.Namespace, out: Output) -> int:
    from preheat import constants as c
    from preheat.exceptions import ConfigurationError
    from preheat.tools.layer import build_model_layer, build_runtime_layer, check_limits

    try:
        function_bytes = int(args.function_bytes)
    except ValueError:
        raise ConfigurationError(
            "--function-bytes", args.function_bytes, "use a byte count"
        ) from None
    if function_bytes < 0:
        raise ConfigurationError("--function-bytes", args.function_bytes, "use a byte count >= 0")
    if args.model is not None and not (args.model / "manifest.json").is_file():
        raise ConfigurationError(
            "--model",
            str(args.model),
            "is not an artifact (no manifest.json); make one with `preheat slim`",
        )

    if args.model is not None:
        from preheat.artifact import manifest as mf

        model_runtime = mf.read(args.model).runtime
        if model_runtime != args.runtime:
            raise ConfigurationError(
                "--model",
                str(args.model),
                f"is a {model_runtime} artifact, which the {args.runtime} runtime layer cannot "
                f"load; slim it with `preheat slim --runtime {args.runtime}`",
            )

    def say(message: str) -> None:
        out.progress(message, force=True)

    layers = [
        build_runtime_layer(
            args.runtime, args.out, python=args.python, arch=args.arch, progress=say
        )
    ]
    if args.model is not None:
        say(f"building the model layer from {args.model}")
        layers.append(build_model_layer(args.model, args.out))
    out.done_progress()
    notes = check_limits(layers, function_unzipped_bytes=function_bytes)
    for note in notes:
        out.warn(note)
    lines = []
    for layer in layers:
        lines.append(
            f"{layer.zip_path}{' (reused)' if layer.reused else ''}: "
            f"{human_bytes(layer.zipped_bytes)} zipped, {human_bytes(layer.unzipped_bytes)} unzipped"
        )
        for pkg, size in list(layer.packages.items())[:8]:
            lines.append(f"  {pkg:<28} {human_bytes(size):>10}")
        lines.extend(f"  note: {n}" for n in layer.notes)
    total = function_bytes + sum(layer.unzipped_bytes for layer in layers)
    limit = human_bytes(c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES)
    lines.append(f"function and layers: {human_bytes(total)} unzipped of Lambda's {limit}")
    out.result(
        {
            "layers": [layer.to_dict() | {"zip": str(layer.zip_path)} for layer in layers],
            "total_unzipped_bytes": total,
            "warnings": notes,
        },
        "\n".join(lines),
    )
    return 0
