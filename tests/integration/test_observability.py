"""Traces and structured logs of real invocations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.errors import InvocationFailure
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._clients import connect_json
from tests._servers import ROOT, cli_server

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
