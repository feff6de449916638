"""The tiered cache against a real moto S3 server over HTTP, in this process."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from preheat.artifact import manifest as mf
from preheat.cache import resolve
from preheat.cache.s3 import blob_key
from preheat.exceptions import (
    ArtifactNotFound,
    CacheFullError,
    FetchError,
    IntegrityError,
    ManifestError,
)
from preheat.settings import Settings
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push, set_alias

MB = 1024 * 1024
SIZES = {"saved_model.pb": 300_000, "variables/variables.data-00000-of-00001": 3 * MB + 123}


class Counter:
    """Counts the requests a boto3 client sends, by operation (a botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-send.s3", self._on_send)

    def _on_send(self, request: Any, **_: Any) -> None:
        self.calls.append(request.method)

    @property
    def gets(self) -> int:
        return self.calls.count("GET")


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "cache_dir": tmp_path / "cache",
        "local_paths": (),
        "fetch_retries": 1,
        "fetch_timeout_s": 2.0,
    }
    return Settings(**{**base, **kw})


def bucket_of(uri: str) -> str:
    return uri.split("/")[2]


def versions_on_disk(s: Settings) -> list[str]:
    d = s.cache_dir / "versions"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def leftovers(s: Settings) -> list[str]:
    d = s.cache_dir / "tmp"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture
def own_server(s3_server_factory: Callable[[], S3Server]) -> S3Server:
    return s3_server_factory()


@pytest.fixture
def pushed(own_server: S3Server, artifact: Callable[..., Path]) -> tuple[S3Server, str, Path]:
    client = own_server.client()
    # moto keeps one state per process, across servers: a bucket of this test's own.
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    src = artifact(7, SIZES, name="m", version="1")
    result = push(src, f"s3://{bucket}/team", name="m", version="1", s3_client=client)
    return own_server, result.uri, src


def test_first_from_s3_then_from_disk_without_any_s3_call(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, _ = pushed
    s = settings_for(tmp_path)
    client = server.client()
    first = resolve(uri, s, s3_client=client)
    total = sum(SIZES.values())
    assert first.tier == "s3" and first.bytes_by_tier == {"s3": total}
    assert first.version_uri == uri and not first.stale
    assert mf.verify_dir(first.directory, first.manifest) == []
    assert first.directory.is_relative_to(s.cache_dir)
    assert leftovers(s) == []

    server.stop()
    counter = Counter(client)
    second = resolve(uri, s, s3_client=client)
    assert second.tier == "disk" and second.bytes_by_tier == {"disk": total}
    assert second.directory == first.directory
    assert counter.calls == []


def test_a_file_corrupted_on_disk_is_fetched_again_alone(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, _ = pushed
    s = settings_for(tmp_path)
    client = server.client()
    first = resolve(uri, s, s3_client=client)
    victim = first.directory / "variables/variables.data-00000-of-00001"
    with victim.open("r+b") as fh:
        fh.seek(MB + 5)
        fh.write(b"\xffbitrot\xff")
    counter = Counter(client)
    again = resolve(uri, s, s3_client=client)
    size = SIZES["variables/variables.data-00000-of-00001"]
    assert again.tier == "s3"
    assert again.bytes_by_tier == {"disk": SIZES["saved_model.pb"], "s3": size}
    assert counter.gets == 4  # the file's four chunks, nothing else
    assert mf.verify_dir(again.directory, again.manifest) == []
    assert resolve(uri, s, s3_client=client).tier == "disk"


def test_a_chunk_corrupted_in_s3_fails_naming_the_file_and_leaves_nothing(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, src = pushed
    client = server.client()
    manifest = mf.read(src)
    entry = next(f for f in manifest.files if f.path.startswith("variables/"))
    bad = entry.chunks[2]
    client.put_object(Bucket=bucket_of(uri), Key=blob_key("team", bad.sha256), Body=b"x" * bad.size)
    s = settings_for(tmp_path, fetch_retries=2)
    counter = Counter(client)
    with pytest.raises(IntegrityError) as info:
        resolve(uri, s, s3_client=client)
    message = str(info.value)
    assert entry.path in message and "chunk 3/4" in message and "after 3 attempts" in message
    # Retried alone: three GETs of the bad chunk, at most one of each other chunk.
    assert counter.gets <= 3 + sum(len(f.chunks) for f in manifest.files)
    assert versions_on_disk(s) == [] and leftovers(s) == []


def test_a_missing_version_or_bucket_is_not_found(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, _ = pushed
    s = settings_for(tmp_path)
    with pytest.raises(ArtifactNotFound, match="models/m/2"):
        resolve(uri.replace("/m/1", "/m/2"), s, s3_client=server.client())
    with pytest.raises(ArtifactNotFound, match="nobucket"):
        resolve("s3://nobucket/models/m/1", s, s3_client=server.client())
    assert versions_on_disk(s) == []


def test_unreachable_s3_is_a_fetch_error_naming_the_object(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, _ = pushed
    client = server.client()
    server.stop()
    with pytest.raises(FetchError) as info:
        resolve(uri, settings_for(tmp_path), s3_client=client)
    assert "team/models/m/1/manifest.json" in str(info.value)
    assert info.value.attempts == 2


def test_a_manifest_path_outside_the_artifact_is_refused_before_any_byte_is_written(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, src = pushed
    client = server.client()
    evil = orjson.loads((src / "manifest.json").read_bytes())
    evil["version"] = "evil"
    evil["files"][0]["path"] = "../../escaped"
    client.put_object(
        Bucket=bucket_of(uri), Key="team/models/m/evil/manifest.json", Body=orjson.dumps(evil)
    )
    s = settings_for(tmp_path)
    with pytest.raises(ManifestError, match="escapes"):
        resolve(uri.replace("/m/1", "/m/evil"), s, s3_client=client)
    assert versions_on_disk(s) == [] and leftovers(s) == []
    assert not list(tmp_path.rglob("escaped"))


def test_no_room_is_cache_full_and_nothing_is_written(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, _ = pushed
    s = settings_for(tmp_path, cache_max_bytes=MB)
    with pytest.raises(CacheFullError, match="PREHEAT_CACHE_MAX_BYTES"):
        resolve(uri, s, s3_client=server.client())
    assert versions_on_disk(s) == [] and leftovers(s) == []


def test_stale_version_is_served_only_when_allowed(
    pushed: tuple[S3Server, str, Path], tmp_path: Path, artifact: Callable[..., Path]
) -> None:
    server, uri, _ = pushed
    client = server.client()
    v2 = artifact(8, SIZES, name="m", version="2")
    uri2 = push(v2, f"s3://{bucket_of(uri)}/team", name="m", version="2", s3_client=client).uri
    s = settings_for(tmp_path)
    resolve(uri, s, s3_client=client)
    server.stop()
    with pytest.raises(FetchError):
        resolve(uri2, s, s3_client=client)
    stale = resolve(uri2, s.with_(allow_stale=True), s3_client=client)
    assert stale.stale and stale.tier == "disk" and stale.version_uri == uri
    assert stale.manifest.version == "1"


def test_an_alias_resolves_to_its_version(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, _ = pushed
    client = server.client()
    dest = f"s3://{bucket_of(uri)}/team"
    alias_uri = set_alias(dest, "m", "prod", "1", s3_client=client)
    assert alias_uri == f"{dest}/models/m@prod"
    res = resolve(alias_uri, settings_for(tmp_path), s3_client=client)
    assert res.version_uri == uri and res.manifest.version == "1"
    with pytest.raises(ArtifactNotFound):
        set_alias(dest, "m", "prod", "9", s3_client=client)


def test_a_read_only_local_copy_is_served_before_disk_and_s3(
    pushed: tuple[S3Server, str, Path], tmp_path: Path
) -> None:
    server, uri, src = pushed
    layer = tmp_path / "opt"
    shutil.copytree(src, layer / "m" / "1")
    client = server.client()
    counter = Counter(client)
    res = resolve(uri, settings_for(tmp_path, local_paths=(layer,)), s3_client=client)
    assert res.tier == "local" and res.directory == layer / "m" / "1"
    assert res.bytes_by_tier == {"local": sum(SIZES.values())}
    assert counter.calls == []
    # A damaged local copy is skipped, not trusted.
    (layer / "m" / "1" / "saved_model.pb").write_bytes(b"short")
    fallback = resolve(uri, settings_for(tmp_path, local_paths=(layer,)), s3_client=client)
    assert fallback.tier == "s3"


def test_a_local_directory_uri_is_served_after_validation(
    artifact: Callable[..., Path], tmp_path: Path
) -> None:
    src = artifact(3, {"saved_model.pb": 1000})
    res = resolve(str(src), settings_for(tmp_path))
    assert res.tier == "local" and res.directory == src.resolve()
    (src / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(ManifestError, match=r"saved_model\.pb is 1 bytes"):
        resolve(str(src), settings_for(tmp_path))
    with pytest.raises(ArtifactNotFound):
        resolve(str(tmp_path / "nothing-here"), settings_for(tmp_path))
