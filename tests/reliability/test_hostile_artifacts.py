"""Crafted manifests, artifact directories and layer zips: refused before any byte is written."""

from __future__ import annotations

import copy
import os
import stat
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.cache import resolve
from preheat.cache.client import make_client
from preheat.exceptions import ManifestError, PreheatError, UnsafePathError
from preheat.settings import Settings
from preheat.tools.layer import zipsafe
from tests.reliability.conftest import (
    BUCKET,
    PREFIX,
    Pushed,
    build_manifest,
    cache_files,
    make_blob_artifact,
)
from tests.reliability.faultproxy import FaultProxy

BAD_PATHS = [
    "..",
    "../escape",
    "a/../../escape",
    "/etc/passwd",
    "//server/share",
    "a//b",
    "./a",
    "a/.",
    "a\\..\\..\\b",
    "C:\\Windows\\x",
    "x\x00y",
    "",
    c.MANIFEST_NAME,
]

# ---------------------------------------------------------------------------- mutations


def _files(d: dict[str, Any]) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = d["files"]
    return files


def bad_path(d: dict[str, Any], path: str) -> None:
    _files(d)[0]["path"] = path


def duplicate(d: dict[str, Any], fold: bool) -> None:
    twin = copy.deepcopy(_files(d)[0])
    twin["path"] = twin["path"].upper() if fold else twin["path"]
    _files(d).append(twin)


def file_under_file(d: dict[str, Any]) -> None:
    twin = copy.deepcopy(_files(d)[0])
    twin["path"] = _files(d)[0]["path"] + "/inside"
    _files(d).append(twin)


def size_disagrees(d: dict[str, Any], delta: int) -> None:
    entry = next(f for f in _files(d) if f["chunks"])
    entry["size"] = max(0, entry["size"] + delta)


def chunk_oversized(d: dict[str, Any]) -> None:
    entry = next(f for f in _files(d) if f["chunks"])
    entry["chunks"][0]["size"] = d["chunk_size"] + 1


def enormous_chunks(d: dict[str, Any]) -> None:
    entry = _files(d)[0]
    one = {"sha256": "0" * 64, "size": 1}
    entry["chunks"] = [one] * (c.MAX_CHUNKS + 1)
    entry["size"] = c.MAX_CHUNKS + 1


def too_many_files(d: dict[str, Any]) -> None:
    d["files"] = [
        {"path": f"f{i}", "size": 0, "sha256": "0" * 64, "chunks": []}
        for i in range(c.MAX_FILES + 1)
    ]


def unknown_format(d: dict[str, Any], fmt: Any) -> None:
    d["format"] = fmt


MUTATIONS: dict[str, Any] = {
    **{f"path {p!r}": (bad_path, p) for p in BAD_PATHS},
    "duplicate path": (duplicate, False),
    "duplicate path differing in case": (duplicate, True),
    "file under a file": (file_under_file,),
    "size larger than its chunks": (size_disagrees, 1),
    "size smaller than its chunks": (size_disagrees, -1),
    "chunk larger than chunk_size": (chunk_oversized,),
    "chunk count over the limit": (enormous_chunks,),
    "file count over the limit": (too_many_files,),
    "format version 2": (unknown_format, "preheat.artifact/2"),
    "format missing": (unknown_format, None),
    "format of another tool": (unknown_format, "tfjs-graph-model"),
}


def mutated(pushed: Pushed, name: str, version: str) -> dict[str, Any]:
    d: dict[str, Any] = orjson.loads(pushed.manifest.to_json())
    d["version"] = version
    fn, *args = MUTATIONS[name]
    fn(d, *args)
    return d


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_crafted_manifest_refused_before_any_byte_is_written(
    mutation: str, proxy: FaultProxy, blob_v1: Pushed, direct: Any, tmp_path: Path
) -> None:
    version = f"evil{sorted(MUTATIONS).index(mutation)}"
    d = mutated(blob_v1, mutation, version)
    direct.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}/models/blobs/{version}/{c.MANIFEST_NAME}",
        Body=orjson.dumps(d),
    )
    cache = tmp_path / "cache"
    settings = Settings.from_env(env={}, cache_dir=cache, local_paths=())
    uri = blob_v1.uri.rsplit("/", 1)[0] + f"/{version}"

    with pytest.raises(ManifestError) as info:
        resolve(uri, settings, s3_client=make_client(settings))

    assert "\n" not in str(info.value)
    assert proxy.count("/blobs/sha256/") == 0, "a chunk was fetched for a refused manifest"
    written = [p for p in cache_files(cache) if not p.startswith(("locks", "meta"))]
    assert [p for p in written if "/" in p] == [], written  # no file in versions/ or tmp/
    assert not any(tmp_path.parent.glob("escape*"))


@settings(max_examples=200, deadline=None)
@given(path=st.text(alphabet=st.sampled_from("ab./\\:\x00~ "), max_size=12) | st.text(max_size=12))
def test_any_accepted_path_stays_inside_the_artifact(path: str) -> None:
    try:
        accepted = mf.safe_relpath(path)
    except UnsafePathError:
        return
    root = Path("/srv/artifact")
    # Resolved lexically (no file system): every accepted path lands strictly inside root.
    joined = Path(os.path.normpath(root / accepted))
    assert joined != root and root in joined.parents
    assert not PurePosixPath(accepted).is_absolute()
    assert accepted != c.MANIFEST_NAME


manifest_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(
        ["format", "files", "signature", "chunk_size", "runtime", "precision", "name", "parity"]
    ),
    value=manifest_values,
    index=st.integers(0, 2),
    field=st.sampled_from(["path", "size", "sha256", "chunks"]),
    nested=st.booleans(),
)
def test_any_malformed_manifest_is_a_manifest_error(
    key: str, value: Any, index: int, field: str, nested: bool
) -> None:
    d: dict[str, Any] = orjson.loads(_VALID)
    if nested:
        d["files"][index % len(d["files"])][field] = value
    else:
        d[key] = value
    try:
        m = mf.from_dict(d)
    except ManifestError:
        return
    # Accepted: then it must be as sound as a manifest preheat wrote itself.
    for f in m.files:
        mf.safe_relpath(f.path)
        assert f.size == sum(ch.size for ch in f.chunks) or not f.chunks
    assert m.format == c.ARTIFACT_FORMAT


def _valid_manifest_json() -> bytes:
    return mf.Manifest(
        name="m",
        version="1",
        runtime="tensorflow",
        precision="exact",
        files=(
            mf.FileEntry("a", 3, "a" * 64, (mf.Chunk("b" * 64, 3),)),
            mf.FileEntry("d/e", 0, "c" * 64, ()),
        ),
        signature=mf.Signature("serving_default", (mf.TensorSpec("x", "float32", (None, 4)),), ()),
        chunk_size=c.MIN_CHUNK_SIZE,
    ).to_json()


_VALID = _valid_manifest_json()


# ---------------------------------------------------------------------------- symlinks


def test_symlink_in_a_local_artifact_pointing_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"s" * 100)
    art = make_blob_artifact(tmp_path / "art", 3, {"saved_model.pb": 100, "variables/data": 50})
    manifest = build_manifest(art, "linky", "1")
    # Swap a listed file for a symlink of the same size to a file outside the artifact.
    (art / "saved_model.pb").unlink()
    (art / "saved_model.pb").symlink_to(outside)
    assert manifest.files[0].path == "saved_model.pb"
    settings = Settings.from_env(env={}, cache_dir=tmp_path / "cache", local_paths=())

    with pytest.raises(PreheatError, match=r"saved_model\.pb"):
        resolve(str(art), settings)


def test_symlink_in_an_artifact_is_refused_by_push(tmp_path: Path) -> None:
    art = make_blob_artifact(tmp_path / "art", 4, {"saved_model.pb": 100})
    (art / "variables").symlink_to("/etc")
    with pytest.raises(UnsafePathError, match="symlink"):
        build_manifest(art, "linky", "1")


# ---------------------------------------------------------------------------- layer zips


def _zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicates we write on purpose
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


REG = stat.S_IFREG | 0o644
LINK = stat.S_IFLNK | 0o777
EVIL_ENTRIES = {
    "dotdot": [("ok.txt", b"1", REG), ("../escape.txt", b"x", REG)],
    "nested dotdot": [("a/b/../../../escape.txt", b"x", REG)],
    "absolute": [("/tmp/escape.txt", b"x", REG)],
    "backslash": [("a\\..\\..\\escape.txt", b"x", REG)],
    "drive letter": [("C:/escape.txt", b"x", REG)],
    "symlink out": [("link", b"/etc/passwd", LINK), ("link/../../escape.txt", b"x", REG)],
    "symlink alone": [("python/link", b"../../..", LINK)],
    "fifo": [("pipe", b"", stat.S_IFIFO | 0o644)],
    "duplicate": [("a.txt", b"1", REG), ("a.txt", b"2", REG)],
    "case duplicate": [("python/A.py", b"1", REG), ("python/a.py", b"2", REG)],
    "file then dir": [("python", b"1", REG), ("python/x.py", b"2", REG)],
    "empty name": [("", b"1", REG)],
}


@pytest.mark.parametrize("case", sorted(EVIL_ENTRIES))
def test_layer_zip_escaping_its_root_is_refused_and_leaves_nothing(
    case: str, tmp_path: Path
) -> None:
    zpath = _zip(tmp_path / "layer.zip", EVIL_ENTRIES[case])
    dest = tmp_path / "out" / "opt"
    dest.parent.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(UnsafePathError):
        zipsafe.extract(zpath, dest)

    assert not dest.exists() or list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/escape.txt").exists()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(
        st.text(alphabet=st.sampled_from("ab./\\:"), min_size=1, max_size=10),
        min_size=1,
        max_size=4,
    )
)
def test_any_zip_extracts_inside_its_root_or_not_at_all(
    names: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("zip")
    zpath = _zip(base / "layer.zip", [(n, b"data", REG) for n in names])
    dest = base / "sandbox" / "opt"
    dest.parent.mkdir()
    try:
        written = zipsafe.extract(zpath, dest)
    except (UnsafePathError, zipfile.BadZipFile):
        assert not dest.exists() or list(dest.iterdir()) == []
        written = []
    root = dest.resolve()
    for p in written:
        assert root in p.resolve().parents
    outside = [p for p in base.rglob("*") if p != zpath and dest not in (p, *p.parents)]
    assert outside == [dest.parent] or outside == []


def test_file_hash_disagreeing_with_its_chunks_is_never_served(
    proxy: FaultProxy, blob_v1: Pushed, direct: Any, tmp_path: Path
) -> None:
    d: dict[str, Any] = orjson.loads(blob_v1.manifest.to_json())
    d["version"] = "lying-hash"
    d["files"][-1]["sha256"] = "0" * 64
    direct.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}/models/blobs/lying-hash/{c.MANIFEST_NAME}",
        Body=orjson.dumps(d),
    )
    settings = Settings.from_env(env={}, cache_dir=tmp_path / "cache", local_paths=())
    uri = blob_v1.uri.rsplit("/", 1)[0] + "/lying-hash"
    try:
        got = resolve(uri, settings, s3_client=make_client(settings))
    except PreheatError:
        return
    assert mf.verify_dir(got.directory, got.manifest) == []
