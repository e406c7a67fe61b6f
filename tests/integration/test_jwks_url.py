"""Keys from a JWKS URL on the wire: a hanging endpoint stalls nobody but the stranger.

Before, PyJWKClient fetched synchronously on the event loop for every unknown
``kid``: tokens with random key ids blocked the whole process ~5 s each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.asgi import create_app
from app.settings import Settings
from tests._clients import METHOD
from tests._servers import ROOT, thread_server
from tests._tokens import ISSUER
from tests.auth._jwks_server import JwksServer, jwks_server

BODY = {"extensionId": "echo", "inputJson": {"x": 1}}


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    yield from jwks_server()


@pytest.fixture(scope="module")
def served(jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        auth_jwks_url=jwks.url,
        auth_issuer=ISSUER,
        # Longer than the test needs: the strangers wait until it lets the endpoint answer.
        auth_jwks_timeout_s=30.0,
        auth_jwks_cooldown_s=0.0,  # every stranger may try: the fetch still is single-flight
        extensions_dir=ROOT / "examples" / "extensions",
        module_cache_dir=Path(tmp_path_factory.mktemp("cache")),
        catalog_poll_interval_s=0,
        log_invocations=False,
    )
    with thread_server(create_app(settings)) as url:
        yield url


def _call(client: httpx.Client, token: str) -> httpx.Response:
    return client.post(METHOD, json=BODY, headers={"authorization": f"Bearer {token}"})


def test_a_hanging_jwks_endpoint_delays_neither_healthz_nor_a_cached_key(
    served: str, jwks: JwksServer
) -> None:
    cached = jwks.token("k1")
    # A request stuck behind the fetch would wait for as long as the endpoint hangs;
    # this client gives up long before the fetch's 30 s timeout.
    with httpx.Client(base_url=served, timeout=10) as client:
        assert _call(client, cached).status_code == 200  # k1 is now cached
        jwks.hanging = True
        fetches = jwks.fetches
        strangers: list[int] = []

        def stranger() -> None:
            with httpx.Client(base_url=served, timeout=60) as own:
                strangers.append(_call(own, jwks.stranger()).status_code)

        threads = [threading.Thread(target=stranger) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(1500):  # the strangers' shared fetch reached the hanging endpoint
                if jwks.fetches > fetches:
                    break
                time.sleep(0.02)
            assert jwks.fetches == fetches + 1
            for _ in range(30):
                assert client.get("/healthz").status_code == 200
                response = _call(client, cached)
                assert response.status_code == 200, response.text
            # All of it answered while the strangers still waited on the hanging fetch:
            # an order, which holds however busy the machine is (a p95 bound did not).
            assert all(thread.is_alive() for thread in threads), "the strangers were not waiting"
        finally:
            jwks.hanging = False
            for thread in threads:
                thread.join(timeout=60)
    assert strangers == [401] * 4
    assert jwks.fetches == fetches + 1  # four strangers, one shared fetch
