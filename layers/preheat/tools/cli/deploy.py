"""`preheat deploy`: from a SavedModel or an artifact to a warm, least-privilege stack."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from preheat.tools.cli._common import Output, human_bytes, need

HELP = "deploy a model to AWS Lambda: bucket, layers, chunks, stack, prewarm"


def _positive(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None


def register(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a(
        "--stack",
        required=True,
        help="CloudFormation stack name (functions are <stack>-inference, <stack>-warmer)",
    )
    a(
        "--bucket",
        required=True,
        help="model bucket; created (and kept on destroy) if it does not exist",
    )
    a("--model", required=True, type=Path, help="a SavedModel directory or a preheat artifact")
    a(
        "--runtime",
        choices=("litert", "tensorflow"),
        default="litert",
        help="litert: zip function with layers; tensorflow: container image (needs --image-uri)",
    )
    a(
        "--precision",
        choices=("fp32", "fp16", "int8", "exact"),
        help="precision when slimming a SavedModel (default: the slimmer's for the runtime)",
    )
    a("--name", help="model name (default: the artifact's name or the directory's)")
    a("--version", help="model version (default: derived from the model's content)")
    a("--prefix", default="preheat", help="key prefix in the bucket (default: %(default)s)")
    a("--region", help="AWS region (default: boto3's usual configuration)")
    a(
        "--warm",
        type=_positive,
        default=1,
        help="environments the schedule keeps warm and the deploy prewarms; 0 for none (default: %(default)s)",
    )
    a("--schedule", default="rate(5 minutes)", help="warm schedule (default: %(default)s)")
    a("--second-schedule", help="a second schedule, e.g. 'cron(0/5 8-18 ? * MON-FRI *)'")
    a(
        "--second-warm",
        type=_positive,
        default=0,
        help="environments the second schedule keeps warm",
    )
    a("--image-uri", help="ECR image built from infra/Dockerfile (tensorflow runtime)")
    a(
        "--no-model-layer",
        dest="model_layer",
        action="store_false",
        help="do not ship the model in a layer; the function fetches it from S3 during INIT",
    )
    a(
        "--model-in-image",
        action="store_true",
        help="the image carries the model (built with MODEL_DIR): /tmp is not sized for it",
    )
    a("--runtime-layer", type=Path, help="a prebuilt runtime layer zip instead of building one")
    a(
        "--python",
        default="3.12",
        choices=("3.12", "3.13"),
        help="Lambda Python version; LiteRT wheels need 3.12+ (default: %(default)s)",
    )
    a(
        "--arch",
        default="x86_64",
        choices=("x86_64", "arm64"),
        help="architecture (default: %(default)s)",
    )
    a(
        "--memory",
        type=_positive,
        default=2048,
        help="inference memory in MB (default: %(default)s)",
    )
    a(
        "--timeout",
        type=_positive,
        default=30,
        help="inference timeout in seconds (default: %(default)s)",
    )
    a("--alias", default="live", help="alias callers and the warmer use (default: %(default)s)")
    a(
        "--snapstart",
        action="store_true",
        help="SnapStart on published versions, zip or image (Python 3.12+; not with "
        "--provisioned; /tmp at most 512 MB)",
    )
    a(
        "--provisioned",
        type=_positive,
        default=0,
        help="provisioned concurrency on the alias (default: none)",
    )
    a("--function-url", action="store_true", help="add a Function URL on the alias (auth: AWS_IAM)")
    a(
        "--log-retention",
        type=_positive,
        default=14,
        help="log retention in days (default: %(default)s)",
    )
    a(
        "--no-prewarm",
        dest="prewarm",
        action="store_false",
        help="skip the prewarm after the stack update",
    )
    a("--dry-run", action="store_true", help="show the plan and stop; nothing is changed")
    parser.epilog = (
        "Steps: validate, slim (for a SavedModel), build layers and code zips, look at what "
        "exists, plan, then upload only what is missing (chunks before the manifest), publish "
        "layers, create or update the stack through a change set, and prewarm. The same inputs "
        "twice change nothing. AWS_ENDPOINT_URL points boto3 at a non-AWS endpoint."
    )


def run(args: argparse.Namespace, out: Output) -> int:
    from preheat.constants import MANIFEST_NAME

    if not (args.model / MANIFEST_NAME).is_file():
        # A SavedModel is slimmed first: TensorFlow reads it, LiteRT checks a LiteRT result.
        litert = args.runtime == "litert" and args.precision != "exact"
        need("deploy", "tensorflow", *(["ai_edge_litert"] if litert else []))
    from preheat.tools.deploy import DeployRequest, Plan, deploy

    request = DeployRequest(
        stack=args.stack,
        bucket=args.bucket,
        model=args.model,
        runtime=args.runtime,
        precision=args.precision,
        name=args.name,
        version=args.version,
        prefix=args.prefix,
        region=args.region,
        warm=args.warm,
        schedule=args.schedule,
        second_schedule=args.second_schedule,
        second_warm=args.second_warm,
        image_uri=args.image_uri,
        model_layer=args.model_layer,
        model_in_image=args.model_in_image,
        runtime_layer_zip=args.runtime_layer,
        python=args.python,
        arch=args.arch,
        memory_mb=args.memory,
        timeout_s=args.timeout,
        alias=args.alias,
        snapstart=args.snapstart,
        provisioned=args.provisioned,
        function_url=args.function_url,
        log_retention_days=args.log_retention,
        prewarm=args.prewarm,
        dry_run=args.dry_run,
    )

    def show(plan: Plan) -> None:
        out.info(plan.describe())

    # The slimmed model, layers and zips are only needed until the deploy is done.
    with tempfile.TemporaryDirectory(prefix="preheat-deploy-") as work:
        result = deploy(
            request,
            say=lambda m: out.progress(m, force=True),
            show_plan=show,
            work_dir=Path(work),
        )
    out.done_progress()
    done = result.done
    if done is not None:
        for warning in done.warnings:
            out.warn(warning)
    if done is None:
        human = "dry run: nothing was changed"
    elif done.stack is not None and done.stack.action == "none" and done.uploaded_bytes == 0:
        human = "no changes: everything was already deployed as asked"
    else:
        status = done.stack.status if done.stack else "unchanged"
        human = (
            f"deployed {result.plan.desired.model_uri} to stack {request.stack} ({status}); "
            f"uploaded {human_bytes(done.uploaded_bytes)}, skipped {human_bytes(done.skipped_bytes)}"
        )
    out.result(result.to_dict(), human)
    return 0
