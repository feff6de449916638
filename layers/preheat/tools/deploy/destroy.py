"""Remove a deployed stack; the model bucket stays unless asked, since models outlive stacks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from preheat.exceptions import DeployError
from preheat.tools.deploy.remote import Clients, aws_call, error_code, read_stack
from preheat.tools.deploy.stack import Waiting, _poll

Say = Callable[[str], None]


@dataclass
class Destroyed:
    stack: str
    stack_deleted: bool
    bucket: str | None
    bucket_deleted: bool
    objects_deleted: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def empty_bucket(s3: Any, bucket: str, say: Say) -> int:
    """Delete every object version and delete marker; returns how many were deleted."""
    deleted = 0
    kwargs: dict[str, Any] = {"Bucket": bucket}
    while True:
        page = aws_call(f"listing s3://{bucket}", lambda: s3.list_object_versions(**kwargs))
        batch = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for i in range(0, len(batch), 1000):
            part = batch[i : i + 1000]
            aws_call(
                f"emptying s3://{bucket}",
                functools.partial(
                    s3.delete_objects, Bucket=bucket, Delete={"Objects": part, "Quiet": True}
                ),
            )
            deleted += len(part)
            say(f"emptying s3://{bucket}: {deleted} objects deleted")
        if not page.get("IsTruncated"):
            return deleted
        kwargs["KeyMarker"] = page.get("NextKeyMarker")
        kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")


def destroy(
    stack: str,
    clients: Clients,
    *,
    delete_bucket: bool = False,
    waiting: Waiting | None = None,
    say: Say = lambda _m: None,
) -> Destroyed:
    from botocore.exceptions import ClientError

    waiting = waiting or Waiting()
    cf = clients.cloudformation
    state = read_stack(cf, stack)
    if state is None:
        raise DeployError(
            f"stack {stack} does not exist (check --stack and --region)", resource=stack
        )
    bucket = state.parameters.get("BucketName") or None
    owned = state.parameters.get("CreateBucket") == "true"
    if delete_bucket and bucket and not owned:
        raise DeployError(
            f"bucket {bucket} was not created by stack {stack}; it may hold other data, so "
            "preheat leaves it: delete it yourself if you mean to",
            resource=bucket,
        )
    say(f"deleting stack {stack}")
    aws_call(f"deleting stack {stack}", lambda: cf.delete_stack(StackName=stack))

    def status() -> str:
        try:
            found = cf.describe_stacks(StackName=state.stack_id or stack)["Stacks"]
        except ClientError as exc:
            if error_code(exc) == "ValidationError":
                return "DELETE_COMPLETE"
            raise DeployError(
                f"reading stack {stack}: {exc}", resource=stack, code=error_code(exc) or None
            ) from exc
        return str(found[0]["StackStatus"]) if found else "DELETE_COMPLETE"

    final = _poll(f"stack {stack}", status, lambda s: not s.endswith("_IN_PROGRESS"), waiting, say)
    if final != "DELETE_COMPLETE":
        raise DeployError(
            f"stack {stack} ended {final}: see its events in CloudFormation", resource=stack
        )
    objects = 0
    bucket_deleted = False
    if delete_bucket and bucket:
        objects = empty_bucket(clients.s3, bucket, say)
        aws_call(f"deleting bucket {bucket}", lambda: clients.s3.delete_bucket(Bucket=bucket))
        bucket_deleted = True
    return Destroyed(stack, True, bucket, bucket_deleted, objects)
