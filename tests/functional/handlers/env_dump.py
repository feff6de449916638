"""Answers with the environment it runs in: variables, cwd, sys.path, temp dir, /opt view."""

import os
import sys
import tempfile
from typing import Any

import gate


def handler(event: dict[str, Any], context: Any) -> Any:
    if "arrive" in event:
        gate.handler(event, context)
    opt = os.environ.get("PREHEAT_OPT_DIR", "")
    files = {}
    for rel in event.get("read", []):
        with open(os.path.join(opt, rel)) as f:
            files[rel] = f.read()
    return {
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "sys_path": sys.path,
        "tmp": tempfile.gettempdir(),
        "files": files,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "client_context": getattr(context.client_context, "custom", None),
    }
