"""The plan: the calls that turn what exists into what should, decided without calling AWS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from preheat.exceptions import DeployError
from preheat.tools.deploy.desired import Blob, Desired, LayerSpec
from preheat.tools.deploy.remote import SETTLED, Observed

# Parameter values that stand for layer ARNs not published yet.
PENDING = "<published during the deploy>"


@dataclass
class Plan:
    desired: Desired
    create_bucket_stack: bool
    create_bucket: bool
    uploads: list[Blob]
    present: list[Blob]
    publish: list[LayerSpec]
    reuse: dict[str, str]
    chunks_to_upload: int
    chunk_bytes_to_upload: int
    chunk_bytes_present: int
    manifest_present: bool
    stack_action: str  # "create", "update" or "none"
    parameters: dict[str, str]
    prewarm: bool
    notes: list[str] = field(default_factory=list)

    @property
    def upload_bytes(self) -> int:
        return self.chunk_bytes_to_upload + sum(b.zip.size for b in self.uploads)

    @property
    def skip_bytes(self) -> int:
        return self.chunk_bytes_present + sum(b.zip.size for b in self.present)

    @property
    def changes_nothing(self) -> bool:
        return (
            not self.create_bucket_stack
            and not self.uploads
            and not self.publish
            and self.chunks_to_upload == 0
            and self.manifest_present
            and self.stack_action == "none"
        )

    def to_dict(self) -> dict[str, Any]:
        d = self.desired
        return {
            "stack": d.request.stack,
            "bucket": d.request.bucket,
            "model_uri": d.model_uri,
            "runtime": d.request.runtime,
            "create_bucket_stack": self.create_bucket_stack,
            "uploads": [b.to_dict() for b in self.uploads],
            "present": [b.to_dict() for b in self.present],
            "layers_to_publish": [s.name for s in self.publish],
            "layers_reused": self.reuse,
            "chunks_to_upload": self.chunks_to_upload,
            "chunk_bytes_to_upload": self.chunk_bytes_to_upload,
            "chunk_bytes_present": self.chunk_bytes_present,
            "manifest_present": self.manifest_present,
            "upload_bytes": self.upload_bytes,
            "skip_bytes": self.skip_bytes,
            "stack_action": self.stack_action,
            "parameters": self.parameters,
            "prewarm": self.prewarm,
            "changes_nothing": self.changes_nothing,
            "notes": self.notes,
        }

    def describe(self) -> str:
        """The plan for people, one step a line, in the order it runs."""
        d = self.desired
        mb = 1e6
        lines = [f"plan for stack {d.request.stack} in bucket {d.request.bucket}:"]
        if self.changes_nothing:
            return lines[0] + "\n  no changes: everything is deployed as asked"
        if self.create_bucket_stack:
            lines.append(f"  create the stack with the model bucket {d.request.bucket}")
        for b in self.uploads:
            lines.append(f"  upload {b.label} ({b.zip.size / mb:.1f} MB) to {b.key}")
        if self.present:
            lines.append(f"  keep {len(self.present)} zips already in the bucket")
        for spec in self.publish:
            lines.append(f"  publish layer {spec.name}")
        for name in self.reuse:
            lines.append(f"  reuse layer {name}")
        lines.append(
            f"  push {d.model_uri}: {self.chunks_to_upload} chunks "
            f"({self.chunk_bytes_to_upload / mb:.1f} MB) to upload, "
            f"{self.chunk_bytes_present / mb:.1f} MB already there, manifest last"
        )
        verb = {"create": "create", "update": "update", "none": "leave unchanged"}
        lines.append(f"  {verb[self.stack_action]} the stack through a change set")
        if self.prewarm:
            lines.append(
                f"  prewarm {d.request.warm} environments of "
                f"{d.inference_function}:{d.request.alias}"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def plan(desired: Desired, observed: Observed) -> Plan:
    """Decide every call of the deploy from the desired and the observed state."""
    req = desired.request
    stack = observed.stack
    if (
        stack is not None
        and stack.status.endswith("_IN_PROGRESS")
        and stack.status != "REVIEW_IN_PROGRESS"
    ):
        raise DeployError(
            f"stack {req.stack} is {stack.status}: wait for it to finish, then deploy again",
            resource=req.stack,
        )
    if stack is not None and stack.status in {
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "DELETE_FAILED",
    }:
        raise DeployError(
            f"stack {req.stack} is {stack.status} and cannot be updated: remove it with "
            f"`preheat destroy --stack {req.stack}` and deploy again",
            resource=req.stack,
        )
    creating = stack is None or stack.status == "REVIEW_IN_PROGRESS"
    if creating:
        create_bucket = not observed.bucket_exists
    else:
        assert stack is not None
        create_bucket = stack.parameters.get("CreateBucket", "false") == "true"
        if create_bucket and not observed.bucket_exists:
            raise DeployError(
                f"stack {req.stack} owns bucket {req.bucket} but the bucket is gone: "
                f"remove the stack with `preheat destroy --stack {req.stack}` and deploy again",
                resource=req.bucket,
            )
        if stack.parameters.get("BucketName", req.bucket) != req.bucket:
            raise DeployError(
                f"stack {req.stack} uses bucket {stack.parameters['BucketName']}, not "
                f"{req.bucket}: pass --bucket {stack.parameters['BucketName']}",
                resource=req.stack,
            )
    create_bucket_stack = creating and create_bucket

    uploads = [b for b in desired.blobs if b.key not in observed.keys_present]
    present = [b for b in desired.blobs if b.key in observed.keys_present]
    publish: list[LayerSpec] = []
    reuse: dict[str, str] = {}
    for spec in desired.layers:
        arn = observed.layer_versions.get(spec.name, {}).get(spec.blob.zip.sha256)
        if arn:
            reuse[spec.name] = arn
        else:
            publish.append(spec)

    wanted: dict[str, int] = {}
    for entry in desired.manifest.files:
        for chunk in entry.chunks:
            wanted[chunk.sha256] = chunk.size
    todo = {sha: size for sha, size in wanted.items() if (sha, size) not in observed.chunks_present}

    arns = {**reuse, **{spec.name: PENDING for spec in publish}}
    parameters = desired.stack_parameters(arns, create_bucket)
    if creating:
        action = "create"
    else:
        assert stack is not None
        same_params = all(stack.parameters.get(k) == v for k, v in parameters.items())
        same_template = stack.template_body.strip() == desired.template_body.strip()
        settled = stack.status in SETTLED
        action = "none" if (same_params and same_template and settled and not publish) else "update"

    notes: list[str] = []
    if req.runtime == "tensorflow":
        notes.append(f"the inference function runs image {req.image_uri}")
    if not req.model_layer and req.runtime == "litert":
        notes.append("no model layer: the function fetches the model from S3 during INIT")
    if req.snapstart:
        notes.append(
            f"SnapStart: publishing the version runs INIT and snapshots it (minutes); "
            f"callers invoke the alias {req.alias}, never $LATEST"
        )
    return Plan(
        desired=desired,
        create_bucket_stack=create_bucket_stack,
        create_bucket=create_bucket,
        uploads=uploads,
        present=present,
        publish=publish,
        reuse=reuse,
        chunks_to_upload=len(todo),
        chunk_bytes_to_upload=sum(todo.values()),
        chunk_bytes_present=sum(s for sha, s in wanted.items() if sha not in todo),
        manifest_present=observed.manifest_present,
        stack_action=action,
        parameters=parameters,
        prewarm=req.prewarm and req.warm > 0 and action != "none",
        notes=notes,
    )
