"""The fetch `import preheat` starts, in fresh processes as Lambda runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from preheat.tools.push import push

CHILD = r"""
import sys, threading, orjson
import preheat
started = [t.name for t in threading.enumerate() if t.name == "preheat-prefetch"]
heavy = sorted(m for m in ("tensorflow", "keras", "numpy") if m in sys.modules)
out = {"started": bool(started), "heavy": heavy}
if started:
    from preheat.cache import prefetch
    from preheat.settings import Settings
    s = Settings.from_env()
    future = prefetch.take(s.model_uri, s)
    try:
        res = future.result(timeout=60)
        out.update(tier=res.tier, version_uri=res.version_uri, files=len(res.manifest.files))
    except Exception as exc:
        out.update(error=type(exc).__name__, message=str(exc))
else:
    out["resolver_loaded"] = "preheat.cache.resolver" in sys.modules
print(orjson.dumps(out).decode())
"""


def run_child(env: dict[str, str]) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREHEAT_")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # nothing printed by the background thread
    out: dict[str, Any] = orjson.loads(proc.stdout)
    return out


def test_import_starts_the_fetch_without_importing_the_runtime(
    s3_env: dict[str, str], s3_client: Any, artifact: Callable[..., Path], tmp_path: Path
) -> None:
    bucket = f"prefetch-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    src = artifact(1, {"saved_model.pb": 2_000_000})
    uri = push(src, f"s3://{bucket}/p", name="m", version="1", s3_client=s3_client).uri
    env = {
        **s3_env,
        "PREHEAT_MODEL_URI": uri,
        "PREHEAT_CACHE_DIR": str(tmp_path / "cache"),
        "PREHEAT_LOCAL_PATHS": "",
    }
    out = run_child(env)
    assert out["started"] and out["heavy"] == []
    assert out["tier"] == "s3" and out["version_uri"] == uri and out["files"] == 1
    assert run_child(env)["tier"] == "disk"


def test_a_failing_prefetch_raises_where_it_is_taken_and_prints_nothing(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    out = run_child(
        {
            **s3_env,
            "PREHEAT_MODEL_URI": f"s3://absent-{uuid.uuid4().hex[:8]}/models/m/1",
            "PREHEAT_CACHE_DIR": str(tmp_path / "cache"),
            "PREHEAT_LOCAL_PATHS": "",
        }
    )
    assert out["started"] and out["error"] == "ArtifactNotFound"
    assert "models/m/1" in out["message"]


def test_without_a_model_uri_import_starts_nothing_and_loads_no_cache_code() -> None:
    out = run_child({})
    assert out == {"started": False, "heavy": [], "resolver_loaded": False}
