"""Create or update a stack through a change set, waiting with bounded polling.

A failed stack operation is reported with the resource that failed and CloudFormation's
reason for it, read from the stack's events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from preheat.exceptions import DeployError
from preheat.tools.deploy.remote import aws_call

CAPABILITIES = ["CAPABILITY_IAM"]
# Phrases CloudFormation uses when a change set would change nothing.
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_GOOD = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}


@dataclass(frozen=True)
class Waiting:
    """How long to wait and how often to look; the clock and sleep are swappable for tests."""

    timeout_s: float = 1800.0
    interval_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass
class StackResult:
    action: str  # "create", "update" or "none"
    status: str
    changes: list[dict[str, str]] = field(default_factory=list)


def _poll(
    what: str,
    read: Callable[[], str],
    done: Callable[[str], bool],
    waiting: Waiting,
    say: Callable[[str], None],
) -> str:
    deadline = waiting.clock() + waiting.timeout_s
    while True:
        status = read()
        if done(status):
            return status
        say(f"{what}: {status}")
        if waiting.clock() >= deadline:
            raise DeployError(
                f"{what} is still {status} after {waiting.timeout_s:.0f} s; it continues in "
                "CloudFormation: check it there and deploy again once it settles",
                resource=what,
            )
        waiting.sleep(waiting.interval_s)


def failure_reasons(cf: Any, stack: str, since: datetime | None) -> list[str]:
    """Each failed resource with CloudFormation's reason, oldest first."""
    events = aws_call(
        f"reading events of stack {stack}", lambda: cf.describe_stack_events(StackName=stack)
    ).get("StackEvents", [])
    reasons: list[str] = []
    for e in reversed(events):
        if since is not None and e.get("Timestamp") is not None and e["Timestamp"] < since:
            continue
        if e.get("ResourceStatus", "").endswith("_FAILED") and e.get("LogicalResourceId") != stack:
            reasons.append(
                f"{e['LogicalResourceId']} ({e.get('ResourceType', '?')}): "
                f"{e.get('ResourceStatusReason', 'no reason given')}"
            )
    return reasons


def apply(
    cf: Any,
    stack: str,
    template_body: str,
    parameters: dict[str, str],
    *,
    create: bool,
    change_set_name: str,
    waiting: Waiting | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> StackResult:
    """Create a change set, execute it unless it is empty, and wait for the stack to settle."""
    waiting = waiting or Waiting()
    kind = "CREATE" if create else "UPDATE"
    created = aws_call(
        f"creating a change set for stack {stack}",
        lambda: cf.create_change_set(
            StackName=stack,
            ChangeSetName=change_set_name,
            ChangeSetType=kind,
            TemplateBody=template_body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=CAPABILITIES,
            Description="preheat deploy",
        ),
    )
    cs_id = created["Id"]

    def cs_status() -> str:
        d = aws_call("reading the change set", lambda: cf.describe_change_set(ChangeSetName=cs_id))
        return str(d["Status"])

    status = _poll(
        f"change set {change_set_name}",
        cs_status,
        lambda s: s in {"CREATE_COMPLETE", "FAILED"},
        waiting,
        say,
    )
    described = aws_call(
        "reading the change set", lambda: cf.describe_change_set(ChangeSetName=cs_id)
    )
    if status == "FAILED":
        reason = described.get("StatusReason", "")
        if any(p in reason for p in _NO_CHANGES):
            aws_call(
                "removing the empty change set", lambda: cf.delete_change_set(ChangeSetName=cs_id)
            )
            return StackResult("none", "NO_CHANGES")
        raise DeployError(f"stack {stack}: the change set failed: {reason}", resource=stack)
    changes = [
        {
            "action": c["ResourceChange"].get("Action", ""),
            "resource": c["ResourceChange"].get("LogicalResourceId", ""),
            "type": c["ResourceChange"].get("ResourceType", ""),
        }
        for c in described.get("Changes", [])
        if "ResourceChange" in c
    ]
    say(f"executing change set {change_set_name} ({len(changes)} resource changes)")
    started = _latest_event_time(cf, stack)
    aws_call(
        f"executing the change set of stack {stack}",
        lambda: cf.execute_change_set(ChangeSetName=cs_id),
    )

    def stack_status() -> str:
        s = aws_call(f"reading stack {stack}", lambda: cf.describe_stacks(StackName=stack))
        return str(s["Stacks"][0]["StackStatus"])

    final = _poll(
        f"stack {stack}",
        stack_status,
        lambda s: not s.endswith("_IN_PROGRESS"),
        waiting,
        say,
    )
    if final not in _GOOD:
        reasons = failure_reasons(cf, stack, started) or ["no resource reported a reason"]
        raise DeployError(f"stack {stack} ended {final}: " + "; ".join(reasons), resource=stack)
    return StackResult("create" if create else "update", final, changes)


def _latest_event_time(cf: Any, stack: str) -> datetime | None:
    events = aws_call(
        f"reading events of stack {stack}", lambda: cf.describe_stack_events(StackName=stack)
    ).get("StackEvents", [])
    times = [e["Timestamp"] for e in events if e.get("Timestamp") is not None]
    return max(times) if times else None
