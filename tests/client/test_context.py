"""Building the ExecutionContext from an incoming request, and forwarding it for real."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ameide_extensions_client import (
    ExtensionDisabled,
    ExtensionError,
    ExtensionsClient,
    ExtensionTimeout,
    PermissionDenied,
    Unauthenticated,
    bearer_token,
    context_from_request,
    deadline_from_request,
    forward,
    remaining_ms,
)
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from ameide_extensions_client.gen.ameide.extensions.v1.runtime_connect import (
    WasmExtensionRuntimeASGIApplication,
    WasmExtensionRuntimeClientSync,
)
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import Headers, RequestContext
from protobuf import Oneof
from protobuf.wkt import Value
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests._servers import ROOT, cli_server, thread_server
from tests._tokens import ISSUER, SECRET, caller_token
from tests.client._extensions import SUSPENDED_TENANT

_METHOD: MethodInfo[Any, Any] = MethodInfo(
    name="InvokeExtension",
    service_name="ameide.extensions.v1.WasmExtensionRuntime",
    input=runtime_pb.InvokeExtensionRequest,
    output=runtime_pb.InvokeExtensionResponse,
    idempotency_level=IdempotencyLevel.UNKNOWN,
    stream_type=StreamType.UNARY,
)

INCOMING = {
    "X-Ameide-Tenant-Id": "t1",
    "x-ameide-organization-id": "o1",
    "X-AMEIDE-USER-ID": "u1",
    "x-request-id": "req-42",
    "authorization": "Bearer abc.def.ghi",
    "connect-timeout-ms": "1500",
}


def _request_context(headers: dict[str, str], timeout_ms: int | None) -> RequestContext[Any, Any]:
    return RequestContext(
        method=_METHOD, http_method="POST", request_headers=Headers(headers), timeout_ms=timeout_ms
    )


@pytest.mark.parametrize("kind", ["dict", "pairs", "request-context"])
def test_context_from_request_copies_the_fields(kind: str) -> None:
    source: Any = {
        "dict": INCOMING,
        "pairs": list(INCOMING.items()),
        "request-context": _request_context(INCOMING, 1500),
    }[kind]
    context = context_from_request(source, caller="process-controller", attributes={"k": "v"})
    assert context.tenant_id == "t1"
    assert context.organization_id == "o1"
    assert context.user_id == "u1"
    assert context.request_id == "req-42"
    assert context.caller == "process-controller"
    assert dict(context.attributes) == {"k": "v"}
    assert bearer_token(source) == "abc.def.ghi"
    left = remaining_ms(source)
    assert left is not None
    assert 1400 < left <= 1500
    deadline = deadline_from_request(source)
    assert deadline is not None
    assert 1.4 < deadline - time.monotonic() <= 1.5


def test_keywords_win_over_headers_and_absent_means_empty() -> None:
    context = context_from_request(INCOMING, tenant_id="verified-tenant", user_id="")
    assert (context.tenant_id, context.organization_id, context.user_id) == (
        "verified-tenant",
        "o1",
        "",
    )
    empty = context_from_request({})
    assert (empty.tenant_id, empty.organization_id, empty.user_id, empty.request_id) == (
        "",
        "",
        "",
        "",
    )
    assert bearer_token({}) is None
    assert bearer_token({"authorization": "Basic dXNlcjpwYXNz"}) is None
    assert remaining_ms({}) is None
    assert remaining_ms(_request_context({}, None)) is None


@pytest.mark.parametrize(
    ("header", "value", "ms"),
    [
        ("grpc-timeout", "2S", 2000.0),
        ("grpc-timeout", "150m", 150.0),
        ("grpc-timeout", "1M", 60_000.0),
        ("grpc-timeout", "1H", 3_600_000.0),
        ("grpc-timeout", "5000u", 5.0),
        ("grpc-timeout", "7000000n", 7.0),
        ("grpc-timeout", "bogus", None),
        ("grpc-timeout", "123456789S", None),  # more than 8 digits is not a grpc-timeout
        ("connect-timeout-ms", "250", 250.0),
        ("connect-timeout-ms", "-5", None),
    ],
)
def test_timeout_headers(header: str, value: str, ms: float | None) -> None:
    assert remaining_ms({header: value}) == ms


def test_forward_bundles_context_token_and_deadline() -> None:
    forwarded = forward(INCOMING, caller="ctl")
    assert forwarded.context.tenant_id == "t1"
    assert forwarded.context.caller == "ctl"
    assert forwarded.token == "abc.def.ghi"
    left = forwarded.remaining_ms()
    assert left is not None
    assert 1400 < left <= 1500
    assert forward(INCOMING, forward_token=False).token is None


# ---- a real controller forwarding its incoming request to the real runtime ----


class _Controller:
    """A Connect service standing in for a controller: it serves InvokeExtension by
    forwarding the call to the runtime with the SDK, and records what it saw."""

    def __init__(self, runtime_url: str) -> None:
        self.runtime_url = runtime_url
        self.seen: list[dict[str, Any]] = []

    async def invoke_extension(
        self, request: runtime_pb.InvokeExtensionRequest, ctx: RequestContext[Any, Any], /
    ) -> runtime_pb.InvokeExtensionResponse:
        forwarded = forward(ctx, caller="test-controller")
        record: dict[str, Any] = {
            "context": json.loads(forwarded.context.to_json()),
            "token": forwarded.token,
            "remaining_ms": forwarded.remaining_ms(),
        }
        self.seen.append(record)
        started = time.monotonic()
        data: Any = request.input.value.to_python() if request.input else None
        try:
            async with ExtensionsClient(self.runtime_url) as runtime:
                result = await runtime.invoke(
                    request.extension_id, data, context=forwarded, timeout_ms=10_000
                )
        except ExtensionError as error:
            record.update(error=type(error).__name__, message=error.message)
            raise ConnectError(error.code, error.message) from None
        except BaseException as error:  # the incoming deadline cancelled this handler
            record.update(error=type(error).__name__)
            raise
        finally:
            record["elapsed_s"] = time.monotonic() - started
        record["request_id"] = result.request_id
        return runtime_pb.InvokeExtensionResponse(
            output=Oneof("output_json", Value.from_python(result.output)),  # type: ignore[arg-type]
            resolved_version=result.resolved_version,
        )


@pytest.fixture(scope="module")
def controller(runtime: tuple[str, Path]) -> Iterator[tuple[str, _Controller, Path]]:
    runtime_url, log = runtime
    service = _Controller(runtime_url)
    connect_app = WasmExtensionRuntimeASGIApplication(service)  # type: ignore[arg-type]
    app = Starlette(
        routes=[
            Route("/readyz", lambda _: PlainTextResponse("ok")),
            Route(connect_app.path + "/InvokeExtension", connect_app, methods=["POST"]),
        ]
    )
    with thread_server(app) as url:
        yield url, service, log


def _call(url: str, extension: str, data: Any, headers: dict[str, str], timeout_ms: int) -> Any:
    request = runtime_pb.InvokeExtensionRequest(
        extension_id=extension, input=Oneof("input_json", Value.from_python(data))
    )
    with WasmExtensionRuntimeClientSync(url) as client:
        return client.invoke_extension(request, headers=headers, timeout_ms=timeout_ms)


def _invocation_log(log: Path, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if request_id in line and '"invocation"' in line:
                entry: dict[str, Any] = json.loads(line)
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no invocation log line for {request_id}")


def test_controller_forwards_identity_to_the_runtime(
    controller: tuple[str, _Controller, Path],
) -> None:
    url, service, log = controller
    headers = {
        "x-ameide-tenant-id": "tenant-a",
        "x-ameide-organization-id": "org-a",
        "x-ameide-user-id": "user-a",
        "x-request-id": "ctl-req-1",
        "authorization": "Bearer forwarded-token",
    }
    response = _call(url, "hello", {"name": "Ada"}, headers, timeout_ms=5_000)
    assert response.output.value.to_python() == {"greeting": "Hello, Ada!"}
    seen = service.seen[-1]
    assert seen["context"] == {
        "tenantId": "tenant-a",
        "organizationId": "org-a",
        "userId": "user-a",
        "requestId": "ctl-req-1",
        "caller": "test-controller",
    }
    assert seen["token"] == "forwarded-token"
    assert 4_000 < seen["remaining_ms"] <= 5_000
    assert seen["request_id"] == "ctl-req-1"
    # The runtime logged the invocation under the controller's tenant and request id.
    entry = _invocation_log(log, "ctl-req-1")
    assert (entry["tenant"], entry["organization"], entry["extension"]) == (
        "tenant-a",
        "org-a",
        "hello",
    )


def test_controller_forwards_the_tenant_the_kill_switch_sees(
    controller: tuple[str, _Controller, Path],
) -> None:
    url, service, _ = controller
    with pytest.raises(ConnectError):
        _call(url, "echo", 1, {"x-ameide-tenant-id": SUSPENDED_TENANT}, timeout_ms=5_000)
    assert service.seen[-1]["error"] == ExtensionDisabled.__name__
    assert "tenant suspended" in service.seen[-1]["message"]


def test_controller_forwards_its_deadline(controller: tuple[str, _Controller, Path]) -> None:
    """The controller's own call allows 10 s; the incoming 300 ms is what bounds it."""
    url, service, _ = controller
    with pytest.raises(ConnectError):
        _call(url, "spin", 700_000_000, {}, timeout_ms=300)  # ~1.2 s: past the tier's 1 s
    deadline = time.monotonic() + 30
    while "elapsed_s" not in service.seen[-1] and time.monotonic() < deadline:
        time.sleep(0.02)
    seen = service.seen[-1]
    # Whichever fires first: the forwarded deadline on the runtime call, or the
    # controller's own server cancelling the handler at the same instant.
    assert seen["error"] in (ExtensionTimeout.__name__, "CancelledError"), seen
    # Unforwarded, the runtime's pure tier (1 s) would have ended it, if not the 10 s.
    assert seen["elapsed_s"] < 1.0, seen


# ---- the bearer token, against a runtime that checks it ----


@pytest.fixture(scope="module")
def authed_url() -> Iterator[str]:
    env = {
        "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(ROOT / "examples" / "extensions"),
    }
    with cli_server("pyvoy", env=env, dev=False) as url:
        yield url


async def test_token_provider_and_forwarding(authed_url: str) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return caller_token("t1", "o1", "u1")

    async with ExtensionsClient(authed_url, token=provider) as client:
        result = await client.invoke("echo", {"x": 1})
        assert result.output == {"x": 1}
        assert calls == 1
        # A forwarded token wins over the provider: here it names another tenant
        # than the context, which the runtime refuses.
        incoming = {
            "authorization": f"Bearer {caller_token('t2')}",
            "x-ameide-tenant-id": "t1",
        }
        with pytest.raises(PermissionDenied):
            await client.invoke("echo", 1, context=forward(incoming))
        assert calls == 1
        # A call's own token wins over both.
        ok = await client.invoke(
            "echo", 2, context=forward(incoming), token=caller_token("t1", "o1", "u1")
        )
        assert ok.output == 2
    async with ExtensionsClient(authed_url) as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.invoke("echo", 1)
