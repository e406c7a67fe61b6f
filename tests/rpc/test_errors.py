"""The one mapper from a failure to a Connect error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from app.auth import AuthError, PermissionDenied, Unauthenticated
from app.errors import ErrorKind, InvocationFailure
from app.invocation import LogLevel, LogLine, Metrics
from app.rpc import InvalidRequest, code_for, to_connect_error
from app.rpc._context import Call
from app.rpc._errors import failure_headers

APP = Path(__file__).resolve().parents[2] / "app"


def _detail(error: ConnectError) -> runtime_pb.InvocationError:
    (detail,) = error.details
    value = detail.value(runtime_pb.InvocationError)
    assert isinstance(value, runtime_pb.InvocationError)
    return value


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (Unauthenticated("a bearer token is required"), Code.UNAUTHENTICATED),
        (PermissionDenied("the admin scope x is required"), Code.PERMISSION_DENIED),
        (AuthError("refused for no stated reason"), Code.UNAUTHENTICATED),  # fails closed
        (InvalidRequest("target must name exactly one thing"), Code.INVALID_ARGUMENT),
    ],
)
def test_refusals_of_the_caller_carry_their_code_and_message_only(
    failure: Exception, code: Code
) -> None:
    error = to_connect_error(failure, Call(method="M", request_id="r"))
    assert (error.code, error.message, error.details) == (code, str(failure), [])


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_invocation_failure_kind_has_its_code_and_a_typed_detail(kind: ErrorKind) -> None:
    error = to_connect_error(InvocationFailure(kind, "why"), Call(method="M", request_id="r"))
    assert error.code is code_for(kind)
    assert _detail(error).kind == runtime_pb.ErrorKind[kind.value]


def test_the_detail_names_the_call_and_bounds_what_the_caller_sent() -> None:
    failure = InvocationFailure(ErrorKind.TRAP, "x" * 10_000, Metrics(fuel_consumed=7))
    failure.resolved_version = "1.2.0"
    failure.logs = [LogLine(LogLevel.INFO, "first"), LogLine(LogLevel.ERROR, "last")]
    call = Call(method="M", request_id="r-9", extension_id="e" * 1_000, include_logs=True)
    error = to_connect_error(failure, call)
    detail = _detail(error)
    assert len(error.message) == 512 and error.message.endswith("...")
    assert len(detail.extension_id) == 128
    assert (detail.version, detail.request_id) == ("1.2.0", "r-9")  # the version that ran
    assert detail.metrics is not None and detail.metrics.fuel_consumed == 7
    assert [line.message for line in detail.logs] == ["first", "last"]
    quiet = _detail(to_connect_error(failure, Call(method="M", request_id="r", version="9")))
    assert (quiet.logs, quiet.logs_truncated) == ([], False)  # logs only when asked


def test_an_unexpected_exception_is_internal_naming_only_the_request_id() -> None:
    error = to_connect_error(RuntimeError("secret-token at /srv/app.py"), Call("M", "req-1"))
    assert (error.code, error.message) == (Code.INTERNAL, "internal error (request_id=req-1)")
    assert error.details == []
    fresh = to_connect_error(KeyError("secret"))  # outside a call: still an id to look up
    assert re.fullmatch(r"internal error \(request_id=[0-9a-f]{32}\)", fresh.message)


def test_a_connect_error_is_already_an_answer() -> None:
    error = ConnectError(Code.RESOURCE_EXHAUSTED, "message is larger than configured max")
    assert to_connect_error(error) is error


def test_a_retry_hint_is_a_retry_after_header_in_whole_seconds_rounded_up() -> None:
    overloaded = InvocationFailure(ErrorKind.OVERLOADED, "busy", retry_after_ms=1_001)
    assert failure_headers(overloaded) == {"retry-after": "2"}
    assert failure_headers(InvocationFailure(ErrorKind.OVERLOADED, "busy")) == {}
    assert failure_headers(Unauthenticated("no")) == {}


def test_connect_errors_are_built_in_one_place() -> None:
    """Handlers and layers raise what they mean; only the mapper speaks Connect."""
    builders = sorted(
        str(path.relative_to(APP))
        for path in APP.rglob("*.py")
        if "gen" not in path.relative_to(APP).parts and "ConnectError(" in path.read_text()
    )
    assert builders == ["rpc/_errors.py"]
