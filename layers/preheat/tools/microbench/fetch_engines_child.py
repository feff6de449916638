"""One measurement of one fetch engine in a fresh process, printed as one JSON line.

The engine comparison (microbench.fetch_engines) runs this once per cell, pinned to one core:

    fetch_engines_child import  ENGINE          the engine package's import time
    fetch_engines_child fetch   ENGINE URI DIR  resolve URI into an empty cache: wall, CPU seconds
    fetch_engines_child overlap ENGINE URI DIR  the same fetch in a thread while the main thread
                                             imports tensorflow (ENGINE "none": import alone)

Every engine runs preheat's own fetch (chunk checks, retries, pwrite, whole-file hash); only
the client that GETs the chunks differs. awscrt's engine lives here: it is measured, not shipped.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from preheat.cache.engine import Engine

ENGINES = ("botocore", "obstore", "awscrt")
# The package each engine imports before its first request.
PACKAGES = {"botocore": "boto3", "obstore": "obstore", "awscrt": "awscrt.s3"}
CONCURRENCY = 16


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class CrtEngine(Engine):
    """GETs through awscrt's S3 client: native transfers, the body handed to Python in parts."""

    name = "awscrt"

    def __init__(self, timeout_s: float) -> None:
        from urllib.parse import urlsplit

        from awscrt import auth, io, s3

        from preheat.cache.s3env import target_from

        self._s3 = s3
        self.timeout_s = timeout_s
        target = target_from(os.environ)
        assert target.endpoint is not None, "the comparison runs against a local S3"
        parts = urlsplit(target.endpoint)
        self._host = parts.netloc
        elg = io.EventLoopGroup()
        bootstrap = io.ClientBootstrap(elg, io.DefaultHostResolver(elg))
        creds = target.credentials
        provider = (
            auth.AwsCredentialsProvider.new_static(
                creds.access_key_id, creds.secret_access_key, creds.session_token
            )
            if creds is not None
            else auth.AwsCredentialsProvider.new_default_chain(bootstrap)
        )
        self._client = s3.S3Client(
            bootstrap=bootstrap,
            region=target.region,
            tls_mode=s3.S3RequestTlsMode.DISABLED
            if parts.scheme == "http"
            else s3.S3RequestTlsMode.ENABLED,
            signing_config=s3.create_default_s3_signing_config(
                region=target.region, credential_provider=provider
            ),
            # Whole chunks in one request each, as the other engines fetch them.
            part_size=64 * 1024 * 1024,
            retry_config=s3.S3RetryConfig(max_retries=0),
            connect_timeout_ms=int(timeout_s * 1000),
        )

    def get(self, bucket: str, key: str) -> memoryview:
        from awscrt.http import HttpHeaders, HttpRequest

        from preheat.cache.engine import Missing
        from preheat.cache.retry import Retryable

        body = bytearray()
        status: list[int] = []

        def on_body(chunk: Any, offset: int, **_: Any) -> None:
            end = offset + len(chunk)
            if len(body) < end:
                body.extend(b"\0" * (end - len(body)))
            body[offset:end] = chunk

        def on_done(error: Any = None, status_code: Any = None, **_: Any) -> None:
            status.append(int(status_code or 0))

        request = HttpRequest("GET", f"/{bucket}/{key}", HttpHeaders([("Host", self._host)]))
        req = self._client.make_request(
            type=self._s3.S3RequestType.GET_OBJECT,
            request=request,
            on_body=on_body,
            on_done=on_done,
        )
        try:
            req.finished_future.result(timeout=self.timeout_s * 10)
        except Exception as exc:
            code = status[0] if status else 0
            if code == 404:
                raise Missing("404") from exc
            raise Retryable(f"awscrt: {code} {type(exc).__name__}: {exc}") from exc
        return memoryview(body)


def make_engine(name: str, timeout_s: float) -> Engine:
    from preheat.settings import Settings

    if name == "awscrt":
        return CrtEngine(timeout_s)
    from preheat.cache.client import make_client

    return make_client(Settings(fetch_engine=name, fetch_timeout_s=timeout_s))


def _fetch(name: str, uri: str, cache: Path) -> dict[str, Any]:
    from preheat.cache.resolver import resolve
    from preheat.settings import Settings

    settings = Settings(
        cache_dir=cache, local_paths=(), fetch_concurrency=CONCURRENCY, fetch_engine="auto"
    )
    cpu0, t0 = _cpu_s(), time.perf_counter()
    engine = make_engine(name, settings.fetch_timeout_s)
    res = resolve(uri, settings, s3_client=engine)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    assert res.tier == "s3", res.tier
    return {"fetch_s": wall, "cpu_s": cpu, "bytes": res.bytes_by_tier.get("s3", 0)}


def main(argv: list[str]) -> int:
    mode, name = argv[1], argv[2]
    if (core := os.environ.get("FETCH_BENCH_CORE")) is not None:
        os.sched_setaffinity(0, {int(core)})
    out: dict[str, Any] = {"mode": mode, "engine": name}
    if mode == "import":
        t0 = time.perf_counter()
        importlib.import_module(PACKAGES[name])
        out["import_s"] = time.perf_counter() - t0
    elif mode == "fetch":
        out.update(_fetch(name, argv[3], Path(argv[4])))
    elif mode == "overlap":
        fetched: dict[str, Any] = {}
        worker = None
        if name != "none":

            def run() -> None:
                fetched.update(_fetch(name, argv[3], Path(argv[4])))

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
        t0 = time.perf_counter()
        import tensorflow  # noqa: F401

        out["tf_import_s"] = time.perf_counter() - t0
        if worker is not None:
            worker.join()
            out.update(fetched)
    else:
        raise SystemExit(f"unknown mode {mode!r}; use import, fetch or overlap")
    print(orjson.dumps(out).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
