"""Traces and structured logs of real invocations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.errors import InvocationFailure
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._clients import connect_json
from tests._servers import ROOT, cli_server, thread_server

EXAMPLES = ROOT / "examples" / "extensions"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_invocation_span_tree(spans: InMemorySpanExporter) -> None:
    runtime = Runtime(Settings(auth_enabled=False, extensions_dir=EXAMPLES))
    await runtime.start()
    try:
        spans.clear()
        context = ExecutionContext(tenant_id="t1", request_id="r-42")
        await runtime.invoke(Invocation(context, "echo", "", b'{"a":1}'))
        with pytest.raises(InvocationFailure):
            await runtime.invoke(Invocation(context, "spin", "", b"99999999999"))
    finally:
        await runtime.close()
    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.name == "extension.invoke"]
    assert len(roots) == 2
    ok, failed = roots
    assert ok.attributes is not None and failed.attributes is not None
    assert ok.attributes["ameide.extension"] == "echo"
    assert ok.attributes["ameide.version"] == "1.0.0"
    assert ok.attributes["ameide.tenant"] == "t1"
    assert ok.attributes["ameide.request_id"] == "r-42"
    children = {s.name for s in finished if s.parent and s.parent.span_id == ok.context.span_id}
    assert children == {"module.load", "sandbox.run"}
    assert failed.attributes["ameide.error_kind"] in {"FUEL_EXHAUSTED", "TIMEOUT"}
    assert not failed.status.is_ok


def test_logs_are_json_with_invocation_fields(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    with cli_server("pyvoy", log_path=log) as url:
        body = {
            "context": {"tenantId": "t7", "organizationId": "o7", "requestId": "req-77"},
            "extensionId": "hello",
            "inputJson": {"name": "Ada"},
        }
        assert connect_json(url, body).status_code == 200
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records, "the service wrote no JSON log lines"
    guest = [r for r in records if r.get("event") == "guest_log"]
    assert guest, records
    line = guest[0]
    assert line["tenant"] == "t7"
    assert line["organization"] == "o7"
    assert line["request_id"] == "req-77"
    assert line["extension"] == "hello"
    assert line["version"] == "1.0.0"
    assert "timestamp" in line and "level" in line
    assert line["guest"] is True
    (done,) = [r for r in records if r.get("event") == "invocation"]
    assert done["outcome"] == "ok" and done["extension"] == "hello"
    assert done["tenant"] == "t7" and done["request_id"] == "req-77"
    assert done["duration_us"] > 0
    assert "Ada" not in json.dumps(done), "payload content leaked into the log"


async def test_host_calls_carry_the_invocation_trace(spans: InMemorySpanExporter) -> None:
    """The upstream joins the invocation's trace: ``traceparent`` names its trace and span."""
    seen: list[dict[str, str]] = []

    async def get_node(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse({"id": "n1"})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({})

    upstream = Starlette(
        routes=[
            Route("/graph/GetNode", get_node, methods=["POST"]),
            Route("/readyz", ready, methods=["GET"]),
        ]
    )
    with thread_server(upstream) as url:
        runtime = Runtime(
            Settings(
                auth_enabled=False,
                extensions_dir=EXAMPLES,
                policy_file=ROOT / "config" / "risk-tiers.yaml",
                hostcall_services={"graph": url},
                dev=True,  # HS256 host-call tokens are dev-only
                hostcall_token_secret=SecretStr("trace-test-secret-0123456789abcdef0123"),
            )
        )
        await runtime.start()
        try:
            spans.clear()
            context = ExecutionContext(tenant_id="t1", request_id="r-trace")
            outcome = await runtime.invoke(Invocation(context, "enrich", "", b'{"id": "n1"}'))
        finally:
            await runtime.close()
    assert outcome.metrics.host_calls == 1
    assert len(seen) == 1
    version, trace_id, parent_id, _flags = seen[0]["traceparent"].split("-")
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.name == "extension.invoke"]
    (host_call,) = [s for s in finished if s.name == "host_call"]
    assert version == "00"
    assert int(trace_id, 16) == root.context.trace_id == host_call.context.trace_id
    assert int(parent_id, 16) == host_call.context.span_id  # the upstream's parent is the call
