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


# The native parser's answer must be the exact parser's: these are the edges where
# a JSON reader may differ (numbers out of a double's range, surrogates, encodings,
# nesting, duplicate keys, what strict JSON refuses).
EDGES = [
    b'{"data": "' + b"x" * 1010 + b'"}',
    b"null",
    b'"x"',
    b'[1,"2",{"b":null},true,false]',
    b'{"a":1,"a":2}',
    b'{"\\u0000":1}',
    b'"\\ud83d\\ude00"',
    b'{"a":"\xc3\xa9"}\n',
    b"1e308",
    b"1.7976931348623157e308",
    b"1e309",
    b"-1e400",
    b"[1e999]",
    b"1e-400",
    b"1" + b"0" * 308,
    b"1" + b"0" * 400,
    b"9007199254740993",
    b"-0",
    b"0.1",
    b"1.5E3",
    b"NaN",
    b'{"a": Infinity}',
    b"-Infinity",
    b'"\\ud800"',
    b'"\xed\xa0\x80"',
    b'"\xff"',
    b"\xef\xbb\xbf{}",
    '{"a":"é"}'.encode("utf-16"),
    b"",
    b" ",
    b"{",
    b"[1,]",
    b"01",
    b".5",
    b"'a'",
    b'"\t"',
    b'"\\x"',
    b'{"a":1} x',
    b"[" * 50 + b"]" * 50,
    b"[" * 63 + b"]" * 63,
    b"[" * 64 + b"]" * 64,
    b'{"a":' * 63 + b"1" + b"}" * 63,
    b'{"a":' * 64 + b"1" + b"}" * 64,
]


@pytest.mark.parametrize("output", EDGES)
def test_the_fast_parser_answers_as_the_exact_one(output: bytes) -> None:
    fast, exact = _payload.parse_json_output(output), _payload._parse_exactly(output)
    assert fast == exact
    if fast is not None:
        assert fast.to_binary() == exact.to_binary()  # same order of keys on the wire


@pytest.mark.parametrize("parse", [_payload.parse_json_output, _payload._parse_exactly])
def test_json_nested_past_what_a_binary_value_carries_is_not_output_json(parse: Any) -> None:
    """50 levels encode; 51 would fail in the codec after the guest's work was done."""
    for container in (b"[%s]", b'{"a":%s}'):
        text = b"1"
        for _ in range(50):
            text = container % text
        carried = parse(text)
        assert carried is not None and carried.to_binary()
        assert parse(container % text) is None
    assert parse(b"[" * 51 + b"]" * 51) is None


def test_random_json_mutations_answer_as_the_exact_parser() -> None:
    import random

    rng = random.Random(19)
    seeds = [e for e in EDGES if len(e) < 200] + [
        json.dumps({"k": [1, 2.5, "s\u00e9", None, {"n": -3e10}]}).encode()
    ]
    alphabet = b'{}[]",:0123456789eE+-.\\u tnrfalsenull\x00\xed\xff\xc3\xa9'
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randint(0, len(data))
            if rng.random() < 0.5 and data:
                del data[min(at, len(data) - 1)]
            else:
                data[at:at] = bytes([rng.choice(alphabet)])
        output = bytes(data)
        assert _payload.parse_json_output(output) == _payload._parse_exactly(output), output


def _value(python: Any) -> Any:
    from protobuf.wkt import Value

    return Value.from_python(python)


def test_native_json_escapes_every_code_point_as_json_dumps_does() -> None:
    """One string (and key) holding every code point but the surrogates: escaping is per
    character, so one comparison covers each."""
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for value in (_value(every), _value({every: [every, True, None]})):
        fast = _payload._native_json(value)
        assert fast is not None and fast == _payload._input_exactly(value)


def test_native_json_writes_doubles_with_the_same_digits() -> None:
    import math
    import random
    import struct

    rng = random.Random(19)
    doubles = [rng.uniform(-1e6, 1e6) for _ in range(20_000)]
    doubles += [
        struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20_000)
    ]
    doubles += [1e16, 9007199254740993.0, 5e-324, 1.7976931348623157e308, 1e21, 1e22, 1e-5, 0.1]
    fast = 0
    for double in (d for d in doubles if math.isfinite(d)):
        value = _value(double)
        written = _payload._native_json(value)
        fast += written is not None
        assert written is None or written == _payload._input_exactly(value), double
    assert fast > 20_000  # the ones with no ".0" in them


def test_integral_numbers_and_what_json_cannot_carry_take_the_exact_path() -> None:
    from protobuf import Oneof
    from protobuf.wkt import Value

    from app.errors import ErrorKind, InvocationFailure

    for python, guest_sees in (
        ({"n": 1.0}, b'{"n":1}'),
        ([-0.0, 2.0**53], b"[0,9007199254740992]"),
        ({"v": "version 1.0"}, b'{"v":"version 1.0"}'),  # ".0" in a string: exact, same bytes
    ):
        value = _value(python)
        assert _payload._native_json(value) is None
        assert _payload.input_bytes(Oneof("input_json", value)) == guest_sees
    for number in (float("nan"), float("inf")):
        with pytest.raises(InvocationFailure) as info:
            _payload.input_bytes(Oneof("input_json", Value(kind=Oneof("number_value", number))))
        assert info.value.kind is ErrorKind.INVALID_INPUT


def test_random_values_reach_the_guest_as_the_exact_path_writes_them() -> None:
    import random

    from protobuf import Oneof

    rng = random.Random(19)
    alphabet = 'ab .0"\\\n\x01é😀/'

    def python(depth: int) -> Any:
        kind = rng.randrange(7 if depth < 6 else 4)
        if kind == 0:
            return None
        if kind == 1:
            return rng.random() < 0.5
        if kind == 2:
            return rng.choice([rng.randint(-(2**60), 2**60), rng.uniform(-1e9, 1e9), 0.5])
        if kind == 3:
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
        if kind in (4, 5):
            return {
                "".join(rng.choice(alphabet) for _ in range(3)): python(depth + 1) for _ in range(3)
            }
        return [python(depth + 1) for _ in range(rng.randrange(4))]

    fast = 0
    for _ in range(2000):
        value = _value(python(0))
        fast += _payload._native_json(value) is not None
        assert _payload.input_bytes(Oneof("input_json", value)) == _payload._input_exactly(value)
    assert 200 < fast < 2000  # both paths were taken
