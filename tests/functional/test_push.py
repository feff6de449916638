"""`push` against a real moto server: content-addressed chunks, dedup, manifest last."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preheat.artifact import manifest as mf
from preheat.cache.s3 import blob_key
from preheat.exceptions import ConfigurationError, ManifestError, PushError
from preheat.tools.push import parse_dest, push
from tests.fixtures.s3 import random_files

MB = 1024 * 1024
SIZES = {"saved_model.pb": 200_000, "variables/variables.data-00000-of-00001": 4 * MB + 1}


@pytest.fixture
def fresh_bucket(s3_client: Any) -> str:
    name = f"push-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def test_push_uploads_chunks_by_hash_then_the_manifest(
    s3_client: Any, fresh_bucket: str, artifact: Callable[..., Path]
) -> None:
    src = artifact(1, SIZES, name="ignored", version="0")
    seen: list[tuple[int, int]] = []
    result = push(
        src,
        f"s3://{fresh_bucket}/ml/",
        name="m",
        version="1",
        s3_client=s3_client,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert result.uri == f"s3://{fresh_bucket}/ml/models/m/1"
    assert result.manifest.name == "m" and result.manifest.version == "1"
    chunks = [ch for f in result.manifest.files for ch in f.chunks]
    assert result.chunks_uploaded == len(chunks) == 6 and result.chunks_skipped == 0
    assert result.uploaded_bytes == sum(SIZES.values()) and result.skipped_bytes == 0
    expected = sorted(
        [blob_key("ml", ch.sha256) for ch in chunks] + ["ml/models/m/1/manifest.json"]
    )
    assert keys(s3_client, fresh_bucket) == expected
    body = s3_client.get_object(Bucket=fresh_bucket, Key=blob_key("ml", chunks[0].sha256))
    assert body["Body"].read() == (src / "saved_model.pb").read_bytes()
    stored = mf.loads(
        s3_client.get_object(Bucket=fresh_bucket, Key="ml/models/m/1/manifest.json")["Body"].read()
    )
    assert stored == result.manifest
    assert seen[0] == (0, result.uploaded_bytes) and seen[-1] == (
        result.uploaded_bytes,
        result.uploaded_bytes,
    )


def test_pushing_twice_uploads_nothing_the_second_time(
    s3_client: Any, fresh_bucket: str, artifact: Callable[..., Path]
) -> None:
    src = artifact(2, SIZES)
    first = push(src, f"s3://{fresh_bucket}/p", name="m", version="1", s3_client=s3_client)
    again = push(src, f"s3://{fresh_bucket}/p", name="m", version="1", s3_client=s3_client)
    assert again.uploaded_bytes == 0 and again.chunks_uploaded == 0
    assert again.skipped_bytes == first.uploaded_bytes
    assert again.uri == first.uri


def test_a_new_version_with_one_changed_file_uploads_only_its_changed_chunks(
    s3_client: Any, fresh_bucket: str, artifact: Callable[..., Path], tmp_path: Path
) -> None:
    files = random_files(3, SIZES)
    src = artifact(3, SIZES)
    push(src, f"s3://{fresh_bucket}/p", name="m", version="1", s3_client=s3_client)
    # Change a few bytes inside the second MiB of the variables file: one chunk differs.
    data = bytearray(files["variables/variables.data-00000-of-00001"])
    data[MB + 10 : MB + 20] = b"0123456789"
    (src / "variables/variables.data-00000-of-00001").write_bytes(bytes(data))
    manifest = mf.read(src)
    rebuilt = mf.build(
        src,
        name="m",
        version="2",
        runtime=manifest.runtime,
        precision=manifest.precision,
        signature=manifest.signature,
        chunk_size=manifest.chunk_size,
    )
    rebuilt.write(src)
    second = push(src, f"s3://{fresh_bucket}/p", name="m", version="2", s3_client=s3_client)
    assert second.chunks_uploaded == 1 and second.uploaded_bytes == MB
    assert second.skipped_bytes == sum(SIZES.values()) - MB


def test_an_artifact_whose_files_changed_since_its_manifest_is_refused(
    s3_client: Any, fresh_bucket: str, artifact: Callable[..., Path]
) -> None:
    src = artifact(4, SIZES)
    (src / "saved_model.pb").write_bytes(b"tampered")
    with pytest.raises(ManifestError, match=r"saved_model\.pb does not match"):
        push(src, f"s3://{fresh_bucket}/p", name="m", version="1", s3_client=s3_client)
    assert keys(s3_client, fresh_bucket) == []


def test_an_existing_version_with_other_contents_is_not_overwritten(
    s3_client: Any, fresh_bucket: str, artifact: Callable[..., Path]
) -> None:
    push(artifact(5, SIZES), f"s3://{fresh_bucket}/p", name="m", version="1", s3_client=s3_client)
    with pytest.raises(PushError, match="new --version"):
        push(
            artifact(6, SIZES),
            f"s3://{fresh_bucket}/p",
            name="m",
            version="1",
            s3_client=s3_client,
        )


def test_a_missing_bucket_is_named(s3_client: Any, artifact: Callable[..., Path]) -> None:
    with pytest.raises(PushError, match="bucket does not exist"):
        push(
            artifact(1, {"a": 10}),
            "s3://no-such-bucket-x/p",
            name="m",
            version="1",
            s3_client=s3_client,
        )


def test_a_saved_model_gets_a_tensorflow_manifest_with_its_signature(
    s3_client: Any, fresh_bucket: str, dense_model: Any
) -> None:
    result = push(
        dense_model.path,
        f"s3://{fresh_bucket}/p",
        name="dense",
        version="1",
        s3_client=s3_client,
        slim=False,
    )
    m = result.manifest
    assert not result.slimmed
    assert m.runtime == "tensorflow" and m.precision == "exact"
    assert m.signature == dense_model.signature
    assert {f.path for f in m.files} >= {"saved_model.pb"}
    # Pushed as it is: the files are the export's own.
    assert m.source["fingerprint"] == mf.fingerprint(m.files)


def test_a_saved_model_is_re_saved_exact_by_default_with_its_parity_proven(
    s3_client: Any, fresh_bucket: str, two_signature_model: Any
) -> None:
    export = mf.scan_files(two_signature_model.path)
    result = push(
        two_signature_model.path,
        f"s3://{fresh_bucket}/p",
        name="two",
        version="1",
        s3_client=s3_client,
    )
    m = result.manifest
    assert result.slimmed
    assert m.runtime == "tensorflow" and m.precision == "exact"
    assert m.name == "two" and m.version == "1"
    assert m.signature == two_signature_model.signature
    # Every signature survives the re-save, and the proof is in the manifest.
    assert {s.key for s in m.signatures} == {s.key for s in two_signature_model.others}
    assert m.parity["bit_identical"] is True
    assert m.source["fingerprint"] == mf.fingerprint(export)
    assert m.source["fingerprint"] != mf.fingerprint(m.files)
    # What is in S3 is the re-saved artifact: its manifest and every chunk it names.
    present = set(keys(s3_client, fresh_bucket))
    assert "p/models/two/1/manifest.json" in present
    assert {f"p/blobs/sha256/{ch.sha256}" for f in m.files for ch in f.chunks} <= present


@pytest.mark.parametrize(
    "dest",
    [
        "bucket/p",
        "s3://",
        "s3://UPPER/p",
        "s3://b/p",
        "s3://ok-bucket/a//b",
        "s3://ok-bucket/x/models",
    ],
)
def test_bad_destinations_are_refused(dest: str) -> None:
    with pytest.raises(ConfigurationError, match="destination"):
        parse_dest(dest)


@pytest.mark.parametrize(("name", "version"), [("../x", "1"), ("m", "a/b"), ("", "1"), ("m", "-1")])
def test_bad_names_and_versions_are_refused_before_any_upload(
    s3_client: Any, fresh_bucket: str, artifact: Callable[..., Path], name: str, version: str
) -> None:
    with pytest.raises(ConfigurationError):
        push(
            artifact(1, {"a": 10}),
            f"s3://{fresh_bucket}/p",
            name=name,
            version=version,
            s3_client=s3_client,
        )
    assert keys(s3_client, fresh_bucket) == []


def test_a_directory_that_is_neither_artifact_nor_saved_model_is_refused(
    tmp_path: Path, s3_client: Any, fresh_bucket: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"neither manifest\.json nor saved_model\.pb"):
        push(tmp_path, f"s3://{fresh_bucket}/p", name="m", version="1", s3_client=s3_client)
