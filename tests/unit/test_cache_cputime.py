"""The fetch's CPU meter: a background thread's work is counted, the main thread's is not."""

from __future__ import annotations

import hashlib
import threading
import time

from preheat.cache.cputime import CpuMeter


def _burn(seconds: float) -> None:
    data = b"x" * (1 << 20)
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(data).digest()


def test_a_meter_in_a_thread_counts_that_thread_and_not_the_main_one() -> None:
    seen: list[float | None] = []

    def fetch() -> None:
        meter = CpuMeter()
        _burn(0.3)
        # A pool thread that ends before the reading is still counted.
        helper = threading.Thread(target=_burn, args=(0.2,))
        helper.start()
        helper.join()
        seen.append(meter.seconds())

    worker = threading.Thread(target=fetch)
    worker.start()
    _burn(0.4)  # the main thread's own work beside it ("the import")
    worker.join()
    (spent,) = seen
    assert spent is not None
    assert 0.45 <= spent <= 0.7, spent


def test_on_the_main_thread_the_whole_process_is_the_fetch() -> None:
    meter = CpuMeter()
    _burn(0.2)
    spent = meter.seconds()
    assert spent is not None and 0.18 <= spent <= 0.4, spent
