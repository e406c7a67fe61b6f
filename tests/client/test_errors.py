"""Every error kind the service can produce, surfaced as its typed exception.

HOST_CALL_DENIED and HOST_CALL_FAILED never reach the wire (a refused or failed
host call is a JSON answer to the guest, not a failed invocation), and INTERNAL
only comes from a bug; those kinds are checked against hand-made errors below.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ameide_extensions_client as sdk
import pytest
from ameide_extensions_client import (
    ErrorKind,
    ExecutionContext,
    ExtensionError,
    ExtensionsClient,
    ExtensionsClientSync,
)
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from tests._servers import cli_server
from tests.client._extensions import SUSPENDED_TENANT, server_env

CASES: list[tuple[str, type[ExtensionError], ErrorKind, Code, str, Any, dict[str, Any]]] = [
    # id, class, kind, code, extension, input, invoke kwargs
    ("not-found", sdk.ExtensionNotFound, ErrorKind.NOT_FOUND, Code.NOT_FOUND, "nope", {}, {}),
    (
        "no-such-version",
        sdk.ExtensionNotFound,
        ErrorKind.NOT_FOUND,
        Code.NOT_FOUND,
        "hello",
        {},
        {"version": "9.9.9"},
    ),
    ("trap", sdk.Trap, ErrorKind.TRAP, Code.ABORTED, "hello", [1, 2], {}),
    (
        "fuel",
        sdk.FuelExhausted,
        ErrorKind.FUEL_EXHAUSTED,
        Code.RESOURCE_EXHAUSTED,
        "lowfuel",
        {"iterations": 1_000_000},
        {},
    ),
    (
        "extension-time-limit",
        sdk.ExtensionTimeout,
        ErrorKind.TIMEOUT,
        Code.DEADLINE_EXCEEDED,
        "slow",
        b"500000000",
        {},
    ),
    (
        "memory",
        sdk.MemoryLimit,
        ErrorKind.MEMORY_LIMIT,
        Code.RESOURCE_EXHAUSTED,
        "tinymem",
        1,
        {},
    ),
    (
        "stack",
        sdk.StackOverflow,
        ErrorKind.STACK_OVERFLOW,
        Code.RESOURCE_EXHAUSTED,
        "deep",
        1,
        {},
    ),
    (
        "output",
        sdk.OutputTooLarge,
        ErrorKind.OUTPUT_TOO_LARGE,
        Code.RESOURCE_EXHAUSTED,
        "tinyout",
        {"more": "than sixteen bytes"},
        {},
    ),
    (
        "invalid-module",
        sdk.InvalidModule,
        ErrorKind.INVALID_MODULE,
        Code.FAILED_PRECONDITION,
        "forbidden",
        1,
        {},
    ),
    (
        "integrity",
        sdk.IntegrityMismatch,
        ErrorKind.INTEGRITY_MISMATCH,
        Code.DATA_LOSS,
        "tampered",
        1,
        {},
    ),
    (
        "disabled-extension",
        sdk.ExtensionDisabled,
        ErrorKind.EXTENSION_DISABLED,
        Code.FAILED_PRECONDITION,
        "retired",
        1,
        {},
    ),
    (
        "disabled-tenant",
        sdk.ExtensionDisabled,
        ErrorKind.EXTENSION_DISABLED,
        Code.FAILED_PRECONDITION,
        "echo",
        1,
        {"context": ExecutionContext(tenant_id=SUSPENDED_TENANT)},
    ),
    (
        "invalid-input-no-id",
        sdk.InvalidInput,
        ErrorKind.INVALID_INPUT,
        Code.INVALID_ARGUMENT,
        "",
        1,
        {},
    ),
]


LOCAL_CASES: list[tuple[str, type[ExtensionError], ErrorKind, Code, str, Any, dict[str, Any]]] = [
    # Decided by the SDK itself: it sends JSON as its exact text and parses the
    # output exactly, so NaN never leaves and non-JSON output is found here.
    (
        "invalid-input-nan",
        sdk.InvalidInput,
        ErrorKind.INVALID_INPUT,
        Code.INVALID_ARGUMENT,
        "echo",
        float("nan"),
        {},
    ),
    (
        "invalid-output",
        sdk.InvalidOutput,
        ErrorKind.INVALID_OUTPUT,
        Code.FAILED_PRECONDITION,
        "echo",
        b"not json",
        {"output_format": "json"},
    ),
]


@pytest.mark.parametrize(
    ("cls", "kind", "code", "extension", "data", "kwargs"),
    [case[1:] for case in CASES + LOCAL_CASES],
    ids=[case[0] for case in CASES + LOCAL_CASES],
)
async def test_error_kind_is_typed(
    url: str,
    cls: type[ExtensionError],
    kind: ErrorKind,
    code: Code,
    extension: str,
    data: Any,
    kwargs: dict[str, Any],
) -> None:
    async with ExtensionsClient(url) as client:
        with pytest.raises(cls) as info:
            await client.invoke(extension, data, **kwargs)
    error = info.value
    assert type(error) is cls
    assert isinstance(error, ExtensionError)
    assert error.kind == kind
    assert error.code == code
    assert error.message
    assert len(error.request_id) == 32  # the id the SDK sent, echoed in the detail
    assert error.extension_id == extension
    assert "Traceback" not in error.message
    assert kind.name in str(error)
    local = any(case[1] is cls and case[5] is data for case in LOCAL_CASES)
    assert local or isinstance(error.__cause__, ConnectError)  # the runtime's own answer


async def test_numbers_come_back_exactly(url: str) -> None:
    value = {"id": 9007199254740993, "n": 1, "big": 12345678901234567890, "x": 0.5}
    async with ExtensionsClient(url) as client:
        result = await client.invoke("echo", value)
        assert result.is_json and result.output == value
        assert type(result.output["n"]) is int
        raw = await client.invoke("echo", b'{"id":9007199254740993}')
        assert raw.output == {"id": 9007199254740993}


def test_sync_client_raises_the_same_types(url: str) -> None:
    with ExtensionsClientSync(url, protocol="grpc") as client:
        with pytest.raises(sdk.Trap) as trap:
            client.invoke("hello", "not an object", context=ExecutionContext(request_id="sync-1"))
        with pytest.raises(sdk.ExtensionNotFound):
            client.invoke("nope")
    assert trap.value.request_id == "sync-1"
    assert "exit status 1" in trap.value.message


async def test_guest_failures_carry_metrics(url: str) -> None:
    async with ExtensionsClient(url) as client:
        with pytest.raises(sdk.FuelExhausted) as info:
            await client.invoke("lowfuel", {"iterations": 1_000_000})
    assert info.value.metrics is not None
    assert info.value.metrics.fuel_consumed >= 1_000_000


async def test_guest_failures_carry_the_guests_logs(url: str) -> None:
    async with ExtensionsClient(url) as client:
        with pytest.raises(sdk.Trap) as info:
            await client.invoke("hello", [1], include_logs=True)
        assert any("input must be a JSON object" in line.message for line in info.value.logs)
        assert all(isinstance(line, sdk.LogLine) for line in info.value.logs)
        with pytest.raises(sdk.Trap) as quiet:
            await client.invoke("hello", [1])
        assert quiet.value.logs == ()


async def test_disabled_names_the_reason(url: str) -> None:
    async with ExtensionsClient(url) as client:
        with pytest.raises(sdk.ExtensionDisabled) as info:
            await client.invoke("retired", 1)
    assert "retired by the test" in info.value.message


def test_open_breaker_is_unavailable(url: str) -> None:
    """20 traps in a row open the breaker of ``breaky``; the next call fails fast."""
    with ExtensionsClientSync(url) as client:
        for _ in range(20):
            with pytest.raises(sdk.Trap):
                client.invoke("breaky", [1])
        with pytest.raises(sdk.Unavailable) as info:
            client.invoke("breaky", {"name": "Ada"})
        assert info.value.kind == ErrorKind.UNAVAILABLE
        assert info.value.retryable
        assert "breaker" in info.value.message
        # Other extensions are untouched.
        assert client.invoke("hello", {"name": "Ada"}).output == {"greeting": "Hello, Ada!"}


@pytest.fixture(scope="module")
def single_slot_url(extensions_root: Path) -> Iterator[str]:
    """One sandbox thread and no queue: a second long call is refused at once."""
    env = {
        **server_env(extensions_root),
        "EXTENSIONS_RUNTIME_EXECUTOR_THREADS": "1",
        "EXTENSIONS_RUNTIME_EXECUTOR_QUEUE": "0",
    }
    with cli_server("pyvoy", env=env) as url:
        yield url


async def test_overloaded(single_slot_url: str) -> None:
    long_input = b"50000000"  # ~0.1 s of spin here: overlaps, yet far inside the 1 s limit
    async with ExtensionsClient(single_slot_url) as client:
        # Teach the fast path that spin is slow, so every call goes to the pool.
        await client.invoke("spin", b"10000000")
        calls = [asyncio.create_task(client.invoke("spin", long_input)) for _ in range(3)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, sdk.Overloaded)]
    # The admitted call normally finishes; on a machine busy with other work its
    # low-priority long-lane thread may not get the CPU in time, and it times out.
    admitted = [o for o in outcomes if isinstance(o, sdk.InvocationResult | sdk.ExtensionTimeout)]
    assert refused, f"three concurrent calls on one slot were all admitted: {outcomes}"
    assert admitted, f"no call got the slot: {outcomes}"
    assert len(refused) + len(admitted) == 3, outcomes
    error = refused[0]
    assert error.retryable
    assert error.code == Code.RESOURCE_EXHAUSTED
    assert "busy" in error.message
    assert error.metrics is None  # refused at once: the guest never ran
    assert error.retry_after_ms > 0


# ---- the mapping itself, for every kind (including those no example reaches) ----


@pytest.mark.parametrize("kind", [k for k in ErrorKind if k != ErrorKind.UNSPECIFIED])
def test_every_kind_has_its_class(kind: ErrorKind) -> None:
    detail = runtime_pb.InvocationError(
        kind=kind,
        message="boom",
        extension_id="x",
        version="1",
        request_id="r1",
        metrics=runtime_pb.InvocationMetrics(fuel_consumed=7),
    )
    error = sdk.error_from_connect(ConnectError(Code.ABORTED, "wire text", details=[detail]))
    assert type(error) is sdk.error_class(kind)
    assert type(error) is not ExtensionError
    assert error.kind == kind
    assert (error.message, error.extension_id, error.version, error.request_id) == (
        "boom",
        "x",
        "1",
        "r1",
    )
    assert error.metrics is not None
    assert error.metrics.fuel_consumed == 7


@pytest.mark.parametrize(
    ("code", "cls", "kind"),
    [
        (Code.DEADLINE_EXCEEDED, sdk.ExtensionTimeout, ErrorKind.TIMEOUT),
        (Code.UNAVAILABLE, sdk.Unavailable, ErrorKind.UNAVAILABLE),
        (Code.UNAUTHENTICATED, sdk.Unauthenticated, ErrorKind.UNSPECIFIED),
        (Code.PERMISSION_DENIED, sdk.PermissionDenied, ErrorKind.UNSPECIFIED),
        (Code.INVALID_ARGUMENT, sdk.InvalidInput, ErrorKind.INVALID_INPUT),
        (Code.INTERNAL, sdk.InternalError, ErrorKind.INTERNAL),
        (Code.UNIMPLEMENTED, ExtensionError, ErrorKind.UNSPECIFIED),
    ],
)
def test_errors_without_detail_are_classified_by_code(
    code: Code, cls: type[ExtensionError], kind: ErrorKind
) -> None:
    error = sdk.error_from_connect(ConnectError(code, "no detail"), request_id="mine")
    assert type(error) is cls
    assert error.kind == kind
    assert error.request_id == "mine"
    assert error.code == code


async def test_unreachable_server_is_unavailable() -> None:
    from tests._servers import free_port

    async with ExtensionsClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(sdk.Unavailable):
            await client.invoke("echo", 1)
