"""The SDK against the running service: values in, values out, on every protocol."""

from __future__ import annotations

import pytest
from ameide_extensions_client import (
    ExecutionContext,
    ExtensionsClient,
    ExtensionsClientSync,
    InvocationResult,
)

PROTOCOLS = ["connect", "grpc", "grpc-web"]


def _check_hello(result: InvocationResult) -> None:
    assert result.output == {"greeting": "Hello, Ada!"}
    assert result.is_json
    assert result.resolved_version == "1.0.0"
    assert result.metrics.fuel_consumed > 0
    assert result.metrics.duration_us > 0
    assert result.metrics.peak_memory_bytes > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_async_invoke(url: str, protocol: str) -> None:
    async with ExtensionsClient(url, protocol=protocol) as client:  # type: ignore[arg-type]
        result = await client.invoke("hello", {"name": "Ada"}, include_logs=True)
    _check_hello(result)
    assert [(line.level, line.message) for line in result.logs] == [
        ("info", "hello: greeting a name of 3 bytes")
    ]
    assert not result.logs_truncated


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("json", [False, True])
def test_sync_invoke(url: str, protocol: str, json: bool) -> None:
    with ExtensionsClientSync(url, protocol=protocol, json=json) as client:  # type: ignore[arg-type]
        _check_hello(client.invoke("hello", {"name": "Ada"}))
        # Integers stay integers although google.protobuf.Value carries doubles.
        counted = client.invoke("wordcount", {"text": "one two\nthree"})
    assert counted.output == {"words": 3, "lines": 2, "bytes": 13}
    assert all(isinstance(v, int) for v in counted.output.values())


async def test_bytes_in_bytes_out(url: str) -> None:
    async with ExtensionsClient(url) as client:
        echoed = await client.invoke("echo", b"\x00\xffraw", output_format="bytes")
        as_json = await client.invoke("echo", b'{"a": [1, 2.5, null, true]}')
        text = await client.invoke("echo", b"plain text")
    assert echoed.output == b"\x00\xffraw"
    assert not echoed.is_json
    assert echoed.output_bytes == b"\x00\xffraw"
    assert as_json.output == {"a": [1, 2.5, None, True]}
    assert as_json.is_json
    assert text.output == b"plain text"
    assert not text.is_json


async def test_version_and_no_input(url: str) -> None:
    async with ExtensionsClient(url) as client:
        result = await client.invoke("hello", version="1.0.0")
    assert result.output == {"greeting": "Hello, World!"}
    assert result.resolved_version == "1.0.0"


async def test_request_id_is_the_callers_or_a_fresh_one(url: str) -> None:
    async with ExtensionsClient(url, caller="sdk-test") as client:
        given = await client.invoke(
            "echo", 1, context=ExecutionContext(tenant_id="t1", request_id="req-sdk-1")
        )
        fresh = await client.invoke("echo", 1)
    assert given.request_id == "req-sdk-1"
    assert len(fresh.request_id) == 32
    assert fresh.request_id != given.request_id


def test_unsupported_input_is_refused_before_sending(url: str) -> None:
    with ExtensionsClientSync(url) as client, pytest.raises(TypeError, match="JSON value"):
        client.invoke("echo", {1, 2})
    with pytest.raises(ValueError, match="protocol"):
        ExtensionsClientSync(url, protocol="http3")  # type: ignore[arg-type]
