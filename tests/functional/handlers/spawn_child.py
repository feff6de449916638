"""Starts a long-lived child process and answers with its pid."""

import subprocess
import sys
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    return {"child": child.pid}
