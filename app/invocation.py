"""The data one invocation carries through the pipeline, free of wire types.

``app.rpc`` translates protobuf messages into these and back, so every stage
below it (catalog, controls, storage, sandbox) can be tested and reused (by
the local CLI, for one) without Connect.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """On whose behalf an extension runs."""

    tenant_id: str = ""
    organization_id: str = ""
    user_id: str = ""
    request_id: str = ""
    caller: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


class LogLevel(IntEnum):
    """Guest log levels; values match the proto enum."""

    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line the guest logged."""

    level: LogLevel
    message: str


@dataclass(slots=True)
class Metrics:
    """What an invocation cost; filled in as the invocation goes."""

    duration_us: int = 0
    fuel_consumed: int = 0
    peak_memory_bytes: int = 0
    host_calls: int = 0
    queue_us: int = 0


@dataclass(frozen=True, slots=True)
class Invocation:
    """A request to run one extension on one input."""

    context: ExecutionContext
    extension_id: str
    version: str
    input: bytes
    deadline: float | None = None
    """``time.monotonic()`` after which the caller no longer waits."""
    include_logs: bool = False
    background: bool = False
    """A run nobody waits for (a rollout's shadow run): it never holds the loop."""

    def remaining_ms(self) -> float | None:
        """Milliseconds left before the caller's deadline, if it set one."""
        if self.deadline is None:
            return None
        return (self.deadline - time.monotonic()) * 1000.0


@dataclass(slots=True)
class Outcome:
    """A successful invocation."""

    output: bytes
    resolved_version: str
    metrics: Metrics
    logs: list[LogLine] = field(default_factory=list)
    logs_truncated: bool = False
    memory_refused_bytes: int = 0
    """Largest linear memory the sandbox refused the guest (0: none): output the
    caller cannot use is then reported as MEMORY_LIMIT, not INVALID_OUTPUT."""


class Invoker(Protocol):
    """Runs an invocation end to end; raises ``InvocationFailure`` on failure."""

    async def invoke(self, invocation: Invocation) -> Outcome: ...


class EchoInvoker:
    """Returns the input untouched without running wasm: the protocol floor.

    Benchmarks serve it to measure what the protocol stack alone costs.
    """

    async def invoke(self, invocation: Invocation) -> Outcome:
        return Outcome(
            output=invocation.input,
            resolved_version=invocation.version or "builtin",
            metrics=Metrics(),
        )
