"""Starts a thread at INIT that counts every 10 ms into $TMPDIR/counter; answers with the count.

With COUNTER_SETSID set, INIT also starts a child in a session of its own (out of the
runtime's process group) that counts into $TMPDIR/child-counter.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

PATH = os.path.join(tempfile.gettempdir(), "counter")
_count = 0

_CHILD = """
import os, sys, time
n = 0
while True:
    n += 1
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(0.01)
"""


def _count_forever() -> None:
    global _count
    while True:
        _count += 1
        # Replaced whole, so a reader never sees a half-written number.
        with open(PATH + ".tmp", "w") as f:
            f.write(str(_count))
        os.replace(PATH + ".tmp", PATH)
        time.sleep(0.01)


threading.Thread(target=_count_forever, daemon=True).start()
_child = None
if os.environ.get("COUNTER_SETSID"):
    _child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, os.path.join(tempfile.gettempdir(), "child-counter")],
        start_new_session=True,
    )


def handler(event: dict[str, Any], context: Any) -> Any:
    if _child is not None:
        # Answer once the child counts, so that it is seen both running and frozen.
        child_path = os.path.join(tempfile.gettempdir(), "child-counter")
        deadline = time.monotonic() + 10
        while not os.path.exists(child_path) and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(float(event.get("hold", 0)))
    return {
        "count": _count,
        "pid": os.getpid(),
        "child": _child.pid if _child is not None else None,
        "path": PATH,
    }
