"""Carry out a plan: bucket, zips, layers, the artifact (manifest last), the stack, prewarm."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from preheat.tools.deploy.plan import Plan
from preheat.tools.deploy.remote import Clients, aws_call, read_stack
from preheat.tools.deploy.stack import StackResult, Waiting, apply

Say = Callable[[str], None]
Prewarm = Callable[[Any, str, str, int], dict[str, Any]]


def prewarm_target(
    lambda_client: Any, function: str, qualifier: str, concurrency: int
) -> dict[str, Any]:
    """One warm cycle of the deployed alias, through the warmer engine."""
    from preheat.warm import engine

    report = engine.warm_target(lambda_client, function, qualifier, concurrency)
    return report.to_dict()


@dataclass
class Done:
    """What a deploy did, for the summary and for --json."""

    uploaded_bytes: int = 0
    skipped_bytes: int = 0
    uploaded: list[str] = field(default_factory=list)
    published_layers: dict[str, str] = field(default_factory=dict)
    chunks_uploaded: int = 0
    chunks_skipped: int = 0
    stack: StackResult | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    prewarm: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uploaded_bytes": self.uploaded_bytes,
            "skipped_bytes": self.skipped_bytes,
            "uploaded": self.uploaded,
            "published_layers": self.published_layers,
            "chunks_uploaded": self.chunks_uploaded,
            "chunks_skipped": self.chunks_skipped,
            "stack_action": self.stack.action if self.stack else "none",
            "stack_status": self.stack.status if self.stack else None,
            "changes": self.stack.changes if self.stack else [],
            "outputs": self.outputs,
            "prewarm": self.prewarm,
            "warnings": self.warnings,
        }


def _change_set_name(plan: Plan, stage: str) -> str:
    return f"preheat-{stage}-{plan.desired.fingerprint()[:12]}-{int(time.time())}"


def execute(
    plan: Plan,
    clients: Clients,
    *,
    say: Say = lambda _m: None,
    waiting: Waiting | None = None,
    prewarm: Prewarm = prewarm_target,
    prewarm_client: Any = None,
) -> Done:
    desired = plan.desired
    req = desired.request
    done = Done()
    cf, s3, lam = clients.cloudformation, clients.s3, clients.lambda_

    if plan.create_bucket_stack:
        say(f"creating stack {req.stack} with bucket {req.bucket}")
        apply(
            cf,
            req.stack,
            desired.bucket_template_body,
            desired.bucket_parameters(),
            create=True,
            change_set_name=_change_set_name(plan, "bucket"),
            waiting=waiting,
            say=say,
        )

    for blob in plan.uploads:
        say(f"uploading {blob.label} ({blob.zip.size / 1e6:.1f} MB)")
        with blob.zip.path.open("rb") as fh:
            aws_call(
                f"uploading {blob.label} to s3://{req.bucket}/{blob.key}",
                functools.partial(s3.put_object, Bucket=req.bucket, Key=blob.key, Body=fh),
            )
        done.uploaded_bytes += blob.zip.size
        done.uploaded.append(blob.key)
    done.skipped_bytes += sum(b.zip.size for b in plan.present)

    arns = dict(plan.reuse)
    for spec in plan.publish:
        say(f"publishing layer {spec.name}")
        published = aws_call(
            f"publishing layer {spec.name}",
            functools.partial(
                lam.publish_layer_version,
                LayerName=spec.name,
                Description=spec.description,
                Content={"S3Bucket": req.bucket, "S3Key": spec.blob.key},
                CompatibleRuntimes=[req.lambda_runtime],
                CompatibleArchitectures=[req.arch],
            ),
        )
        arns[spec.name] = published["LayerVersionArn"]
        done.published_layers[spec.name] = published["LayerVersionArn"]

    # Chunks first and the manifest last (push's own order): a manifest is never visible
    # before every chunk it names, so a half-finished deploy is never trusted.
    from preheat.tools.push import push

    def progress(sent: int, total: int) -> None:
        say(f"pushing {desired.model_uri}: {sent / 1e6:.1f} of {total / 1e6:.1f} MB")

    pushed = push(
        desired.artifact,
        f"s3://{req.bucket}/{req.prefix}",
        name=req.name or desired.manifest.name,
        version=desired.version,
        s3_client=s3,
        progress=progress,
    )
    done.uploaded_bytes += pushed.uploaded_bytes
    done.skipped_bytes += pushed.skipped_bytes
    done.chunks_uploaded = pushed.chunks_uploaded
    done.chunks_skipped = pushed.chunks_skipped

    parameters = desired.stack_parameters(arns, plan.create_bucket)
    if plan.stack_action == "none":
        done.stack = StackResult("none", "NO_CHANGES")
    else:
        stack_now = read_stack(cf, req.stack)
        create = stack_now is None or stack_now.status == "REVIEW_IN_PROGRESS"
        say(f"{'creating' if create else 'updating'} stack {req.stack}")
        done.stack = apply(
            cf,
            req.stack,
            desired.template_body,
            parameters,
            create=create,
            change_set_name=_change_set_name(plan, "full"),
            waiting=waiting,
            say=say,
        )
    state = read_stack(cf, req.stack)
    done.outputs = dict(state.outputs) if state else {}

    if plan.prewarm and done.stack.action != "none":
        say(f"prewarming {req.warm} environments of {desired.inference_function}:{req.alias}")
        try:
            client = prewarm_client if prewarm_client is not None else clients.warm_lambda(req.warm)
            report = prewarm(client, desired.inference_function, req.alias, req.warm)
            done.prewarm = report
            if not report.get("ok", False):
                done.warnings.append(
                    f"prewarm reached {report.get('warm', 0)} of {req.warm} environments "
                    f"({report.get('reason') or 'see errors'}); the stack update stands; "
                    f"retry with `preheat prewarm --function {desired.inference_function} "
                    f"--qualifier {req.alias} --concurrency {req.warm}`"
                )
        except Exception as exc:  # whatever the prewarm met, the stack update stands
            done.warnings.append(f"prewarm failed: {exc}; the stack update stands")
    return done
