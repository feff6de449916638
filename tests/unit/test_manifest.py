"""Manifest validation: everything a reader refuses before trusting a byte."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.exceptions import ManifestError, UnsafePathError

SHA_A = "a" * 64
SHA_B = "b" * 64


def valid() -> dict[str, Any]:
    return {
        "format": c.ARTIFACT_FORMAT,
        "name": "m",
        "version": "1",
        "runtime": "tensorflow",
        "precision": "exact",
        "chunk_size": c.MIN_CHUNK_SIZE,
        "files": [
            {
                "path": "variables/variables.data-00000-of-00001",
                "size": c.MIN_CHUNK_SIZE + 10,
                "sha256": SHA_A,
                "chunks": [
                    {"sha256": SHA_A, "size": c.MIN_CHUNK_SIZE},
                    {"sha256": SHA_B, "size": 10},
                ],
            },
            {"path": "saved_model.pb", "size": 0, "sha256": SHA_B, "chunks": []},
        ],
        "signature": {
            "key": "serving_default",
            "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 4]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 2]}],
        },
    }


def with_path(path: Any) -> dict[str, Any]:
    d = valid()
    d["files"][1]["path"] = path
    return d


def test_valid_manifest_round_trips() -> None:
    m = mf.from_dict(valid())
    assert [f.path for f in m.files] == [
        "variables/variables.data-00000-of-00001",
        "saved_model.pb",
    ]
    assert m.total_bytes == c.MIN_CHUNK_SIZE + 10
    assert mf.loads(m.to_json()) == m


@pytest.mark.parametrize(
    "path",
    [
        "../outside",
        "variables/../../outside",
        "/etc/passwd",
        "./saved_model.pb",
        "a//b",
        "a\\b",
        "nul\x00byte",
        "",
        "trailing/",
        "manifest.json",
    ],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafePathError) as info:
        mf.from_dict(with_path(path))
    assert "escapes" in str(info.value)


def test_a_path_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ManifestError, match="wrong type"):
        mf.from_dict(with_path(["saved_model.pb"]))


@pytest.mark.parametrize(
    "dup", ["variables/variables.data-00000-of-00001", "VARIABLES/variables.data-00000-of-00001"]
)
def test_duplicate_paths_are_refused_even_differing_in_case(dup: str) -> None:
    with pytest.raises(ManifestError, match="listed twice"):
        mf.from_dict(with_path(dup))


def test_a_file_under_another_file_is_refused() -> None:
    d = valid()
    d["files"][1]["path"] = "variables/variables.data-00000-of-00001/inner"
    with pytest.raises(ManifestError, match="which is a file"):
        mf.from_dict(d)


def test_sizes_disagreeing_with_chunks_are_refused() -> None:
    d = valid()
    d["files"][0]["size"] += 1
    with pytest.raises(ManifestError, match="chunks add up to"):
        mf.from_dict(d)


def test_a_chunk_larger_than_the_chunk_size_is_refused() -> None:
    d = valid()
    d["files"][0]["chunks"][0]["size"] = c.MIN_CHUNK_SIZE + 1
    d["files"][0]["size"] += 1
    with pytest.raises(ManifestError, match="size outside"):
        mf.from_dict(d)


@pytest.mark.parametrize("bad", ["A" * 64, "a" * 63, "z" * 64, 7])
def test_bad_hashes_are_refused(bad: Any) -> None:
    d = valid()
    d["files"][0]["chunks"][1]["sha256"] = bad
    with pytest.raises(ManifestError):
        mf.from_dict(d)


def test_negative_sizes_are_refused() -> None:
    d = valid()
    d["files"][1]["size"] = -1
    with pytest.raises(ManifestError, match="size must be >= 0"):
        mf.from_dict(d)


def test_huge_chunk_counts_are_refused_before_anything_is_fetched() -> None:
    d = valid()
    many = c.MAX_CHUNKS + 1
    d["files"][0]["chunks"] = [{"sha256": SHA_A, "size": 1}] * many
    d["files"][0]["size"] = many
    with pytest.raises(ManifestError, match=f"more than {c.MAX_CHUNKS} chunks"):
        mf.from_dict(d)


def test_huge_file_counts_are_refused() -> None:
    d = valid()
    d["files"] = [{"path": f"f{i}", "size": 0, "sha256": SHA_A} for i in range(c.MAX_FILES + 1)]
    with pytest.raises(ManifestError, match="over the limit"):
        mf.from_dict(d)


@pytest.mark.parametrize("fmt", ["preheat.artifact/2", None, "something-else"])
def test_unknown_format_is_refused_with_the_fix(fmt: Any) -> None:
    d = valid()
    d["format"] = fmt
    with pytest.raises(ManifestError, match="upgrade preheat"):
        mf.from_dict(d)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("runtime", "pytorch", "runtime"),
        ("precision", "fp8", "precision"),
        ("chunk_size", 1, "chunk_size"),
        ("chunk_size", c.MAX_CHUNK_SIZE + 1, "chunk_size"),
        ("files", {}, "wrong type"),
        ("signature", [], "wrong type"),
    ],
)
def test_bad_top_level_fields_are_refused(key: str, value: Any, message: str) -> None:
    d = valid()
    d[key] = value
    with pytest.raises(ManifestError, match=message):
        mf.from_dict(d)


def test_missing_fields_are_named() -> None:
    for key in ("name", "version", "files", "signature", "runtime"):
        d = valid()
        del d[key]
        with pytest.raises(ManifestError, match=repr(key)):
            mf.from_dict(d)


def test_booleans_are_not_sizes() -> None:
    d = valid()
    d["files"][1]["size"] = False
    with pytest.raises(ManifestError, match="wrong type"):
        mf.from_dict(d)


def test_not_json_and_not_an_object_are_refused() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        mf.loads(b"{nope")
    with pytest.raises(ManifestError, match="JSON object"):
        mf.loads(b"[1, 2]")


def test_read_of_a_directory_without_manifest_names_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a preheat artifact"):
        mf.read(tmp_path)


def test_build_then_read_matches_the_files(tmp_path: Path) -> None:
    (tmp_path / "variables").mkdir()
    (tmp_path / "variables" / "data").write_bytes(b"x" * (c.MIN_CHUNK_SIZE * 2 + 5))
    (tmp_path / "saved_model.pb").write_bytes(b"pb")
    sig = mf.from_dict(valid()).signature
    m = mf.build(
        tmp_path,
        name="m",
        version="1",
        runtime="tensorflow",
        precision="exact",
        signature=sig,
        chunk_size=c.MIN_CHUNK_SIZE,
    )
    m.write(tmp_path)
    again = mf.read(tmp_path)
    assert again == m
    data = again.files[1]
    assert data.path == "variables/data"
    assert [ch.size for ch in data.chunks] == [c.MIN_CHUNK_SIZE, c.MIN_CHUNK_SIZE, 5]
    assert mf.verify_dir(tmp_path, again) == []
    (tmp_path / "saved_model.pb").write_bytes(b"pB")
    assert mf.verify_dir(tmp_path, again) == ["saved_model.pb"]


def test_validation_does_not_mutate_its_input() -> None:
    d = valid()
    before = copy.deepcopy(d)
    mf.from_dict(d)
    assert d == before
    assert orjson.dumps(d) == orjson.dumps(before)
