"""Pieces of the S3 fetch that need no server: out-of-order hashing and error classes."""

from __future__ import annotations

import hashlib
import random
import threading
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from preheat.cache.retry import Retryable
from preheat.cache.s3 import StallWatch, _classify, _Missing, _OrderedHash, blob_key


def test_whole_file_hash_is_right_whatever_order_chunks_arrive_in() -> None:
    rng = random.Random(5)
    chunks = [rng.randbytes(rng.randrange(1, 5000)) for _ in range(40)]
    order = list(range(len(chunks)))
    rng.shuffle(order)
    hasher = _OrderedHash(len(chunks))
    finished = [hasher.add(i, chunks[i]) for i in order]
    assert finished.count(True) == 1 and finished[-1] is True
    assert hasher.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_whole_file_hash_from_many_threads_reports_completion_once() -> None:
    chunks = [bytes([i]) * 70_000 for i in range(64)]
    hasher = _OrderedHash(len(chunks))
    done: list[bool] = []
    lock = threading.Lock()

    def worker(indexes: list[int]) -> None:
        for i in indexes:
            result = hasher.add(i, chunks[i])
            with lock:
                done.append(result)

    order = list(range(64))
    random.Random(9).shuffle(order)
    threads = [threading.Thread(target=worker, args=(order[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done.count(True) == 1
    assert hasher.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


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
