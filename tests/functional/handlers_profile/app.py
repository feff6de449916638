"""A handler with ordinary imports, to profile: nothing in it knows about preheat."""

import decimal
import email.mime.text
import json
from typing import Any

import helper


def handler(event: dict[str, Any], context: Any) -> Any:
    body = email.mime.text.MIMEText(json.dumps(event)).get_payload()
    return {"body": body, "total": str(decimal.Decimal("1.10") * 3), "pretty": helper.pretty()}
