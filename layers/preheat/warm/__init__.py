"""Warm pings on the handler side, and the warmer that sends them and checks who answered.

Light to import: the engine (`preheat.warm.engine`) is imported only by those who use it.
"""

from __future__ import annotations

from preheat.warm.handler import warm_handler
from preheat.warm.ping import is_warm_event
from preheat.warm.state import EnvironmentState, state

__all__ = ["EnvironmentState", "is_warm_event", "state", "warm_handler"]
