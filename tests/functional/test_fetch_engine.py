"""The obstore fetch engine against real HTTP servers: moto, and one that records what it gets."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from preheat.cache import client as engines
from preheat.cache.engine import Missing
from preheat.cache.engine_botocore import BotocoreEngine
from preheat.cache.engine_obstore import ObstoreEngine, Refused
from preheat.cache.retry import Retryable
from preheat.cache.s3env import target_from
from preheat.settings import Settings
from preheat.tools.local.s3 import S3Server
from preheat.tools.push import push

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """An HTTP server answering every request with one fixed S3 answer, keeping each request."""

    def __init__(self, status: int, code: str) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                recorder.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                body = f"<Error><Code>{code}</Code><Message>m</Message></Error>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder_factory() -> Iterator[type[Recorder]]:
    made: list[Recorder] = []

    class Made(Recorder):
        def __init__(self, status: int, code: str) -> None:
            super().__init__(status, code)
            made.append(self)

    yield Made
    for r in made:
        r.close()


def engine_for(env: dict[str, str], timeout_s: float = 2.0) -> ObstoreEngine:
    return ObstoreEngine(target_from(env), timeout_s)


def test_gets_an_object_from_the_endpoint_boto3_would_use(s3_server: S3Server, bucket: str) -> None:
    s3_server.client().put_object(Bucket=bucket, Key="p/blob", Body=b"x" * 3_000_000)
    env = s3_server.env()
    # The service's own variable beats the general one, as in boto3.
    both = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    data = engine_for(both).get(bucket, "p/blob")
    assert data.nbytes == 3_000_000 and bytes(data[:3]) == b"xxx"
    general = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL_S3"}
    general["AWS_ENDPOINT_URL"] = s3_server.endpoint_url
    assert engine_for(general).get(bucket, "p/blob").nbytes == 3_000_000


def test_missing_key_and_missing_bucket_are_missing(s3_server: S3Server, bucket: str) -> None:
    engine = engine_for(s3_server.env())
    with pytest.raises(Missing, match="NoSuchKey"):
        engine.get(bucket, "nothing/here")
    with pytest.raises(Missing, match="NoSuchBucket"):
        engine.get("no-such-bucket-anywhere", "k")


def test_signs_with_lambdas_keys_token_and_region_path_style(
    recorder_factory: type[Recorder],
) -> None:
    server = recorder_factory(404, "NoSuchKey")
    env = {
        "AWS_ENDPOINT_URL_S3": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "AKIDLAMBDA",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "the-session-token",
        "AWS_REGION": "eu-west-3",
        "AWS_DEFAULT_REGION": "eu-west-3",
    }
    with pytest.raises(Missing):
        engine_for(env).get("models", "team/blobs/sha256/abc")
    path, headers = server.requests[0]
    assert path == "/models/team/blobs/sha256/abc"
    assert headers["x-amz-security-token"] == "the-session-token"
    assert "Credential=AKIDLAMBDA/" in headers["authorization"]
    assert "/eu-west-3/s3/aws4_request" in headers["authorization"]


@pytest.mark.parametrize(
    ("status", "code", "kind", "cause"),
    [
        (503, "SlowDown", Retryable, "S3 answered 503 SlowDown"),
        (500, "InternalError", Retryable, "S3 answered 500 InternalError"),
        (429, "TooManyRequests", Retryable, "S3 answered 429"),
        (403, "AccessDenied", Refused, "S3 answered 403 AccessDenied"),
        (400, "AuthorizationHeaderMalformed", Refused, "S3 answered 400"),
    ],
)
def test_error_answers_map_to_retry_or_not_with_one_line_causes(
    recorder_factory: type[Recorder], status: int, code: str, kind: type[Exception], cause: str
) -> None:
    server = recorder_factory(status, code)
    env = {"AWS_ENDPOINT_URL_S3": server.endpoint_url, "AWS_ACCESS_KEY_ID": "a"}
    env["AWS_SECRET_ACCESS_KEY"] = "b"
    with pytest.raises(kind) as info:
        engine_for(env).get("models", "k")
    assert cause in str(info.value) and "\n" not in str(info.value)
    assert len(server.requests) == 1, "the engine itself never retries"


def test_unreachable_s3_is_retryable() -> None:
    server = S3Server().start()
    env = server.env()
    server.stop()
    with pytest.raises(Retryable):
        engine_for(env).get("models", "k")


def test_the_setting_picks_the_engine_and_the_process_keeps_one_until_forget() -> None:
    assert isinstance(engines.make_client(Settings(fetch_engine="botocore")), BotocoreEngine)
    assert isinstance(engines.make_client(Settings(fetch_engine="obstore")), ObstoreEngine)
    settings = Settings()
    first = engines.default_client(settings)
    assert isinstance(first, ObstoreEngine)
    assert engines.default_client(settings) is first
    engines.forget()
    assert engines.default_client(settings) is not first


def _child(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_obstore_auto_falls_back_to_botocore_saying_so_once() -> None:
    code = """
import logging, sys
sys.modules["obstore"] = None  # what an environment without the package looks like
logging.basicConfig(level=logging.INFO, format="%(message)s")
from preheat.cache.client import default_client
from preheat.settings import Settings
print(type(default_client(Settings())).__name__)
print(type(default_client(Settings())).__name__)
"""
    proc = _child(code, {})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["BotocoreEngine", "BotocoreEngine"]
    said = [line for line in proc.stderr.splitlines() if "obstore is not installed" in line]
    assert len(said) == 1, proc.stderr
    assert "PREHEAT_FETCH_ENGINE" in said[0]


def test_a_fetch_with_obstore_never_imports_boto3(
    s3_server: S3Server, bucket: str, tmp_path: Path, artifact: Callable[..., Path]
) -> None:
    src = artifact(7, {"saved_model.pb": 2_500_000, "variables/data": 1_200_000})
    uri = push(src, f"s3://{bucket}/p", name="m", version="1", s3_client=s3_server.client()).uri
    code = f"""
import sys
from preheat.cache import resolve
from preheat.settings import Settings
res = resolve({uri!r}, Settings.from_env(env={{}}, cache_dir={str(tmp_path / "cache")!r}, local_paths=()))
print(res.tier, "boto3" in sys.modules, "botocore" in sys.modules)
"""
    proc = _child(code, s3_server.env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["s3", "False", "False"]
