"""What the Connect service answers when the guest's output is not what was asked for."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import ErrorKind, InvocationFailure
from app.gen.ameide.extensions.v1 import runtime_pb
from app.invocation import Metrics, Outcome
from app.rpc import _service

JSON = runtime_pb.OutputFormat.JSON


def _failure(outcome: Outcome) -> InvocationFailure:
    with pytest.raises(InvocationFailure) as info:
        asyncio.run(_service._response(outcome, JSON))
    return info.value


def test_output_that_is_not_json_is_invalid_output() -> None:
    failure = _failure(Outcome(output=b"\xff", resolved_version="1", metrics=Metrics()))
    assert failure.kind is ErrorKind.INVALID_OUTPUT


def test_output_that_is_not_json_after_a_memory_refusal_is_memory_limit() -> None:
    metrics = Metrics(fuel_consumed=7)
    outcome = Outcome(
        output=b"{trunc", resolved_version="1", metrics=metrics, memory_refused_bytes=1 << 28
    )
    failure = _failure(outcome)
    assert failure.kind is ErrorKind.MEMORY_LIMIT
    assert failure.message == (
        f"memory of {1 << 28} bytes refused; then: the extension's output is not valid JSON"
    )
    assert failure.metrics is metrics
