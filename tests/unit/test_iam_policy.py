"""Least privilege: every IAM statement in the templates, walked and judged.

An Allow statement may not use a wildcard action, nor a resource that AWS lets us narrow.
Deny statements may be broad (denying everything over plain HTTP is the safe direction).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"

# Actions that AWS does not let a policy scope to a resource; none is needed today.
UNSCOPABLE_ACTIONS: frozenset[str] = frozenset()
# What each allowed action may touch: the resource string must contain one of these.
SCOPES = {
    "s3:GetObject": (
        "${BucketName}/${ModelPrefix}/models/*",
        "${BucketName}/${ModelPrefix}/blobs/*",
    ),
    "s3:ListBucket": (":s3:::${BucketName}",),
    "logs:CreateLogStream": ("log-group:/aws/lambda/${AWS::StackName}-",),
    "logs:PutLogEvents": ("log-group:/aws/lambda/${AWS::StackName}-",),
    "lambda:InvokeFunction": ("${InferenceFunction.Arn}:${AliasName}",),
    "sts:AssumeRole": (),
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(cfn_yaml.loads(path.read_text())))
    return data


def render(value: Any) -> str:
    """A resource expression as text: Fn::Sub keeps its template, Ref and GetAtt become ${…}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return str(sub if isinstance(sub, str) else sub[0])
        if "Ref" in value:
            return "${" + str(value["Ref"]) + "}"
        if "Fn::GetAtt" in value:
            return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return json.dumps(value)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(tpl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every policy statement in the template."""
    for name, res in tpl["Resources"].items():
        props = res.get("Properties", {})
        docs: list[tuple[str, Any]] = []
        if res["Type"] == "AWS::IAM::Role":
            docs.append((f"{name}.AssumeRolePolicyDocument", props["AssumeRolePolicyDocument"]))
            docs += [
                (f"{name}.{p['PolicyName']}", p["PolicyDocument"])
                for p in props.get("Policies", [])
            ]
            assert "ManagedPolicyArns" not in props, f"{name}: managed policies are not scoped"
        elif res["Type"] in {
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
            "AWS::S3::BucketPolicy",
        }:
            docs.append((name, props["PolicyDocument"]))
        for where, doc in docs:
            for i, st in enumerate(as_list(doc["Statement"])):
                yield f"{where}[{i}]", st


def faults(tpl: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for where, st in statements(tpl):
        if st["Effect"] == "Deny":
            continue
        if "NotAction" in st or "NotResource" in st:
            found.append(f"{where}: NotAction/NotResource in an Allow grants almost everything")
        actions = [render(a) for a in as_list(st.get("Action", []))]
        for action in actions:
            if "*" in action and action not in UNSCOPABLE_ACTIONS:
                found.append(f"{where}: wildcard action {action}")
            elif action not in SCOPES:
                found.append(f"{where}: action {action} is not one the functions need")
        if "Principal" in st:  # a trust policy: only Lambda may assume the role
            if st["Principal"] != {"Service": "lambda.amazonaws.com"} or actions != [
                "sts:AssumeRole"
            ]:
                found.append(f"{where}: trust policy must let only lambda.amazonaws.com assume it")
            continue
        resources = [render(r) for r in as_list(st.get("Resource", []))]
        if not resources:
            found.append(f"{where}: no Resource")
        for resource in resources:
            if resource == "*" or resource.endswith(":*:*") or resource.endswith(":::*"):
                found.append(f"{where}: unscoped resource {resource}")
            for action in actions:
                allowed = SCOPES.get(action, ())
                if allowed and not any(scope in resource for scope in allowed):
                    found.append(f"{where}: {action} on {resource} reaches beyond {allowed}")
    return found


@pytest.mark.parametrize("name", ["template.yaml", "bucket.yaml"])
def test_every_statement_is_least_privilege(name: str) -> None:
    tpl = load(INFRA / name)
    assert faults(tpl) == []


def test_the_walk_sees_every_policy() -> None:
    where = [w for w, _ in statements(load(INFRA / "template.yaml"))]
    for expected in (
        "InferenceRole.read-model",
        "InferenceRole.write-logs",
        "WarmerRole.invoke-targets",
        "WarmerRole.write-logs",
        "ModelBucketPolicy",
    ):
        assert any(w.startswith(expected) for w in where), expected


def test_list_bucket_is_confined_to_the_model_prefix() -> None:
    tpl = load(INFRA / "template.yaml")
    (listing,) = [st for _, st in statements(tpl) if st.get("Action") == "s3:ListBucket"]
    prefixes = [render(p) for p in listing["Condition"]["StringLike"]["s3:prefix"]]
    assert prefixes == ["${ModelPrefix}/models/*", "${ModelPrefix}/blobs/*"]


@pytest.mark.parametrize(
    ("policy", "index", "change", "complaint"),
    [
        ("read-model", 0, {"Action": "s3:*"}, "wildcard action"),
        ("read-model", 0, {"Resource": "*"}, "unscoped resource"),
        (
            "read-model",
            0,
            {"Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/*"}},
            "reaches beyond",
        ),
        (
            "write-logs",
            0,
            {"Resource": {"Fn::Sub": "arn:${AWS::Partition}:logs:*:*"}},
            "unscoped resource",
        ),
        ("read-model", 0, {"Action": "s3:PutObject"}, "not one the functions need"),
    ],
)
def test_the_check_catches_a_broadened_statement(
    policy: str, index: int, change: dict[str, Any], complaint: str
) -> None:
    tpl = copy.deepcopy(load(INFRA / "template.yaml"))
    role = tpl["Resources"]["InferenceRole"]["Properties"]
    doc = next(p for p in role["Policies"] if p["PolicyName"] == policy)["PolicyDocument"]
    doc["Statement"][index].update(change)
    assert any(complaint in f for f in faults(tpl))


def test_the_warmer_may_invoke_only_the_inference_alias() -> None:
    tpl = load(INFRA / "template.yaml")
    role = tpl["Resources"]["WarmerRole"]["Properties"]
    (doc,) = [p["PolicyDocument"] for p in role["Policies"] if p["PolicyName"] == "invoke-targets"]
    (st,) = doc["Statement"]
    assert st["Action"] == "lambda:InvokeFunction"
    assert render(st["Resource"]) == "${InferenceFunction.Arn}:${AliasName}"
