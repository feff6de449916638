"""Pieces of the S3 fetch that need no server: completion, stall watch, error classes."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from preheat.artifact import manifest as mf
from preheat.cache.retry import Retryable
from preheat.cache.s3 import StallWatch, _advance_hash, _classify, _Missing, _open_part, blob_key


def test_a_file_is_hashed_whole_and_done_once_whatever_order_its_chunks_land(
    tmp_path: Path,
) -> None:
    rng = random.Random(3)
    blocks = [rng.randbytes(rng.randint(1, 300)) for _ in range(64)]
    whole = b"".join(blocks)
    entry = mf.FileEntry(
        "f.bin",
        len(whole),
        hashlib.sha256(whole).hexdigest(),
        tuple(mf.Chunk(hashlib.sha256(b).hexdigest(), len(b)) for b in blocks),
    )
    job = _open_part(entry, tmp_path)
    order = list(range(64))
    rng.shuffle(order)
    done: list[bool] = []
    lock = threading.Lock()

    def worker(indexes: list[int]) -> None:
        for i in indexes:
            os.pwrite(job.fd, blocks[i], job.offsets[i])
            result = _advance_hash(job, i, blocks[i])
            with lock:
                done.append(result)

    threads = [threading.Thread(target=worker, args=(order[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.close(job.fd)
    assert len(done) == 64 and done.count(True) == 1
    assert job.hasher.hexdigest() == entry.sha256


def client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


def test_errors_are_classified_for_retrying() -> None:
    assert isinstance(_classify(client_error("NoSuchKey", 404)), _Missing)
    assert isinstance(_classify(client_error("NoSuchBucket", 404)), _Missing)
    assert isinstance(_classify(client_error("SlowDown", 503)), Retryable)
    assert isinstance(_classify(client_error("InternalError", 500)), Retryable)
    assert isinstance(_classify(EndpointConnectionError(endpoint_url="http://x")), Retryable)
    denied = client_error("AccessDenied", 403)
    assert _classify(denied) is denied
    no_creds = NoCredentialsError()
    assert _classify(no_creds) is no_creds


def test_blob_keys_sit_under_the_prefix() -> None:
    assert blob_key("team/ml", "ab" * 32) == f"team/ml/blobs/sha256/{'ab' * 32}"
    assert blob_key("", "ab" * 32) == f"blobs/sha256/{'ab' * 32}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_stall_watch_allows_retries_only_while_there_is_time_before_the_limit() -> None:
    clock = FakeClock()
    watch = StallWatch(attempt_s=5.0, limit_s=8.0, clock=clock)
    assert watch.give_up(0.1) is None  # a retry now ends at 5.1 s idle
    clock.now += 3.0
    reason = watch.give_up(0.1)  # it would end at 8.1 s without progress
    assert reason is not None and "no progress for 3.0 s" in reason
    watch.progress()  # a chunk arrived: retrying is worth it again
    assert watch.give_up(0.1) is None
