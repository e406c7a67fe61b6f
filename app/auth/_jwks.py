"""Signing keys from a JWKS URL: fetched asynchronously, once at a time, bounded.

PyJWKClient fetches synchronously, on the event loop, on every unknown ``kid``:
tokens with made-up key ids blocked the whole process ~5 s per request. Here
verification only ever reads the cache (:meth:`JwksCache.key`); fetching is a
separate, awaited step (:meth:`JwksCache.ensure`) that

* is single-flight: concurrent callers share one fetch;
* is bounded: one fetch takes at most ``timeout_s``, a response at most
  :data:`MAX_JWKS_BYTES`, and unknown key ids (or a failed fetch) trigger at
  most one fetch per ``cooldown_s`` (a storm of random key ids costs one fetch,
  then fails at once);
* refreshes ahead: keys older than ``refresh_s`` are re-fetched in the
  background while the cached ones keep verifying, so rotation is picked up
  without a request ever waiting on it.

A request whose key is cached never waits for a fetch, even one that hangs.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from app._singleflight import SingleFlight
from app.telemetry import get_logger

__all__ = ["MAX_JWKS_BYTES", "JwksCache"]

_log = get_logger("app.auth")
MAX_JWKS_BYTES = 256 * 1024
"""Largest JWKS document accepted."""


class JwksCache:
    """The keys of one JWKS URL, by ``kid``."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        refresh_s: float,
        cooldown_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._timeout = timeout_s
        self._refresh = refresh_s
        self._cooldown = cooldown_s
        self._transport = transport
        self._tls = ssl.create_default_context()  # once: building one costs milliseconds
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        # Last fetch started for an unknown kid, or that failed: the cooldown runs from it.
        # (The first load is not one: a new kid right after it still gets its fetch.)
        self._missed_at: float | None = None
        self._fetching: SingleFlight[None, None] = SingleFlight()
        self.fetches = 0

    def key(self, kid: str | None) -> PyJWK | None:
        """The cached key with this id; never fetches."""
        return self._keys.get(kid) if kid is not None else None

    async def ensure(self, kid: str | None) -> None:
        """Make ``kid``'s key cached if the URL has it, within the bounds above.

        Returns at once when the key is cached (starting a background refresh
        when the keys are old) or when an unknown key was looked for less than
        ``cooldown_s`` ago; otherwise waits for the one shared fetch.
        """
        now = time.monotonic()
        if kid is not None and kid in self._keys:
            if self._fetched_at is not None and now - self._fetched_at >= self._refresh:
                self._start()  # refresh ahead; this request does not wait
            return
        fetching = self._fetching.running(None)
        recent = self._missed_at is not None and now - self._missed_at < self._cooldown
        if not fetching and recent:
            return  # an unknown kid storm: one fetch per cooldown, then refuse at once
        if not fetching and self._keys:
            self._missed_at = now  # a fetch for a kid the keys we have do not name
        await self._fetching.wait(None, self._fetch)  # a caller leaving cancels no one's fetch

    def _start(self) -> None:
        self._fetching.start(None, self._fetch)

    async def _fetch(self) -> None:
        """One bounded fetch; any failure keeps the keys already cached."""
        self.fetches += 1
        try:
            async with asyncio.timeout(self._timeout):
                document = await self._download()
            keys = PyJWKSet.from_dict(document).keys
        except (TimeoutError, httpx.HTTPError, ValueError, PyJWKError, PyJWKSetError) as exc:
            _log.warning("auth.jwks_fetch_failed", error=type(exc).__name__)
            self._missed_at = time.monotonic()
            return
        self._keys = {key.key_id: key for key in keys if key.key_id}
        self._fetched_at = time.monotonic()
        _log.info("auth.jwks_fetched", keys=len(self._keys))

    async def _download(self) -> Any:
        async with (
            httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                verify=self._tls,
                transport=self._transport,
            ) as client,
            client.stream("GET", self._url, headers={"accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS document too large")
        document = json.loads(bytes(body))
        if not isinstance(document, dict):
            raise ValueError("a JWKS document is a JSON object")
        return document
