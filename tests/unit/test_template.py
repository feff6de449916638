"""The CloudFormation templates: cfn-lint clean, and the properties the design promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
TEMPLATE = INFRA / "template.yaml"
BUCKET = INFRA / "bucket.yaml"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(cfn_yaml.loads(path.read_text())))
    return data


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return load(TEMPLATE)


def resources_of(tpl: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in tpl["Resources"].items() if r["Type"] == kind}


@pytest.mark.parametrize("path", [TEMPLATE, BUCKET], ids=lambda p: p.name)
def test_cfn_lint_is_clean(path: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    proc = subprocess.run(
        [str(cfn_lint), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plain_cloudformation_and_the_resource_list(tpl: dict[str, Any]) -> None:
    assert "Transform" not in tpl
    assert sorted(tpl["Resources"]) == sorted(
        [
            "ModelBucket",
            "ModelBucketPolicy",
            "InferenceLogGroup",
            "InferenceRole",
            "InferenceFunction",
            "InferenceVersion",
            "InferenceAlias",
            "InferenceUrl",
            "WarmerLogGroup",
            "WarmerRole",
            "WarmerFunction",
            "WarmRule",
            "WarmRulePermission",
            "SecondWarmRule",
            "SecondWarmRulePermission",
        ]
    )
    for output in (
        "InferenceFunctionArn",
        "InferenceAliasArn",
        "WarmerFunctionArn",
        "ModelBucket",
        "ModelUri",
    ):
        assert output in tpl["Outputs"]


def test_model_bucket_is_locked_down_and_retained(tpl: dict[str, Any]) -> None:
    bucket = tpl["Resources"]["ModelBucket"]
    assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and "NoncurrentVersionExpiration" in rule

    (statement,) = tpl["Resources"]["ModelBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_bucket_stage_declares_the_same_bucket(tpl: dict[str, Any]) -> None:
    """The first step's bucket must be what the full template keeps, or the update would change it."""
    first = load(BUCKET)["Resources"]
    for name in ("ModelBucket", "ModelBucketPolicy"):
        full = {k: v for k, v in tpl["Resources"][name].items() if k != "Condition"}
        assert first[name] == full
    assert set(first) == {"ModelBucket", "ModelBucketPolicy"}


def test_inference_function_has_both_variants(tpl: dict[str, Any]) -> None:
    fn = tpl["Resources"]["InferenceFunction"]["Properties"]
    assert fn["PackageType"] == {"Ref": "PackageType"}
    assert tpl["Parameters"]["PackageType"]["AllowedValues"] == ["Zip", "Image"]
    code_if = fn["Code"]["Fn::If"]
    assert code_if[0] == "IsZip" and "S3Key" in code_if[1] and "ImageUri" in code_if[2]
    # An image function may not name a handler, runtime or layers.
    for prop in ("Handler", "Runtime", "Layers"):
        assert fn[prop]["Fn::If"][0] == "IsZip"
        assert fn[prop]["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert fn["Environment"]["Variables"]["PREHEAT_MODEL_URI"] == {"Ref": "ModelUri"}
    assert fn["EphemeralStorage"] == {"Size": {"Ref": "EphemeralStorageSize"}}
    assert fn["Architectures"] == [{"Ref": "Architecture"}]
    assert fn["SnapStart"]["Fn::If"][1] == {"ApplyOn": "PublishedVersions"}
    alias = tpl["Resources"]["InferenceAlias"]["Properties"]
    assert alias["FunctionVersion"] == {"Fn::GetAtt": ["InferenceVersion", "Version"]}
    pc = alias["ProvisionedConcurrencyConfig"]["Fn::If"]
    assert pc[0] == "HasProvisioned"
    # A new fingerprint must publish a new version; the same one must not.
    version = tpl["Resources"]["InferenceVersion"]["Properties"]
    assert "DeployFingerprint" in json.dumps(version["Description"])


def test_function_url_is_iam_only(tpl: dict[str, Any]) -> None:
    url = tpl["Resources"]["InferenceUrl"]
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    assert url["Condition"] == "HasFunctionUrl"
    assert tpl["Parameters"]["FunctionUrl"]["Default"] == "false"
    # No parameter can open it.
    assert "NONE" not in json.dumps(tpl["Parameters"])


def _input_json(sub: Any, values: dict[str, str]) -> Any:
    text = sub["Fn::Sub"]
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], text))


def test_each_schedule_carries_its_targets_and_is_allowed_to_invoke(tpl: dict[str, Any]) -> None:
    rules = resources_of(tpl, "AWS::Events::Rule")
    assert set(rules) == {"WarmRule", "SecondWarmRule"}
    concurrency = {"WarmRule": "WarmConcurrency", "SecondWarmRule": "SecondWarmConcurrency"}
    permissions = resources_of(tpl, "AWS::Lambda::Permission")
    for name, rule in rules.items():
        (target,) = rule["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["WarmerFunction", "Arn"]}
        values = {"InferenceFunction": "st-inference", "AliasName": "live", concurrency[name]: "7"}
        assert _input_json(target["Input"], values) == {
            "targets": [{"function": "st-inference", "qualifier": "live", "concurrency": 7}]
        }
        (perm,) = [
            p
            for p in permissions.values()
            if p["Properties"]["SourceArn"] == {"Fn::GetAtt": [name, "Arn"]}
        ]
        assert perm["Properties"]["Principal"] == "events.amazonaws.com"
        assert perm["Properties"]["Action"] == "lambda:InvokeFunction"
        assert perm["Condition"] == rule["Condition"]


def test_log_groups_have_retention_and_exist_before_their_functions(tpl: dict[str, Any]) -> None:
    for fn, group in (
        ("InferenceFunction", "InferenceLogGroup"),
        ("WarmerFunction", "WarmerLogGroup"),
    ):
        res = tpl["Resources"]
        assert res[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert res[fn]["DependsOn"] == group
        suffix = res[fn]["Properties"]["FunctionName"]["Fn::Sub"].removeprefix("${AWS::StackName}")
        assert (
            res[group]["Properties"]["LogGroupName"]["Fn::Sub"]
            == f"/aws/lambda/${{AWS::StackName}}{suffix}"
        )


def test_snapstart_rules_match_what_lambda_allows(tpl: dict[str, Any]) -> None:
    rule = tpl["Rules"]["SnapStartLimits"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "true"]}
    asserted = [a["Assert"] for a in rule["Assertions"]]
    assert asserted == [
        {"Fn::Equals": [{"Ref": "ProvisionedConcurrency"}, 0]},
        {"Fn::Equals": [{"Ref": "EphemeralStorageSize"}, 512]},
    ]
    assert tpl["Parameters"]["EphemeralStorageSize"]["MinValue"] == 512
    # Images too: the Dockerfile's Python 3.12 base image runs the hooks itself.
    assert "PackageType" not in json.dumps(rule)
    fn = tpl["Resources"]["InferenceFunction"]["Properties"]
    assert fn["SnapStart"]["Fn::If"][0] == "UseSnapStart"
    # SnapStart applies to published versions only: callers go through one.
    assert tpl["Resources"]["InferenceAlias"]["Properties"]["FunctionVersion"] == {
        "Fn::GetAtt": ["InferenceVersion", "Version"]
    }
    # SnapStart for Python needs 3.12+, and no older runtime is offered at all.
    assert "python3.11" not in tpl["Parameters"]["PythonRuntime"]["AllowedValues"]
