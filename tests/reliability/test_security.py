"""Security checks: scoped IAM, a bucket closed to plain HTTP and the public, no symlink escapes."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path
from typing import Any

import pytest

from preheat.artifact import manifest as mf
from preheat.cache import resolve
from preheat.cache.client import make_client
from preheat.cache.disk import version_key
from preheat.exceptions import PreheatError
from preheat.settings import Settings
from preheat.uri import parse
from tests.reliability.conftest import Pushed
from tests.reliability.faultproxy import FaultProxy
from tests.unit.test_iam_policy import INFRA, as_list, faults, load, render, statements

TEMPLATES = ["template.yaml", "bucket.yaml"]

# ---------------------------------------------------------------------------- IAM and bucket


@pytest.mark.parametrize("name", TEMPLATES)
def test_iam_statements_are_scoped(name: str) -> None:
    # The infra policy walk is the one judge of least privilege; it must find nothing.
    assert faults(load(INFRA / name)) == []


def _bucket_policies(tpl: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r["Properties"]["PolicyDocument"]
        for r in tpl["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy"
    ]


def decide(policy: dict[str, Any], action: str, resource: str, tls: bool, principal: str) -> str:
    """IAM's evaluation for one request, as far as these policies need: Deny wins, then Allow."""
    verdict = "implicit deny"
    for st in as_list(policy["Statement"]):
        actions = [render(a) for a in as_list(st.get("Action", []))]
        resources = [render(r) for r in as_list(st.get("Resource", []))]
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        who = st.get("Principal", {})
        if who not in ("*", {"AWS": "*"}) and principal == "anonymous":
            continue
        cond = st.get("Condition", {}).get("Bool", {})
        wanted = cond.get("aws:SecureTransport")
        if wanted is not None and str(wanted).lower() != str(tls).lower():
            continue
        if st["Effect"] == "Deny":
            return "deny"
        verdict = "allow"
    return verdict


BUCKET_ARN = "arn:${AWS::Partition}:s3:::${BucketName}"


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", f"{BUCKET_ARN}/models/m/1/manifest.json"),
        ("s3:PutObject", f"{BUCKET_ARN}/blobs/sha256/abc"),
        ("s3:ListBucket", BUCKET_ARN),
        ("s3:DeleteBucket", BUCKET_ARN),
    ],
)
def test_bucket_denies_plain_http_and_the_public(name: str, action: str, resource: str) -> None:
    tpl = load(INFRA / name)
    policies = _bucket_policies(tpl)
    assert policies, f"{name} has no bucket policy"
    for policy in policies:
        for principal in ("anonymous", "account"):
            assert decide(policy, action, resource, tls=False, principal=principal) == "deny"
        assert decide(policy, action, resource, tls=True, principal="anonymous") != "allow"
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::S3::Bucket":
            block = res["Properties"]["PublicAccessBlockConfiguration"]
            assert block == {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            }


def test_no_statement_allows_everyone() -> None:
    for name in TEMPLATES:
        for where, st in statements(load(INFRA / name)):
            if st["Effect"] == "Allow":
                assert st.get("Principal") not in ("*", {"AWS": "*"}), where


# ---------------------------------------------------------------------------- symlinks


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(root.rglob("*"))
    }


def inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the cache that preheat must never read from or write to."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "keep.txt").write_text("untouched")
    return d


def _resolve(pushed: Pushed, cache: Path) -> Any:
    settings = Settings.from_env(env={}, cache_dir=cache, local_paths=(), fetch_retries=1)
    return resolve(pushed.uri, settings, s3_client=make_client(settings))


def _check_served(got: Any, cache: Path) -> None:
    assert inside(got.directory, cache), f"served {got.directory.resolve()} outside the cache"
    assert mf.verify_dir(got.directory, got.manifest) == []
    for f in got.manifest.files:
        assert not (got.directory / f.path).is_symlink()


def _attempt(pushed: Pushed, cache: Path) -> None:
    """Resolve; a refusal is fine, serving from (or writing) outside the cache is not."""
    try:
        got = _resolve(pushed, cache)
    except PreheatError:
        return
    _check_served(got, cache)


@pytest.mark.parametrize("sub", ["tmp", "versions", "meta", "locks", "trash"])
def test_cache_subdirectory_symlinked_outside_is_not_written_through(
    sub: str, proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path, outside: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / sub).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)

    _attempt(blob_v1, cache)

    assert snapshot(outside) == before


def test_version_symlinked_to_a_planted_copy_is_not_served(
    proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path, outside: Path
) -> None:
    cache = tmp_path / "cache"
    _resolve(blob_v1, cache)  # a genuine version, to copy and to learn the layout
    key = version_key(parse(blob_v1.uri))
    planted = outside / "planted"
    shutil.copytree(cache / "versions" / key, planted)
    shutil.rmtree(cache / "versions" / key)
    (cache / "versions" / key).symlink_to(planted, target_is_directory=True)
    before = snapshot(outside)

    _attempt(blob_v1, cache)

    assert snapshot(outside) == before


def test_cached_file_swapped_for_a_symlink_is_replaced_not_followed(
    proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path, outside: Path
) -> None:
    cache = tmp_path / "cache"
    first = _resolve(blob_v1, cache)
    target = first.directory / "variables" / "data"
    # The same bytes, outside: a size-and-hash check alone would accept them.
    shutil.copy(target, outside / "data")
    target.unlink()
    target.symlink_to(outside / "data")
    before = snapshot(outside)

    got = _resolve(blob_v1, cache)

    _check_served(got, cache)
    assert snapshot(outside) == before


def test_meta_file_symlinked_outside_is_not_written_through(
    proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path, outside: Path
) -> None:
    cache = tmp_path / "cache"
    _resolve(blob_v1, cache)
    key = version_key(parse(blob_v1.uri))
    meta = cache / "meta" / f"{key}.json"
    meta.unlink()
    meta.symlink_to(outside / "keep.txt")
    before = snapshot(outside)

    _attempt(blob_v1, cache)

    assert snapshot(outside) == before


@pytest.mark.parametrize("kind", ["lock", "hold"])
def test_lock_file_symlinked_outside_is_not_truncated(
    kind: str, proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path, outside: Path
) -> None:
    cache = tmp_path / "cache"
    (cache / "locks").mkdir(parents=True)
    key = version_key(parse(blob_v1.uri))
    (cache / "locks" / f"{key}.{kind}").symlink_to(outside / "keep.txt")
    (cache / "locks" / "cache.lock").symlink_to(outside / "keep.txt")
    before = snapshot(outside)

    _attempt(blob_v1, cache)

    assert snapshot(outside) == before


def test_dangling_version_symlink_is_replaced_by_a_real_version(
    proxy: FaultProxy, blob_v1: Pushed, tmp_path: Path, outside: Path
) -> None:
    cache = tmp_path / "cache"
    (cache / "versions").mkdir(parents=True)
    key = version_key(parse(blob_v1.uri))
    (cache / "versions" / key).symlink_to(outside / "not-yet", target_is_directory=True)

    got = _resolve(blob_v1, cache)

    _check_served(got, cache)
    assert not (outside / "not-yet").exists()
