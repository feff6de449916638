"""Fixtures only the reliability tests use: moto behind a fault proxy, and pushed artifacts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from preheat import constants as c
from preheat.artifact.manifest import Manifest
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from tests.fixtures.s3 import write_artifact
from tests.reliability.faultproxy import FaultProxy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "reliability"
PREFIX = "team/ml"
# Chunks as small as the format allows, so that a few MiB make several chunks per file.
CHUNK = c.MIN_CHUNK_SIZE


@dataclass(frozen=True)
class Pushed:
    """An artifact in S3: where it is, its manifest, and the chunk keys it is made of."""

    uri: str
    manifest: Manifest
    source: Path

    def chunk_key(self, path: str, index: int) -> str:
        entry = next(f for f in self.manifest.files if f.path == path)
        return f"{PREFIX}/blobs/sha256/{entry.chunks[index].sha256}"

    @property
    def chunk_keys(self) -> list[str]:
        return [
            f"{PREFIX}/blobs/sha256/{ch.sha256}" for f in self.manifest.files for ch in f.chunks
        ]


def upload(client: S3Client, directory: Path, name: str, version: str) -> Pushed:
    """Push an artifact directory with preheat's own push; chunks already there are skipped."""
    result = push(
        directory, f"s3://{BUCKET}/{PREFIX}", name=name, version=version, s3_client=client
    )
    return Pushed(result.uri, result.manifest, directory)


def make_blob_artifact(directory: Path, seed: int, sizes: dict[str, int]) -> Path:
    """Random files of the given sizes: an artifact whose bytes matter only for their hashes."""
    rng = np.random.default_rng(seed)
    for rel, size in sizes.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.bytes(size))
    return directory


def build_manifest(directory: Path, name: str, version: str) -> Manifest:
    """Write the artifact's manifest.json (small chunks) and return it."""
    return write_artifact(directory, {}, name=name, version=version, chunk_size=CHUNK)


@pytest.fixture(scope="session")
def moto() -> Iterator[S3Server]:
    server = S3Server().start()
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def direct(moto: S3Server) -> S3Client:
    """A client straight to moto, for setting up what the code under test will read."""
    return moto.client()


@pytest.fixture
def proxy(moto: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fresh fault proxy in front of moto; boto3 in this process and its children uses it."""
    with FaultProxy(moto.endpoint_url) as p:
        for k, v in moto.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", p.endpoint_url)
        yield p


@pytest.fixture(scope="session")
def blob_v1(tmp_path_factory: pytest.TempPathFactory, direct: S3Client) -> Pushed:
    """Version 1 of `blobs`: 3.5 MiB in four 1 MiB chunks plus two single-chunk files."""
    d = make_blob_artifact(
        tmp_path_factory.mktemp("blob") / "v1",
        1,
        {"variables/data": 3 * CHUNK + CHUNK // 2, "saved_model.pb": 5000, "assets/vocab": 300},
    )
    build_manifest(d, "blobs", "1")
    return upload(direct, d, "blobs", "1")


@pytest.fixture(scope="session")
def blob_v2(tmp_path_factory: pytest.TempPathFactory, direct: S3Client) -> Pushed:
    d = make_blob_artifact(
        tmp_path_factory.mktemp("blob") / "v2",
        2,
        {"variables/data": 2 * CHUNK + 100, "saved_model.pb": 6000},
    )
    build_manifest(d, "blobs", "2")
    return upload(direct, d, "blobs", "2")


def cache_files(root: Path) -> list[str]:
    """Every path under a cache directory, relative, for "nothing was written" checks."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def version_dirs(root: Path) -> list[Path]:
    versions = root / "versions"
    return sorted(p for p in versions.iterdir()) if versions.is_dir() else []


def env_for(proxy: FaultProxy, moto: S3Server, **extra: str) -> dict[str, str]:
    """A child process's environment: this one's, boto3 aimed at the proxy, and `extra`."""
    env = dict(os.environ)
    env.update(moto.env())
    env["AWS_ENDPOINT_URL_S3"] = proxy.endpoint_url
    env.update(extra)
    return env
