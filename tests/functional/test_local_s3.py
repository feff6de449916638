"""The local S3 run as a child process, as the bench runs it (threaded: tests/fixtures/s3.py)."""

from __future__ import annotations

import pytest

from preheat.exceptions import ToolProcessError
from preheat.tools.local.s3 import S3Process


def test_the_local_s3_process_is_started_stopped_and_reached_over_http() -> None:
    with S3Process() as s3:
        client = s3.client()
        client.create_bucket(Bucket="local-s3-process")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["local-s3-process"]
        assert s3.env()["AWS_ENDPOINT_URL_S3"] == s3.endpoint_url


def test_a_server_that_cannot_start_fails_with_one_line() -> None:
    class Refusing:
        address = "127.0.0.1"

        def popen(self, argv: list[str], **kw: object) -> object:
            import subprocess
            import sys

            return subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])

    with pytest.raises(ToolProcessError) as err, S3Process(Refusing()):  # type: ignore[arg-type]
        pass
    assert err.value.returncode == 7
    assert str(err.value) == "the S3 server failed (exit code 7): it exited at start"
