"""The inference function's INIT in a fresh process while S3 misbehaves behind the fault proxy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from preheat import constants as c
from preheat.tools import coldstart
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push
from tests.fixtures.models import BuiltModel
from tests.reliability.conftest import BUCKET, PREFIX, env_for
from tests.reliability.faultproxy import FaultProxy, Rule

pytestmark = pytest.mark.slow

X = [[0.25, -1.5, 2.0, 0.75]]


def _env(proxy: FaultProxy, moto: S3Server, uri: str, cache: Path, **extra: str) -> dict[str, str]:
    return env_for(
        proxy,
        moto,
        PREHEAT_MODEL_URI=uri,
        PREHEAT_CACHE_DIR=str(cache),
        PREHEAT_LOCAL_PATHS="",
        PREHEAT_FETCH_TIMEOUT="0.5",
        PREHEAT_FETCH_RETRIES="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        **extra,
    )


@pytest.fixture(scope="module")
def dense_versions(moto: S3Server, dense_model: BuiltModel) -> dict[str, str]:
    client = moto.client()
    return {
        v: push(
            dense_model.path,
            f"s3://{BUCKET}/{PREFIX}",
            name="dense-init",
            version=v,
            s3_client=client,
        ).uri
        for v in ("1", "2")
    }


def test_s3_broken_for_good_fails_init_naming_chunk_and_cause(
    proxy: FaultProxy, moto: S3Server, dense_versions: dict[str, str], tmp_path: Path
) -> None:
    proxy.add(Rule("slowdown", "/blobs/sha256/", times=None))
    run = coldstart.run([{"inputs": {"x": X}}], _env(proxy, moto, dense_versions["1"], tmp_path))

    err = run.init_error
    assert err is not None, run.stdout[-2000:]
    assert err["type"] == "FetchError"
    assert "chunk 1/1" in err["message"] and "503 SlowDown" in err["message"]
    assert "/blobs/sha256/" in err["message"]
    failed = [ln for ln in run.log_lines() if ln.get("message") == "preheat init failed"]
    assert failed and failed[0]["error"]["message"] == err["message"]
    assert not any((tmp_path / "versions").glob("*"))


def test_stale_version_served_with_a_log_line_and_a_metric(
    proxy: FaultProxy,
    moto: S3Server,
    dense_versions: dict[str, str],
    dense_model: BuiltModel,
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    first = coldstart.run([], _env(proxy, moto, dense_versions["1"], cache))
    assert first.init_error is None and first.init_report["stale"] is False

    proxy.add(Rule("internal", "/", times=None))  # S3 down: manifests and chunks alike
    run = coldstart.run(
        [{"inputs": {"x": X}}],
        _env(proxy, moto, dense_versions["2"], cache, PREHEAT_ALLOW_STALE="1"),
    )

    assert run.init_error is None, run.init_error
    assert run.init_report["stale"] is True
    lines = run.log_lines()
    init = next(ln for ln in lines if ln.get("message") == "preheat init")
    assert init["init"]["stale"] is True
    metrics: list[dict[str, Any]] = [ln for ln in lines if "_aws" in ln]
    assert any(
        m.get("InitStaleVersion") == 1.0 or m.get("InitStaleVersion") == [1.0] for m in metrics
    ), metrics
    assert "stale" in run.stderr + run.stdout
    # The stale version still answers correctly.
    expected = dense_model.reference({"x": np.asarray(X, dtype="float32")})["output_0"]
    got = run.results[0]["outputs"]["output_0"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert os.environ.get(c.ENV_ALLOW_STALE) is None  # the test did not leak the setting
