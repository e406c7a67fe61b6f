"""What the Connect service answers when the guest's output is not what was asked for."""

from __future__ import annotations

import asyncio

import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb

from app.errors import ErrorKind, InvocationFailure
from app.invocation import Metrics, Outcome
from app.rpc import _service

JSON = runtime_pb.OutputFormat.JSON


def _failure(outcome: Outcome, json_wire: bool) -> InvocationFailure:
    with pytest.raises(InvocationFailure) as info:
        asyncio.run(_service._response(outcome, JSON, json_wire=json_wire))
    return info.value


# Both answers: to a JSON-codec caller (the guest's text) and to a binary one (a Value).
WIRES = pytest.mark.parametrize("json_wire", [True, False], ids=["json-wire", "binary-wire"])


@WIRES
def test_output_that_is_not_json_is_invalid_output(json_wire: bool) -> None:
    outcome = Outcome(output=b"\xff", resolved_version="1", metrics=Metrics())
    assert _failure(outcome, json_wire).kind is ErrorKind.INVALID_OUTPUT


@WIRES
def test_output_that_is_not_json_after_a_memory_refusal_is_memory_limit(json_wire: bool) -> None:
    metrics = Metrics(fuel_consumed=7)
    outcome = Outcome(
        output=b"{trunc", resolved_version="1", metrics=metrics, memory_refused_bytes=1 << 28
    )
    failure = _failure(outcome, json_wire)
    assert failure.kind is ErrorKind.MEMORY_LIMIT
    assert failure.message == (
        f"memory of {1 << 28} bytes refused; then: the extension's output is not valid JSON"
    )
    assert failure.metrics is metrics
