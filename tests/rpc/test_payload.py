"""Guest JSON output: large outputs are parsed on a worker thread, not the event loop."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from app.rpc import _payload


@pytest.fixture
def parsed_on(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    threads: list[int] = []
    real = _payload.parse_json_output

    def spy(output: bytes) -> Any:
        threads.append(threading.get_ident())
        return real(output)

    monkeypatch.setattr(_payload, "parse_json_output", spy)
    return threads


async def test_a_large_json_array_is_parsed_off_the_loop(parsed_on: list[int]) -> None:
    output = json.dumps(list(range(15_000))).encode()  # the was 1 MiB: same path
    assert len(output) > _payload.OFF_LOOP_BYTES
    value = await _payload.parse_json_output_async(output)
    assert value is not None and value.to_python()[:3] == [0, 1, 2]
    assert parsed_on and parsed_on[0] != threading.get_ident()


async def test_small_outputs_stay_on_the_loop(parsed_on: list[int]) -> None:
    value = await _payload.parse_json_output_async(b'{"a": 1}')
    assert value is not None and value.to_python() == {"a": 1}
    assert parsed_on == [threading.get_ident()]


async def test_large_non_json_is_still_refused(parsed_on: list[int]) -> None:
    assert await _payload.parse_json_output_async(b"[" * 200_000) is None
    assert parsed_on[0] != threading.get_ident()


def test_a_value_with_no_kind_set_is_invalid_input_not_internal() -> None:
    from protobuf import Oneof
    from protobuf.wkt import Struct, Value

    from app.errors import ErrorKind, InvocationFailure

    hollow = Value(
        kind=Oneof("struct_value", Struct(fields={"a": Value()}))
    )  # as fuzzed input decodes
    with pytest.raises(InvocationFailure) as info:
        _payload.input_bytes(Oneof("input_json", hollow))
    assert info.value.kind is ErrorKind.INVALID_INPUT
