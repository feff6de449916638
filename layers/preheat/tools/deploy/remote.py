"""The AWS side of a deploy: the clients, and a read-only look at what already exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from preheat import aws
from preheat.cache.s3 import blob_key
from preheat.exceptions import DeployError
from preheat.tools.deploy.desired import Desired

# The stack states a deploy can start from, and those it must refuse.
SETTLED = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)


class Clients:
    """boto3 clients, made on first use; any of them may be passed in instead."""

    def __init__(
        self,
        region: str | None = None,
        *,
        s3: Any = None,
        cloudformation: Any = None,
        lambda_: Any = None,
        factory: Callable[..., Any] | None = None,
    ) -> None:
        self.region = region
        self._given = {"s3": s3, "cloudformation": cloudformation, "lambda": lambda_}
        self._factory = factory

    def _make(self, service: str) -> Any:
        if self._given[service] is not None:
            return self._given[service]
        if self._factory is not None:
            return self._factory(service)
        import boto3

        return aws.client(
            service,
            retries={"max_attempts": 5, "mode": "standard"},
            pool=16,
            session=boto3.session.Session(region_name=self.region),
        )

    def warm_lambda(self, concurrency: int) -> Any:
        """A `lambda` client for the prewarm: no retries (a throttle must show) and a
        connection per concurrent ping, as the warmer engine needs."""
        if self._given["lambda"] is not None or self._factory is not None:
            return self._make("lambda")
        import boto3

        return aws.client(
            "lambda",
            retries=aws.NO_RETRIES,
            pool=max(10, concurrency),
            read_timeout=30,
            session=boto3.session.Session(region_name=self.region),
        )

    @cached_property
    def s3(self) -> Any:
        return self._make("s3")

    @cached_property
    def cloudformation(self) -> Any:
        return self._make("cloudformation")

    @cached_property
    def lambda_(self) -> Any:
        return self._make("lambda")


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def aws_call(what: str, fn: Callable[[], Any]) -> Any:
    """Run one AWS call; a refusal becomes a DeployError naming what was being done."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn()
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        code = error_code(exc) or None
        raise DeployError(f"{what}: {code or 'refused'}: {message}", code=code) from exc
    except BotoCoreError as exc:
        raise DeployError(f"{what}: {exc}", resource=what) from exc


@dataclass
class StackState:
    name: str
    status: str
    parameters: dict[str, str]
    template_body: str
    outputs: dict[str, str] = field(default_factory=dict)
    stack_id: str = ""


@dataclass
class Observed:
    bucket_exists: bool
    stack: StackState | None
    keys_present: set[str]
    chunks_present: set[tuple[str, int]]
    manifest_present: bool
    # layer name -> {content sha256: layer version ARN}
    layer_versions: dict[str, dict[str, str]]


def _missing(exc: BaseException) -> bool:
    return error_code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def read_stack(cf: Any, name: str) -> StackState | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cf.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise DeployError(
            f"reading stack {name}: {exc}", resource=name, code=error_code(exc) or None
        ) from exc
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    s = stacks[0]
    body = ""
    if s["StackStatus"] != "REVIEW_IN_PROGRESS":
        raw = aws_call(f"reading stack {name}'s template", lambda: cf.get_template(StackName=name))
        body = raw.get("TemplateBody", "")
        body = body if isinstance(body, str) else ""
    return StackState(
        name=name,
        status=s["StackStatus"],
        parameters={
            p["ParameterKey"]: p.get("ParameterValue", "") for p in s.get("Parameters", [])
        },
        template_body=body,
        outputs={o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs") or []},
        stack_id=s.get("StackId", ""),
    )


def _list_keys(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = aws_call(f"listing s3://{bucket}/{prefix}", lambda: s3.list_objects_v2(**kwargs))
        found += page.get("Contents", [])
        if not page.get("IsTruncated"):
            return found
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def layer_versions(lam: Any, name: str) -> dict[str, str]:
    """Published versions of layer `name` by the content hash in their description."""
    from botocore.exceptions import ClientError

    found: dict[str, str] = {}
    kwargs: dict[str, Any] = {"LayerName": name}
    while True:
        try:
            page = lam.list_layer_versions(**kwargs)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return found
            raise DeployError(
                f"listing layer {name}: {exc}", resource=name, code=error_code(exc) or None
            ) from exc
        for v in page.get("LayerVersions", []):
            desc = v.get("Description", "")
            if desc.startswith("preheat sha256:"):
                found.setdefault(desc.split(":", 1)[1], v["LayerVersionArn"])
        if not page.get("NextMarker"):
            return found
        kwargs["Marker"] = page["NextMarker"]


def observe(desired: Desired, clients: Clients) -> Observed:
    """Read what exists now. Read-only: nothing is created, changed or deleted."""
    from botocore.exceptions import ClientError

    req = desired.request
    s3 = clients.s3
    try:
        s3.head_bucket(Bucket=req.bucket)
        bucket_exists = True
    except ClientError as exc:
        if not _missing(exc):
            raise DeployError(
                f"bucket {req.bucket}: {error_code(exc)}: it may belong to another account; "
                "bucket names are global, pick another --bucket",
                resource=req.bucket,
                code=error_code(exc) or None,
            ) from exc
        bucket_exists = False
    stack = read_stack(clients.cloudformation, req.stack)
    keys: set[str] = set()
    chunks: set[tuple[str, int]] = set()
    manifest_present = False
    if bucket_exists:
        for folder in ("layers", "code"):
            keys |= {o["Key"] for o in _list_keys(s3, req.bucket, f"{req.prefix}/{folder}/")}
        base = blob_key(req.prefix, "") + "/"
        chunks = {(o["Key"][len(base) :], int(o["Size"])) for o in _list_keys(s3, req.bucket, base)}
        manifest_key = desired.model_uri.split(f"s3://{req.bucket}/", 1)[1] + "/manifest.json"
        try:
            s3.head_object(Bucket=req.bucket, Key=manifest_key)
            manifest_present = True
        except ClientError as exc:
            if not _missing(exc):
                raise DeployError(
                    f"reading {desired.model_uri}: {exc}",
                    resource=desired.model_uri,
                    code=error_code(exc) or None,
                ) from exc
    layers = {spec.name: layer_versions(clients.lambda_, spec.name) for spec in desired.layers}
    return Observed(bucket_exists, stack, keys, chunks, manifest_present, layers)
