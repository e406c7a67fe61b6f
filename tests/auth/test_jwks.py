"""JWKS keys from a URL: fetched asynchronously, single-flight, bounded, refreshed ahead."""

from __future__ import annotations

import asyncio
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
    for _ in range(20):  # still within the 30 s cooldown: refused, nothing fetched
        with pytest.raises(AuthError, match="unknown key"):
            await auth.authenticate_async("Bearer " + server.stranger())
    assert server.fetches == 2
    # A token forged with another key under a known kid is still refused (by signature).
    server.add_key("forger")
    with pytest.raises(AuthError, match="invalid"):
        await auth.authenticate_async("Bearer " + server.token("k1", sign_with="forger"))


async def test_a_hanging_endpoint_delays_neither_cached_keys_nor_the_loop(
    server: JwksServer,
) -> None:
    # The fetch may take up to 30 s: a cached key that waited behind it would still be
    # waiting when the fetch ends, and these checks are about that order, not speed.
    auth = _auth(server, auth_jwks_timeout_s=30.0)
    cached = "Bearer " + server.token("k1")
    assert await auth.authenticate_async(cached) is not None
    server.hanging = True
    waiting = asyncio.ensure_future(auth.authenticate_async("Bearer " + server.stranger()))
    for _ in range(3000):
        if server.fetches == 2:
            break
        await asyncio.sleep(0.01)
    assert server.fetches == 2 and not waiting.done()  # the fetch hangs
    for _ in range(50):
        # Fails rather than hangs; a wait behind the fetch would outlast this bound.
        assert await asyncio.wait_for(auth.authenticate_async(cached), 10) is not None
        await asyncio.sleep(0.005)  # the loop itself keeps turning
    # Every cached call was answered while the fetch still hung: an order, not a time.
    assert not waiting.done()
    server.hanging = False
    with pytest.raises(AuthError, match="unknown key"):
        await waiting  # the fetch came back without the stranger's key
    assert await auth.authenticate_async(cached) is not None  # the cache survived


async def test_old_keys_are_refreshed_ahead_without_waiting(server: JwksServer) -> None:
    # A fetch may hang for 30 s, so a call that waited for the refresh could not return
    # before the test lets the endpoint answer.
    auth = _auth(
        server, auth_jwks_refresh_s=0.2, auth_jwks_cooldown_s=0.0, auth_jwks_timeout_s=30.0
    )
    cached = "Bearer " + server.token("k1")
    assert await auth.authenticate_async(cached) is not None
    server.add_key("k2")  # rotation: a new key appears
    server.hanging = True
    await asyncio.sleep(0.3)
    # Starts a refresh and does not wait for it: answered while the refresh still hangs.
    assert await asyncio.wait_for(auth.authenticate_async(cached), 10) is not None
    for _ in range(3000):
        if server.fetches == 2:
            break
        await asyncio.sleep(0.01)
    assert server.fetches == 2
    server.hanging = False
    rotated = "Bearer " + server.token("k2")
    for _ in range(600):  # the background refresh completes; verifying reads only the cache
        try:
            principal = auth.authenticate(rotated)
        except AuthError:
            await asyncio.sleep(0.05)
        else:
            break
    assert principal is not None and principal.tenant_id == "t1"
    assert server.fetches == 2  # picked up by the refresh ahead, not by a fetch on demand
