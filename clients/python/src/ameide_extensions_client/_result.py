"""Requests in, results out: the Python shapes of the wire messages.

**Exact JSON.** ``google.protobuf.Value`` holds every number as a double, so an
id such as 9007199254740993 or an amount with 20 digits would be rounded on
the way. The SDK therefore never puts a caller's data in a ``Value``: a JSON
input travels as ``input_bytes`` holding its exact JSON text (the guest reads
the same UTF-8 JSON either way), and the output is asked for as bytes and
parsed here, so integers of any size come back as the ``int`` the guest wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from connectrpc.code import Code
from protobuf import Oneof
from protobuf.wkt import Value

from ameide_extensions_client._errors import InvalidInput, InvalidOutput, LogLine, Metrics
from ameide_extensions_client.gen.ameide.extensions.v1 import runtime_pb
from ameide_extensions_client.values import integral

OutputFormat = Literal["auto", "json", "bytes"]
"""``auto``: JSON when the output parses as JSON, bytes otherwise; ``json``: JSON or
``InvalidOutput``; ``bytes``: always the raw bytes."""

_OUTPUT_FORMATS = ("auto", "json", "bytes")


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
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except TypeError as exc:
            raise TypeError(
                f"input must be bytes or a JSON value (dict, list, str, number, bool, None): {exc}"
            ) from None
        except ValueError as exc:  # NaN, Infinity, a circular reference: not JSON
            raise InvalidInput(
                f"input is not JSON: {exc}",
                code=Code.INVALID_ARGUMENT,
                extension_id=extension_id,
                version=version,
                request_id=context.request_id if context is not None else "",
            ) from None
        payload = Oneof("input_bytes", text.encode())
    if output_format not in _OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {sorted(_OUTPUT_FORMATS)}")
    return runtime_pb.InvokeExtensionRequest(
        context=context,
        extension_id=extension_id,
        version=version,
        input=payload,  # type: ignore[arg-type]
        include_logs=include_logs,
        output_format=runtime_pb.OutputFormat.BYTES,  # parsed here, exactly
    )


def _exact_json(data: bytes) -> tuple[bool, Any]:
    """``(True, value)`` when ``data`` is JSON (integers exact), else ``(False, None)``."""
    try:
        return True, json.loads(data, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return False, None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def result_from_response(
    response: runtime_pb.InvokeExtensionResponse,
    request_id: str,
    output_format: OutputFormat = "auto",
) -> InvocationResult:
    """The result as the caller asked for it; ``json`` output that is not JSON raises."""
    output: Any = b""
    is_json = False
    if response.output is not None:
        if response.output.field == "output_json":  # a server that chose JSON itself
            value: Value = response.output.value
            output = integral(value.to_python())
            is_json = True
        else:
            output = bytes(response.output.value)
            if output_format != "bytes":
                is_json, parsed = _exact_json(output)
                if is_json:
                    output = parsed
                elif output_format == "json":
                    raise InvalidOutput(
                        "the extension's output is not valid JSON",
                        code=Code.FAILED_PRECONDITION,
                        request_id=request_id,
                        version=response.resolved_version,
                        metrics=Metrics.from_message(response.metrics),
                        logs=LogLine.from_messages(response.logs),
                    )
    return InvocationResult(
        output=output,
        is_json=is_json,
        resolved_version=response.resolved_version,
        metrics=Metrics.from_message(response.metrics),
        logs=LogLine.from_messages(response.logs),
        logs_truncated=response.logs_truncated,
        request_id=request_id,
    )
