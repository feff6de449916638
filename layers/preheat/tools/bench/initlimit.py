"""The INIT rule a benchmark runs under: Lambda's own, or lifted so every INIT is measured.

`lambda`: INIT is cut at Lambda's 10 s and run again inside the first invoke, as Lambda
does; the functions keep their INIT budget as deployed (preheat's default hands a slow
load back at 9 s). What a user of each strategy would wait, retries included.
`lifted` (the default): INIT may run to 120 s and preheat's INIT budget is off, so each
INIT is measured whole, with its breakdown, and the ratios compare whole INITs; the table
flags every INIT that Lambda would have cut off. Both say which rule they ran under.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from preheat import constants as c
from preheat.exceptions import ConfigurationError

LAMBDA, LIFTED = "lambda", "lifted"
RULES = (LAMBDA, LIFTED)
# Lifted by default: the published tables and every ratio compare whole INITs, and a cold
# start cut at 10 s has no breakdown of its own; `--init-limit lambda` shows the cost of
# Lambda's retry beside them.
DEFAULT = LIFTED
LIFTED_INIT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class InitRule:
    name: str
    # The emulator's INIT limit for every function of the run.
    init_timeout_s: float
    # Whether an INIT past the limit is run again inside the invoke (the emulator does, as
    # Lambda does, whenever the limit is reached).
    retried: bool
    # Variables every function gets unless its strategy sets them itself.
    env: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """For the results file."""
        return {
            "rule": self.name,
            "init_timeout_s": self.init_timeout_s,
            "retried_in_invoke": self.retried,
            "init_budget": "off" if self.env.get(c.ENV_INIT_BUDGET_S) == "0" else "as deployed",
        }

    def text(self) -> str:
        """One line for the terminal."""
        if self.name == LAMBDA:
            return (
                f"INIT rule: lambda (INIT cut at {self.init_timeout_s:g} s and retried inside "
                "the first invoke, as on Lambda; preheat's INIT budget as deployed)"
            )
        return (
            f"INIT rule: lifted (INIT may run to {self.init_timeout_s:g} s and is measured "
            f"whole; preheat's INIT budget off; Lambda would cut INIT at "
            f"{c.LAMBDA_INIT_LIMIT_S:g} s)"
        )


def rule(name: str) -> InitRule:
    """The rule called `name`; a ConfigurationError naming --init-limit otherwise."""
    if name == LAMBDA:
        return InitRule(LAMBDA, c.LAMBDA_INIT_LIMIT_S, retried=True)
    if name == LIFTED:
        return InitRule(
            LIFTED, LIFTED_INIT_TIMEOUT_S, retried=False, env={c.ENV_INIT_BUDGET_S: "0"}
        )
    raise ConfigurationError("--init-limit", name, f"use {' or '.join(RULES)}")
