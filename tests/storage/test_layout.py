"""The storage layout: every key the sources read and ``publish`` writes comes from here."""

from __future__ import annotations

from app.storage import (
    PLATFORM,
    definition_key,
    in_owners_tree,
    module_key,
    owner_prefix,
    promoted_key,
    version_prefix,
)


def test_platform_extensions_live_at_the_root() -> None:
    assert owner_prefix(PLATFORM) == ""
    assert definition_key(PLATFORM, "echo", "1.0.0") == "echo/1.0.0/extension.json"
    assert promoted_key(PLATFORM, "echo") == "echo/promoted.json"
    assert module_key(PLATFORM, "echo", "1.0.0") == "echo/1.0.0/module.wasm"
    assert version_prefix(PLATFORM, "echo", "1.0.0") == "echo/1.0.0/"


def test_a_tenants_extensions_live_in_its_own_folder() -> None:
    assert owner_prefix("acme") == "_tenants/acme/"
    assert definition_key("acme", "rules", "2") == "_tenants/acme/rules/2/extension.json"
    assert promoted_key("acme", "rules") == "_tenants/acme/rules/promoted.json"
    assert module_key("acme", "rules", "2") == "_tenants/acme/rules/2/module.wasm"


def test_a_key_is_in_one_owners_tree_only() -> None:
    assert in_owners_tree("_tenants/acme/rules/2/module.wasm", "acme")
    assert not in_owners_tree("_tenants/acme/rules/2/module.wasm", "globex")
    assert not in_owners_tree("_tenants/acme/rules/2/module.wasm", PLATFORM)
    assert not in_owners_tree("_tenants/acmeco/x/1/module.wasm", "acme")
    assert in_owners_tree("echo/1.0.0/module.wasm", PLATFORM)
    assert not in_owners_tree("echo/1.0.0/module.wasm", "acme")
