"""A local Lambda: the Invoke API and the Runtime API, with awslambdaric in fresh processes."""

from preheat.tools.emulator.config import DEFAULT_MAX_CONCURRENCY, FunctionConfig
from preheat.tools.emulator.emulator import Emulator, InvokeResult
from preheat.tools.emulator.records import EnvironmentRecord, FunctionStats, InvocationRecord
from preheat.tools.emulator.resources import ResourceModel, describe

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "Emulator",
    "EnvironmentRecord",
    "FunctionConfig",
    "FunctionStats",
    "InvocationRecord",
    "InvokeResult",
    "ResourceModel",
    "describe",
]
