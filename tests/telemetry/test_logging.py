"""The invocation's log fields: bound once per call, on every line written meanwhile."""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from app.telemetry import (
    bind_call_fields,
    bound_fields,
    configure_logging,
    get_logger,
    reset_call_fields,
)


@pytest.fixture
def json_lines() -> Iterator[structlog.testing.CapturingLoggerFactory]:
    """The service's logging configuration, its rendered lines kept instead of printed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info", "json")
    captured = structlog.testing.CapturingLoggerFactory()
    structlog.configure(logger_factory=captured)
    yield captured
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


def test_lines_carry_the_call_fields_until_they_are_reset(
    json_lines: structlog.testing.CapturingLoggerFactory,
) -> None:
    log = get_logger("test")
    token = bind_call_fields({"extension": "echo", "tenant": "t1", "request_id": "r1"})
    try:
        log.info("during")
        log.info("own key", tenant="explicit")  # a line's own value wins
    finally:
        reset_call_fields(token)
    log.info("after")
    during, own, after = (json.loads(call.args[0]) for call in json_lines.logger.calls)
    assert (during["extension"], during["tenant"], during["request_id"]) == ("echo", "t1", "r1")
    assert own["tenant"] == "explicit" and own["extension"] == "echo"
    assert "extension" not in after and "request_id" not in after


def test_bound_fields_merges_structlogs_own_and_follows_a_copied_context() -> None:
    token = bind_call_fields({"extension": "echo", "version": "1.0.0"})
    try:
        with structlog.contextvars.bound_contextvars(component_hint="x"):
            copied = contextvars.copy_context()  # what an invocation keeps for its guest lines
    finally:
        reset_call_fields(token)
    assert bound_fields() == {}
    assert copied.run(bound_fields) == {
        "component_hint": "x",
        "extension": "echo",
        "version": "1.0.0",
    }
