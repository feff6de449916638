"""`preheat deploy` as pure stages: build what should exist, plan the calls, execute them.

`build` does local work only (slim, zips) and `plan` decides from what `observe` read;
nothing changes in AWS before `execute`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preheat.tools.deploy.desired import Desired, build
from preheat.tools.deploy.destroy import Destroyed, destroy
from preheat.tools.deploy.execute import Done, execute
from preheat.tools.deploy.plan import Plan, plan
from preheat.tools.deploy.remote import Clients, Observed, observe
from preheat.tools.deploy.request import DeployRequest
from preheat.tools.deploy.stack import Waiting
from preheat.tools.deploy.stages import Stages

__all__ = [
    "Clients",
    "DeployRequest",
    "DeployResult",
    "Desired",
    "Destroyed",
    "Done",
    "Observed",
    "Plan",
    "Stages",
    "Waiting",
    "build",
    "deploy",
    "destroy",
    "execute",
    "observe",
    "plan",
]


@dataclass
class DeployResult:
    plan: Plan
    done: Done | None  # None after a dry run

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "done": self.done.to_dict() if self.done else None,
            "dry_run": self.done is None,
        }


def deploy(
    request: DeployRequest,
    *,
    clients: Clients | None = None,
    stages: Stages | None = None,
    work_dir: Path | None = None,
    waiting: Waiting | None = None,
    say: Callable[[str], None] = lambda _m: None,
    show_plan: Callable[[Plan], None] = lambda _p: None,
    prewarm_client: Any = None,
    functions_dir: Path | None = None,
) -> DeployResult:
    """Validate, build, observe, plan, then (unless a dry run) execute."""
    request = request.validated()
    desired = build(request, stages=stages, work_dir=work_dir, say=say, functions_dir=functions_dir)
    clients = clients or Clients(request.region)
    the_plan = plan(desired, observe(desired, clients))
    show_plan(the_plan)
    if request.dry_run:
        return DeployResult(the_plan, None)
    return DeployResult(
        the_plan,
        execute(the_plan, clients, say=say, waiting=waiting, prewarm_client=prewarm_client),
    )
