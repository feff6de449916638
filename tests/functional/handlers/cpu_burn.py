"""Burns CPU in two threads for a while and answers with the CPU time it got per wall second.

hashlib releases the GIL on large buffers, so two threads can use two cores at once:
unconfined on a 2-core machine the answer is about 2.0, and a CPU quota caps it. With
CPU_BURN_AT_INIT_S set, it burns at import too and reports that figure as `init_vcpus`.
"""

import hashlib
import os
import threading
import time
from typing import Any

_BLOCK = b"\0" * (1 << 20)


def _burn(until: float) -> None:
    h = hashlib.sha256()
    while time.perf_counter() < until:
        h.update(_BLOCK)


def measure(seconds: float, threads: int) -> float:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=_burn, args=(wall0 + seconds,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


INIT_VCPUS = (
    measure(float(os.environ["CPU_BURN_AT_INIT_S"]), 2)
    if os.environ.get("CPU_BURN_AT_INIT_S")
    else None
)


def handler(event: dict[str, Any], context: Any) -> Any:
    vcpus = measure(float(event.get("seconds", 2.0)), int(event.get("threads", 2)))
    return {
        "vcpus": vcpus,
        "init_vcpus": INIT_VCPUS,
        "cores": sorted(os.sched_getaffinity(0)),
    }
