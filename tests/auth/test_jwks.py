"""JWKS keys from a URL: fetched asynchronously, single-flight, bounded, refreshed ahead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from app.auth import Authenticator, AuthError, Unauthenticated
from app.settings import Settings
from tests._tokens import ISSUER
from tests.auth._jwks_server import JwksServer, jwks_server

pytestmark = pytest.mark.integration  # real HTTP servers


@pytest.fixture
def server() -> Iterator[JwksServer]:
    yield from jwks_server()


def _auth(server: JwksServer, **over: float) -> Authenticator:
    values = {"auth_jwks_timeout_s": 1.0, "auth_jwks_cooldown_s": 30.0, **over}
    settings = Settings(auth_jwks_url=server.url, auth_issuer=ISSUER, **values)  # type: ignore[arg-type]
    return Authenticator(settings)


async def test_keys_are_fetched_once_and_then_served_from_the_cache(server: JwksServer) -> None:
    auth = _auth(server)
    token = "Bearer " + server.token("k1")
    for _ in range(20):
        principal = await auth.authenticate_async(token)
        assert principal is not None and principal.tenant_id == "t1"
    assert server.fetches == 1


async def test_concurrent_first_requests_share_one_fetch(server: JwksServer) -> None:
    auth = _auth(server)
    token = "Bearer " + server.token("k1")
    principals = await asyncio.gather(*(auth.authenticate_async(token) for _ in range(30)))
    assert all(p is not None and p.subject == "u1" for p in principals)
    assert server.fetches == 1


async def test_an_unknown_kid_storm_costs_one_fetch_per_cooldown(server: JwksServer) -> None:
    auth = _auth(server)
    assert await auth.authenticate_async("Bearer " + server.token("k1")) is not None
    storm = [auth.authenticate_async("Bearer " + server.stranger()) for _ in range(50)]
    results = await asyncio.gather(*storm, return_exceptions=True)
    assert all(isinstance(r, Unauthenticated) for r in results)
    assert server.fetches == 2  # the first key, then one fetch for the whole storm
    started = time.monotonic()
    for _ in range(20):  # still within the cooldown: refused at once, nothing fetched
        with pytest.raises(AuthError, match="unknown key"):
            await auth.authenticate_async("Bearer " + server.stranger())
    assert server.fetches == 2
    assert time.monotonic() - started < 1.0
    # A token forged with another key under a known kid is still refused (by signature).
    server.add_key("forger")
    with pytest.raises(AuthError, match="invalid"):
        await auth.authenticate_async("Bearer " + server.token("k1", sign_with="forger"))


async def test_a_hanging_endpoint_delays_neither_cached_keys_nor_the_loop(
    server: JwksServer,
) -> None:
    auth = _auth(server, auth_jwks_timeout_s=3.0)
    cached = "Bearer " + server.token("k1")
    assert await auth.authenticate_async(cached) is not None
    server.hanging = True
    waiting = asyncio.ensure_future(auth.authenticate_async("Bearer " + server.stranger()))
    for _ in range(100):
        if server.fetches == 2:
            break
        await asyncio.sleep(0.01)
    assert server.fetches == 2 and not waiting.done()  # the fetch hangs
    slowest = 0.0
    for _ in range(50):
        started = time.monotonic()
        assert await auth.authenticate_async(cached) is not None
        await asyncio.sleep(0.005)  # the loop itself keeps turning
        slowest = max(slowest, time.monotonic() - started)
    assert not waiting.done()
    assert slowest < 0.5, f"a cached key waited {slowest:.3f} s behind a hanging fetch"
    with pytest.raises(AuthError, match="unknown key"):
        await waiting  # bounded by the fetch timeout
    assert await auth.authenticate_async(cached) is not None  # the cache survived the failure


async def test_old_keys_are_refreshed_ahead_without_waiting(server: JwksServer) -> None:
    auth = _auth(server, auth_jwks_refresh_s=0.2, auth_jwks_cooldown_s=0.0)
    cached = "Bearer " + server.token("k1")
    assert await auth.authenticate_async(cached) is not None
    server.add_key("k2")  # rotation: a new key appears
    server.hanging = True
    await asyncio.sleep(0.3)
    started = time.monotonic()
    assert await auth.authenticate_async(cached) is not None  # starts a refresh, does not wait
    assert time.monotonic() - started < 0.2
    await asyncio.sleep(0.1)
    assert server.fetches == 2
    server.hanging = False
    rotated = "Bearer " + server.token("k2")
    for _ in range(40):  # the background refresh completes; verifying reads only the cache
        try:
            principal = auth.authenticate(rotated)
        except AuthError:
            await asyncio.sleep(0.05)
        else:
            break
    assert principal is not None and principal.tenant_id == "t1"
    assert server.fetches == 2  # picked up by the refresh ahead, not by a fetch on demand
