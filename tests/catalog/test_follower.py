"""Following storage: readiness, retry-later while storage is down, one reload at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.catalog import Catalog, CatalogFollower
from app.errors import ErrorKind, InvocationFailure
from app.storage import LocalDirectorySource


async def test_unknown_while_storage_is_down_is_retry_later_not_not_found(
    tmp_path: Path,
) -> None:
    follower = CatalogFollower(
        Catalog(LocalDirectorySource(tmp_path / "missing")), poll_interval_s=0
    )
    await follower.start()
    try:
        assert follower.readiness()  # the reason is reported by /readyz
        with pytest.raises(InvocationFailure) as info:
            follower.resolve("t", "anything", "")
        assert info.value.kind is ErrorKind.UNAVAILABLE
    finally:
        await follower.close()


async def test_unknown_with_storage_up_is_not_found(tmp_path: Path) -> None:
    follower = CatalogFollower(Catalog(LocalDirectorySource(tmp_path)), poll_interval_s=0)
    await follower.start()
    assert follower.readiness() == []
    with pytest.raises(InvocationFailure) as info:
        follower.resolve("t", "anything", "")
    assert info.value.kind is ErrorKind.NOT_FOUND
    await follower.close()


async def test_concurrent_reloads_of_one_extension_share_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog(LocalDirectorySource(tmp_path))
    follower = CatalogFollower(catalog, poll_interval_s=0)
    reloads: list[tuple[str, str]] = []
    release = asyncio.Event()

    async def reload(extension_id: str, owner: str = "") -> None:
        reloads.append((owner, extension_id))
        await release.wait()

    monkeypatch.setattr(catalog, "refresh_extension", reload)
    waiting = [asyncio.create_task(follower.refresh_extension("a")) for _ in range(3)]
    other = asyncio.create_task(follower.refresh_extension("b"))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*waiting, other)
    assert sorted(reloads) == [("", "a"), ("", "b")]
