"""Requests in, results out: the Python shapes of the wire messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from protobuf import Oneof
from protobuf.wkt import Value

from app._values import integral
from app.client._errors import LogLine, Metrics
from app.gen.ameide.extensions.v1 import runtime_pb

OutputFormat = Literal["auto", "json", "bytes"]
"""``auto``: JSON when the output parses as JSON, bytes otherwise; ``json``: JSON or
``InvalidOutput``; ``bytes``: always the raw bytes."""

_OUTPUT_FORMATS = {
    "auto": runtime_pb.OutputFormat.UNSPECIFIED,
    "json": runtime_pb.OutputFormat.JSON,
    "bytes": runtime_pb.OutputFormat.BYTES,
}


class _NoInput:
    """The ``input`` default: the guest reads empty input."""

    def __repr__(self) -> str:
        return "NO_INPUT"


NO_INPUT: Any = _NoInput()


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """A successful invocation."""

    output: Any
    """The output as a JSON value (dict, list, str, int, float, bool, None) when it is
    JSON, else the raw bytes; ``is_json`` tells which."""
    is_json: bool
    resolved_version: str
    metrics: Metrics
    logs: tuple[LogLine, ...]
    logs_truncated: bool
    request_id: str

    @property
    def output_bytes(self) -> bytes:
        """The output as bytes (JSON output re-serialized compactly)."""
        if self.is_json:
            return json.dumps(self.output, separators=(",", ":"), ensure_ascii=False).encode()
        data: bytes = self.output
        return data


def build_request(
    extension_id: str,
    data: Any,
    *,
    context: runtime_pb.ExecutionContext | None,
    version: str,
    include_logs: bool,
    output_format: OutputFormat,
) -> runtime_pb.InvokeExtensionRequest:
    """The wire request: ``bytes`` become ``input_bytes``, anything else ``input_json``."""
    payload: Oneof[str, Any] | None
    if data is NO_INPUT:
        payload = None
    elif isinstance(data, bytes | bytearray | memoryview):
        payload = Oneof("input_bytes", bytes(data))
    else:
        try:
            payload = Oneof("input_json", Value.from_python(data))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"input must be bytes or a JSON value (dict, list, str, number, bool, None): {exc}"
            ) from None
    try:
        fmt = _OUTPUT_FORMATS[output_format]
    except KeyError:
        raise ValueError(f"output_format must be one of {sorted(_OUTPUT_FORMATS)}") from None
    return runtime_pb.InvokeExtensionRequest(
        context=context,
        extension_id=extension_id,
        version=version,
        input=payload,  # type: ignore[arg-type]
        include_logs=include_logs,
        output_format=fmt,
    )


def result_from_response(
    response: runtime_pb.InvokeExtensionResponse, request_id: str
) -> InvocationResult:
    output: Any = b""
    is_json = False
    if response.output is not None:
        if response.output.field == "output_json":
            value: Value = response.output.value
            output = integral(value.to_python())
            is_json = True
        else:
            output = bytes(response.output.value)
    return InvocationResult(
        output=output,
        is_json=is_json,
        resolved_version=response.resolved_version,
        metrics=Metrics.from_message(response.metrics),
        logs=LogLine.from_messages(response.logs),
        logs_truncated=response.logs_truncated,
        request_id=request_id,
    )
