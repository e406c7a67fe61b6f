from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from app.catalog import Catalog, ExtensionDefinition
from app.errors import ErrorKind, InvocationFailure
from app.storage import LocalDirectorySource, owner_prefix

WASM = b"\x00asm\x01\x00\x00\x00"


def _definition(ext: str, version: str, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": ext,
        "version": version,
        "abi": "raw",
        "risk_tier": "pure",
        "wasm_blob_ref": {"key": f"{ext}/{version}/module.wasm"},
        "sha256": hashlib.sha256(WASM).hexdigest(),
    }
    body.update(over)
    return body


def _publish(
    root: Path, body: dict[str, object] | str, ext: str, version: str, owner: str = ""
) -> None:
    directory = root / owner_prefix(owner) / ext / version
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "module.wasm").write_bytes(WASM)
    text = body if isinstance(body, str) else json.dumps(body)
    (directory / "extension.json").write_text(text)


def _promote(root: Path, ext: str, version: str, owner: str = "") -> None:
    (root / owner_prefix(owner) / ext / "promoted.json").write_text(
        json.dumps({"version": version})
    )


def _owned(owner: str, ext: str, version: str, **over: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "owner": owner,
        "wasm_blob_ref": {"key": f"_tenants/{owner}/{ext}/{version}/module.wasm"},
    }
    return _definition(ext, version, **(fields | over))


async def test_resolves_promoted_and_explicit_versions(tmp_path: Path) -> None:
    _publish(tmp_path, _definition("a", "1.0.0"), "a", "1.0.0")
    _publish(tmp_path, _definition("a", "2.0.0"), "a", "2.0.0")
    _promote(tmp_path, "a", "1.0.0")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    assert await catalog.refresh() == 2
    assert catalog.resolve("t", "a").version == "1.0.0"
    assert catalog.resolve("t", "a", "2.0.0").version == "2.0.0"
    _promote(tmp_path, "a", "2.0.0")
    await catalog.refresh_extension("a")
    assert catalog.resolve("t", "a").version == "2.0.0"


async def test_bad_definitions_are_skipped_not_fatal(tmp_path: Path) -> None:
    _publish(tmp_path, _definition("good", "1"), "good", "1")
    _publish(tmp_path, "{not json", "broken", "1")
    _publish(tmp_path, _definition("extra", "1", surprise=True), "extra", "1")
    _publish(tmp_path, _definition("moved", "9"), "moved", "1")  # id/version mismatch
    _publish(
        tmp_path,
        _definition("trav", "1", wasm_blob_ref={"key": "../../etc/passwd"}),
        "trav",
        "1",
    )
    _publish(tmp_path, _definition("tier", "1", risk_tier="Root!"), "tier", "1")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    assert await catalog.refresh() == 1
    assert catalog.resolve("t", "good", "1").id == "good"
    for bad in ("broken", "extra", "moved", "trav", "tier"):
        with pytest.raises(InvocationFailure) as info:
            catalog.resolve("t", bad, "1")
        assert info.value.kind is ErrorKind.NOT_FOUND


async def test_unknown_and_unpromoted_are_not_found(tmp_path: Path) -> None:
    _publish(tmp_path, _definition("a", "1"), "a", "1")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    await catalog.refresh()
    with pytest.raises(InvocationFailure, match="no promoted version"):
        catalog.resolve("t", "a")
    with pytest.raises(InvocationFailure, match="unknown extension"):
        catalog.resolve("t", "nope")


def test_host_call_patterns_are_validated() -> None:
    good = _definition("a", "1", host_calls=["graph/GetNode"])
    assert ExtensionDefinition.from_json(json.dumps(good).encode()).host_calls == ("graph/GetNode",)
    with pytest.raises(ValueError, match="service/method"):
        ExtensionDefinition.from_json(json.dumps(_definition("a", "1", host_calls=["x"])).encode())


async def test_tenants_own_extensions_with_the_same_id(tmp_path: Path) -> None:
    for owner, version in (("acme", "1.0.0"), ("globex", "7.0.0")):
        _publish(
            tmp_path, _owned(owner, "discount-rules", version), "discount-rules", version, owner
        )
        _promote(tmp_path, "discount-rules", version, owner)
    catalog = Catalog(LocalDirectorySource(tmp_path))
    assert await catalog.refresh() == 2
    assert catalog.resolve("acme", "discount-rules").version == "1.0.0"
    assert catalog.resolve("globex", "discount-rules").version == "7.0.0"
    assert catalog.resolve("acme", "discount-rules").owner == "acme"
    # Another tenant's extension does not exist for the caller, whatever version it names.
    for tenant, version in (("initech", ""), ("acme", "7.0.0"), ("", "1.0.0")):
        with pytest.raises(InvocationFailure) as info:
            catalog.resolve(tenant, "discount-rules", version)
        assert info.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(InvocationFailure) as other:
        catalog.resolve("initech", "discount-rules")
    with pytest.raises(InvocationFailure) as nobody:
        catalog.resolve("initech", "no-such-thing")
    # The same words as for an id nobody has: existence is not revealed.
    assert other.value.message.replace("discount-rules", "X") == nobody.value.message.replace(
        "no-such-thing", "X"
    )


async def test_platform_extensions_answer_every_tenant_and_own_ones_shadow_them(
    tmp_path: Path,
) -> None:
    _publish(tmp_path, _definition("echo", "1"), "echo", "1")
    _promote(tmp_path, "echo", "1")
    _publish(tmp_path, _owned("acme", "echo", "9"), "echo", "9", "acme")
    _promote(tmp_path, "echo", "9", "acme")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    await catalog.refresh()
    assert catalog.resolve("globex", "echo").owner is None
    assert catalog.resolve("", "echo").version == "1"
    assert catalog.resolve("acme", "echo").version == "9"
    with pytest.raises(InvocationFailure):
        catalog.resolve("acme", "echo", "1")  # acme's own echo shadows every platform version
    assert set(catalog.extensions()) == {("", "echo"), ("acme", "echo")}


async def test_definitions_must_agree_with_their_owners_folder(tmp_path: Path) -> None:
    # Claims another owner than its folder.
    _publish(tmp_path, _owned("globex", "a", "1"), "a", "1", "acme")
    # An owner-less (platform) definition planted in a tenant's folder.
    _publish(tmp_path, _definition("b", "1"), "b", "1", "acme")
    # A tenant definition borrowing another tenant's module bytes.
    borrowed = _owned("acme", "c", "1", wasm_blob_ref={"key": "_tenants/globex/x/1/module.wasm"})
    _publish(tmp_path, borrowed, "c", "1", "acme")
    # A platform definition claiming an owner, and one pointing into a tenant's folder.
    _publish(tmp_path, _owned("acme", "d", "1"), "d", "1")
    _publish(
        tmp_path,
        _definition("e", "1", wasm_blob_ref={"key": "_tenants/acme/a/1/module.wasm"}),
        "e",
        "1",
    )
    _publish(tmp_path, _owned("acme", "ok", "1"), "ok", "1", "acme")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    assert await catalog.refresh() == 1
    assert set(catalog.extensions()) == {("acme", "ok")}


async def test_a_removed_tenant_folder_leaves_the_catalog(tmp_path: Path) -> None:
    import shutil

    _publish(tmp_path, _owned("acme", "a", "1"), "a", "1", "acme")
    catalog = Catalog(LocalDirectorySource(tmp_path))
    assert await catalog.refresh() == 1
    shutil.rmtree(tmp_path / "_tenants" / "acme")
    assert await catalog.refresh() == 0


@pytest.mark.parametrize(
    "over",
    [
        {"id": "a\n"},
        {"version": "1\n"},
        {"risk_tier": "pure\n"},
        {"sha256": hashlib.sha256(WASM).hexdigest() + "\n"},
        {"wasm_blob_ref": {"key": "a/1/module.wasm\n"}},
        {"host_calls": ["graph/GetNode\n"]},  # re.match(...$) let this one through
    ],
)
def test_identifiers_with_a_trailing_newline_are_refused(over: dict[str, object]) -> None:
    body = {**_definition("a", "1"), **over}
    with pytest.raises(ValueError):
        ExtensionDefinition.from_json(json.dumps(body).encode())


async def test_directories_with_a_trailing_newline_are_not_listed(tmp_path: Path) -> None:
    _publish(tmp_path, _definition("a", "1"), "a", "1")
    (tmp_path / "a\n" / "1").mkdir(parents=True)
    (tmp_path / "a" / "2\n").mkdir()
    source = LocalDirectorySource(tmp_path)
    assert await source.list_extensions() == ["a"]
    assert await source.list_versions("a") == ["1"]
