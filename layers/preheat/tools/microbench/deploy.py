"""Bytes a deploy uploads: a ResNet50-class model deployed, then redeployed with one layer changed.

Runs against a local moto server (S3, CloudFormation, Lambda, IAM, EventBridge over HTTP):

    .venv/bin/python scripts/bench_deploy.py [--runtime litert|tensorflow] [--out DIR]

The model is Keras ResNet50 with seeded random weights; the redeploy changes the weights of
one Keras layer (`--layer`, default the classifier), re-exports and re-slims, then deploys
to the same stack and bucket. Prints (and writes to OUT/deploy.json) bytes uploaded and
skipped per deploy, plus the template's resources and cfn-lint's verdict.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REGION = "us-east-1"


def export_models(work: Path, layer: str, seed: int) -> tuple[Path, Path]:
    """v1: ResNet50 from the sample builder, every weight nudged; v2: v1 with one layer changed.

    Freshly initialised weights hold many identical tensors (zero biases, unit gammas) that the
    LiteRT converter stores once; changing one of them inserts a buffer and shifts every byte
    after it. A trained model has no such twins, so v1 is nudged to look like one.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from preheat.tools.sample_models import KINDS

    v1, v2 = work / "resnet50-v1", work / "resnet50-v2"
    keras.utils.set_random_seed(seed)
    tf.random.set_seed(seed)
    model = KINDS["resnet50"][0](keras, seed)
    rng = np.random.default_rng(seed)
    for each in model.layers:
        weights = each.get_weights()
        if weights:
            each.set_weights([w + rng.normal(0, 1e-3, w.shape).astype(w.dtype) for w in weights])
    if not (v1 / "saved_model.pb").is_file():
        model.export(str(v1), verbose=False)
    target = model.get_layer(layer)
    target.set_weights(
        [w + rng.normal(0, 1e-2, w.shape).astype(w.dtype) for w in target.get_weights()]
    )
    if not (v2 / "saved_model.pb").is_file():
        model.export(str(v2), verbose=False)
    return v1, v2


def slim(src: Path, out: Path, runtime: str) -> Path:
    from preheat.tools.slim import slim as run

    if (out / "manifest.json").is_file():
        return out
    precision = "fp16" if runtime == "litert" else "exact"
    return run(
        src, out, runtime=runtime, precision=precision, name="resnet50", version="0", force=True
    ).out


def lint(path: Path) -> str:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "clean" if proc.returncode == 0 else proc.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=("litert", "tensorflow"), default="litert")
    parser.add_argument("--layer", default="predictions", help="the Keras layer to change")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-results") / "deploy")
    parser.add_argument("--runtime-layer", type=Path, help="a prebuilt runtime layer zip")
    parser.add_argument("--no-model-layer", dest="model_layer", action="store_false")
    args = parser.parse_args(argv)

    import boto3

    from preheat.tools.deploy import Clients, DeployRequest, Waiting, deploy
    from preheat.tools.local.s3 import S3Server

    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    say = lambda m: print(f"  {m}", file=sys.stderr, flush=True)  # noqa: E731

    print("exporting ResNet50 v1 and v2 (one layer changed)", file=sys.stderr)
    v1, v2 = export_models(work, args.layer, args.seed)
    print(f"slimming both for {args.runtime}", file=sys.stderr)
    a1 = slim(v1, work / f"artifact-v1-{args.runtime}", args.runtime)
    a2 = slim(v2, work / f"artifact-v2-{args.runtime}", args.runtime)

    results: dict[str, Any] = {
        "model": "keras.applications.ResNet50(weights=None), seeded",
        "runtime": args.runtime,
        "changed_layer": args.layer,
        "model_layer": args.model_layer and args.runtime == "litert",
    }
    from preheat.tools.deploy.stages import bucket_template_path, template_path

    tpl = template_path()
    results["cfn_lint"] = {"template.yaml": lint(tpl), "bucket.yaml": lint(bucket_template_path())}

    with S3Server() as server:

        def client(service: str) -> Any:
            session: Any = boto3.session.Session()
            return session.client(
                service,
                endpoint_url=server.endpoint_url,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )

        clients = Clients(REGION, factory=client)
        runs: list[dict[str, Any]] = []
        for label, artifact in (
            ("first deploy", a1),
            ("redeploy, one layer changed", a2),
            ("same inputs again", a2),
        ):
            print(f"{label}:", file=sys.stderr)
            request = DeployRequest(
                stack="bench",
                bucket="preheat-bench",
                model=artifact,
                runtime=args.runtime,
                name="resnet50",
                region=REGION,
                image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/preheat:bench"
                if args.runtime == "tensorflow"
                else None,
                model_layer=args.model_layer,
                runtime_layer_zip=args.runtime_layer,
                prewarm=False,
            )
            start = time.perf_counter()
            result = deploy(
                request,
                clients=clients,
                waiting=Waiting(60, 0.05),
                work_dir=work / "deploy",
                say=say,
            )
            assert result.done is not None
            done = result.done
            chunk_bytes = result.plan.chunk_bytes_to_upload
            runs.append(
                {
                    "deploy": label,
                    "model_uri": result.plan.desired.model_uri,
                    "artifact_bytes": result.plan.desired.manifest.total_bytes,
                    "uploaded_bytes": done.uploaded_bytes,
                    "skipped_bytes": done.skipped_bytes,
                    "chunk_bytes_uploaded": chunk_bytes,
                    "zip_bytes_uploaded": done.uploaded_bytes - chunk_bytes,
                    "chunks_uploaded": done.chunks_uploaded,
                    "chunks_skipped": done.chunks_skipped,
                    "uploaded": [k.rsplit("/", 3)[-3] + "/…" for k in done.uploaded],
                    "stack": done.stack.status if done.stack else None,
                    "seconds": round(time.perf_counter() - start, 2),
                }
            )
        resources = client("cloudformation").list_stack_resources(StackName="bench")
        results["stack_resources_created_on_moto"] = sorted(  # moto skips some types
            f"{r['LogicalResourceId']} ({r['ResourceType']})"
            for r in resources["StackResourceSummaries"]
            if r["LogicalResourceId"]
        )
    from cfnlint.decode import cfn_yaml

    declared = cfn_yaml.loads(tpl.read_text())["Resources"]
    results["template_resources"] = {str(k): str(v["Type"]) for k, v in declared.items()}
    results["deploys"] = runs
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deploy.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    for r in runs:
        print(
            f"{r['deploy']:32s} uploaded {r['uploaded_bytes'] / 1e6:8.1f} MB "
            f"(chunks {r['chunk_bytes_uploaded'] / 1e6:.1f}, zips {r['zip_bytes_uploaded'] / 1e6:.1f}), "
            f"skipped {r['skipped_bytes'] / 1e6:8.1f} MB",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
