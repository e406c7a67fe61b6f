"""Risk-tier policy: allowlist ∩ requested calls, deny by default, hot reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.hostcalls import DENY_ALL, PolicyStore, parse_policy
from tests._servers import ROOT

READ_GETS = """
tiers:
  read:
    allow: ["*/Get*", "search/Query"]
    ceilings: {timeout_ms: 3000, max_host_calls: 8}
  pure:
    allow: []
"""
READ_LISTS = """
tiers:
  read:
    allow: ["*/List*"]
"""


@pytest.mark.parametrize(
    ("tier", "requested", "target", "allowed"),
    [
        ("read", ("graph/GetNode",), "graph/GetNode", True),
        ("read", ("graph/*",), "graph/GetEdge", True),  # requested by pattern
        ("read", ("graph/GetNode",), "graph/GetEdge", False),  # tier allows, not requested
        ("read", ("graph/DeleteNode",), "graph/DeleteNode", False),  # requested, tier refuses
        ("read", ("search/Query",), "search/Query", True),
        ("read", ("search/Query",), "search/QueryAll", False),  # exact pattern
        ("read", (), "graph/GetNode", False),  # nothing requested
        ("pure", ("graph/GetNode",), "graph/GetNode", False),  # empty allowlist
        ("admin", ("graph/GetNode",), "graph/GetNode", False),  # unknown tier
    ],
)
def test_allows_is_the_intersection(
    tier: str, requested: tuple[str, ...], target: str, allowed: bool
) -> None:
    service, method = target.split("/")
    assert parse_policy(READ_GETS).allows(tier, requested, service, method) is allowed


def test_deny_all_and_unknown_tier() -> None:
    assert not DENY_ALL.allows("read", ("graph/GetNode",), "graph", "GetNode")
    policy = parse_policy(READ_GETS)
    assert policy.tier("nope") is None
    assert not policy.allows("nope", ("*/*",), "graph", "GetNode")


def test_tier_ceilings_are_parsed() -> None:
    tier = parse_policy(READ_GETS).tier("read")
    assert tier is not None
    assert tier.ceilings.timeout_ms == 3000
    assert tier.ceilings.max_host_calls == 8
    assert tier.ceilings.fuel is None
    assert tier.real_clock_and_random is False


@pytest.mark.parametrize(
    "text",
    [
        "tiers: {read: {allow: ['graph']}}",  # not service/method
        "tiers: {read: {allow: ['graph/Get/Node']}}",
        "tiers: {Read: {allow: []}}",  # tier names are lower case
        "tiers: {read: {allow: [], surprise: 1}}",
        "tiers: {read: {ceilings: {timeout_ms: 0}}}",
        "[1, 2]",
    ],
)
def test_invalid_documents_are_refused(text: str) -> None:
    with pytest.raises((ValueError, ValidationError)):
        parse_policy(text)


def test_json_is_accepted() -> None:
    policy = parse_policy(json.dumps({"tiers": {"read": {"allow": ["graph/GetNode"]}}}))
    assert policy.allows("read", ("graph/GetNode",), "graph", "GetNode")


def test_the_shipped_tiers_let_enrich_read_the_graph() -> None:
    policy = parse_policy((ROOT / "config" / "risk-tiers.yaml").read_text())
    definition = json.loads(
        (ROOT / "examples" / "extensions" / "enrich" / "1.0.0" / "extension.json").read_text()
    )
    requested = tuple(definition["host_calls"])
    assert policy.allows(definition["risk_tier"], requested, "graph", "GetNode")
    assert not policy.allows(definition["risk_tier"], requested, "graph", "UpsertNode")
    assert not policy.allows("pure", requested, "graph", "GetNode")


def test_hot_reload_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(READ_GETS)
    store = PolicyStore(path, check_interval_s=0)
    assert store.current().allows("read", ("graph/GetNode",), "graph", "GetNode")

    path.write_text(READ_LISTS)
    policy = store.current()
    assert not policy.allows("read", ("graph/GetNode",), "graph", "GetNode")
    assert policy.allows("read", ("graph/ListNodes",), "graph", "ListNodes")
    assert store.reload_failures == 0


def test_a_snapshot_does_not_change_under_its_reader(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(READ_GETS)
    store = PolicyStore(path, check_interval_s=0)
    snapshot = store.current()
    path.write_text(READ_LISTS)
    store.current()
    assert snapshot.allows("read", ("graph/GetNode",), "graph", "GetNode")


def test_a_bad_file_keeps_the_last_good_policy(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(READ_GETS)
    store = PolicyStore(path, check_interval_s=0)
    good = store.current()

    path.write_text("tiers: {read: [unclosed")
    assert store.current() is good
    assert store.reload_failures == 1
    assert store.last_error is not None

    path.write_text("tiers: {read: {allow: ['not a pattern']}}\n")
    assert store.current() is good
    assert store.reload_failures == 2

    path.unlink()
    assert store.current() is good
    assert store.reload_failures == 3

    path.write_text(READ_LISTS)
    assert store.current().allows("read", ("x/ListY",), "x", "ListY")
    assert store.last_error is None


def test_a_missing_file_at_start_denies_everything(tmp_path: Path) -> None:
    store = PolicyStore(tmp_path / "absent.yaml", check_interval_s=0)
    assert store.current() is DENY_ALL
    assert store.reload_failures >= 1


def test_no_file_means_deny_all() -> None:
    assert PolicyStore(None).current() is DENY_ALL


def test_the_change_check_is_rate_limited(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(READ_GETS)
    store = PolicyStore(path, check_interval_s=3600)
    store.current()
    path.write_text(READ_LISTS)
    # Within the interval the file is not even looked at.
    assert store.current().allows("read", ("graph/GetNode",), "graph", "GetNode")


def test_a_bad_file_is_counted_once_while_it_stays(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(READ_GETS)
    store = PolicyStore(path, check_interval_s=0)
    path.write_text("tiers: {read: [unclosed")
    for _ in range(5):
        store.current()
    assert store.reload_failures == 1
    path.unlink()
    for _ in range(5):
        store.current()
    assert store.reload_failures == 2
    path.write_text(READ_LISTS)
    assert store.current().allows("read", ("x/ListY",), "x", "ListY")
    assert store.reload_failures == 2


@pytest.mark.parametrize(
    "text",
    [
        'tiers: {"read\\n": {allow: []}}',
        'tiers: {read: {allow: ["graph/Get*\\n"]}}',
    ],
)
def test_names_with_a_trailing_newline_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_policy(text)
