"""Module storage against a real S3 server (SeaweedFS ``weed mini``), no mocks.

Publish -> invoke -> promote by signed webhook; tampered blobs; one download
and one compile for a burst of first calls; the disk cache across restarts;
storage outages; refused credentials and missing buckets on ``/readyz``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.catalog import EVENT_TYPE, SIGNATURE_HEADER, sign
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests._clients import METHOD, connect_json
from tests._s3 import SECRET_KEY
from tests._servers import BIN, cli_server, thread_server
from tests.integration._storage import EXAMPLES, WEBHOOK_SECRET, S3Bucket, example_module

ECHO = example_module("echo")
HELLO = example_module("hello")
ADA = {"name": "Ada"}
GREETING = {"greeting": "Hello, Ada!"}


def _invoke(
    url: str, extension_id: str, value: Any = ADA, version: str = "", tenant: str = ""
) -> httpx.Response:
    body: dict[str, Any] = {"extensionId": extension_id, "inputJson": value}
    if version:
        body["version"] = version
    if tenant:  # auth is off here: the context names the tenant
        body["context"] = {"tenantId": tenant}
    return connect_json(url, body)


def _ok(response: httpx.Response) -> tuple[Any, str]:
    assert response.status_code == 200, response.text
    body = response.json()
    return body.get("outputJson"), body["resolvedVersion"]


def _failure(response: httpx.Response) -> tuple[str, str]:
    """The Connect code and the InvocationError detail's kind."""
    body = response.json()
    details = body.get("details") or [{}]
    return body.get("code", ""), details[0].get("debug", {}).get("kind", "")


def _promotion_event(extension_id: str, version: str | None = None, tenant: str = "") -> bytes:
    data: dict[str, str] = {"extension_id": extension_id}
    if version:
        data["version"] = version
    if tenant:
        data["tenant_id"] = tenant
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"evt-{time.monotonic_ns()}",
            "source": "transformation/tests",
            "type": EVENT_TYPE,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


def _post_event(url: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/cloudevents+json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return httpx.post(url + "/events/promotion", content=body, headers=headers, timeout=10)


@contextmanager
def _served(settings: Settings) -> Iterator[tuple[str, Runtime]]:
    """The real app with its own Runtime under uvicorn, so the test can read its counters."""
    runtime = Runtime(settings)
    with thread_server(create_app(settings, runtime=runtime)) as url:
        yield url, runtime


@asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()


def _call(extension_id: str, data: bytes = b'{"x":1}', version: str = "") -> Invocation:
    return Invocation(
        context=ExecutionContext(tenant_id="t1"),
        extension_id=extension_id,
        version=version,
        input=data,
    )


# 1. publish (CLI) -> invoke -> publish v2 -> signed promotion event -> v2, no restart


def _cli_publish(
    s3: S3Bucket,
    module: Path,
    extension_id: str,
    version: str,
    abi: str,
    tenant: str = "",
    *,
    promote: bool = True,
) -> str:
    args = [str(BIN / "extensions-runtime"), "publish", str(module)]
    args += ["--id", extension_id, "--version", version, "--abi", abi]
    args += ["--promote"] if promote else []
    args += ["--tenant", tenant] if tenant else []
    done = subprocess.run(
        args,
        env={**os.environ, **s3.env()},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_publish_invoke_then_promote_by_webhook(s3: S3Bucket, tmp_path: Path) -> None:
    out = _cli_publish(s3, EXAMPLES / "echo" / "1.0.0" / "module.wasm", "greeter", "1", "raw")
    assert f"s3://{s3.name}/extensions/greeter/1/" in out
    log = tmp_path / "serve.log"
    with cli_server("pyvoy", env=s3.env(), dev=False, log_path=log) as url:
        assert _ok(_invoke(url, "greeter")) == (ADA, "1")

        hello = EXAMPLES / "hello" / "1.0.0" / "module.wasm"
        _cli_publish(s3, hello, "greeter", "2", "wasi-stdio", promote=False)
        # Transformation moves the pointer, then sends the event (``publish --promote``
        # would also tell the fleet through storage: tests/integration/test_fleet.py).
        asyncio.run(s3.put("greeter/promoted.json", b'{"version": "2"}'))
        # Polling is off: until the event arrives the service keeps serving v1.
        assert _ok(_invoke(url, "greeter")) == (ADA, "1")

        body = _promotion_event("greeter", "2")
        answer = _post_event(url, body, sign(body, WEBHOOK_SECRET.encode()))
        assert answer.status_code == 200, answer.text
        assert answer.json()["promoted"] == "2"
        assert answer.json()["versions"] == ["1", "2"]

        assert _ok(_invoke(url, "greeter")) == (GREETING, "2")
        # The old version stays callable by name.
        assert _ok(_invoke(url, "greeter", version="1")) == (ADA, "1")
    assert SECRET_KEY not in log.read_text(errors="replace")


def test_tenant_owned_extensions_in_the_bucket(s3: S3Bucket, tmp_path: Path) -> None:
    out = _cli_publish(s3, EXAMPLES / "echo" / "1.0.0" / "module.wasm", "rules", "1", "raw", "acme")
    assert f"s3://{s3.name}/extensions/_tenants/acme/rules/1/" in out
    _cli_publish(
        s3, EXAMPLES / "hello" / "1.0.0" / "module.wasm", "rules", "1", "wasi-stdio", "globex"
    )
    with cli_server("pyvoy", env=s3.env(), dev=False, log_path=tmp_path / "serve.log") as url:
        assert _ok(_invoke(url, "rules", tenant="acme")) == (ADA, "1")
        assert _ok(_invoke(url, "rules", tenant="globex")) == (GREETING, "1")
        assert _failure(_invoke(url, "rules", tenant="initech")) == (
            "not_found",
            "ERROR_KIND_NOT_FOUND",
        )
        # acme publishes v2 (its own, hello); the event names the owner.
        _cli_publish(
            s3, EXAMPLES / "hello" / "1.0.0" / "module.wasm", "rules", "2", "wasi-stdio", "acme"
        )
        body = _promotion_event("rules", "2", tenant="acme")
        answer = _post_event(url, body, sign(body, WEBHOOK_SECRET.encode()))
        assert answer.status_code == 200, answer.text
        assert answer.json()["tenant_id"] == "acme" and answer.json()["promoted"] == "2"
        assert _ok(_invoke(url, "rules", tenant="acme")) == (GREETING, "2")
        assert _ok(_invoke(url, "rules", tenant="globex")) == (GREETING, "1")


# 2. a blob that no longer matches its definition's digest


async def test_tampered_blob_is_data_loss_until_repaired(s3: S3Bucket) -> None:
    await s3.publish("tampered", "1", ECHO, promote=True)
    await s3.put("tampered/1/module.wasm", HELLO)  # overwritten after the definition
    with _served(s3.settings()) as (url, runtime):
        for _ in range(2):  # the mismatch is never cached, either way
            response = _invoke(url, "tampered")
            assert response.status_code == 500
            assert _failure(response) == ("data_loss", "ERROR_KIND_INTEGRITY_MISMATCH")
        stats = runtime.modules.stats
        assert (stats.integrity_failures, stats.compiles) == (2, 0)

        await s3.put("tampered/1/module.wasm", ECHO)
        assert _ok(_invoke(url, "tampered")) == (ADA, "1")
        assert (stats.integrity_failures, stats.compiles) == (2, 1)


# 3. a burst of first calls: one download, one compile


async def test_concurrent_first_calls_download_and_compile_once_over_rpc(s3: S3Bucket) -> None:
    await s3.publish("burst", "1", ECHO, promote=True)
    with _served(s3.settings(executor_queue=100)) as (url, runtime):
        body = {"extensionId": "burst", "inputJson": ADA}
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=20) as client:
            responses = await asyncio.gather(*(client.post(METHOD, json=body) for _ in range(50)))
        assert [r.status_code for r in responses] == [200] * 50
        assert all(r.json()["outputJson"] == ADA for r in responses)
        stats = runtime.modules.stats
        assert (stats.downloads, stats.compiles) == (1, 1)
        assert stats.hits + stats.misses == 50
        assert stats.misses > 1, "the requests did not overlap the load; nothing was shared"


async def test_concurrent_first_calls_in_process(s3: S3Bucket) -> None:
    await s3.publish("burst", "1", ECHO, promote=True)
    async with _runtime(s3.settings(executor_queue=100)) as runtime:
        outcomes = await asyncio.gather(*(runtime.invoke(_call("burst")) for _ in range(50)))
        assert {o.output for o in outcomes} == {b'{"x":1}'}
        stats = runtime.modules.stats
        assert (stats.misses, stats.downloads, stats.compiles) == (50, 1, 1)


# 4. a restart with a warm disk cache compiles nothing


async def test_restart_with_warm_disk_cache_does_not_compile(s3: S3Bucket) -> None:
    await s3.publish("warm", "1", ECHO, promote=True)
    settings = s3.settings()
    async with _runtime(settings) as first:
        await first.invoke(_call("warm"))
        assert (first.modules.stats.compiles, first.modules.stats.disk_hits) == (1, 0)
    assert list(settings.module_cache_dir.glob("*.cwasm"))  # type: ignore[union-attr]

    async with _runtime(settings) as second:
        outcome = await second.invoke(_call("warm"))
        assert outcome.output == b'{"x":1}'
        stats = second.modules.stats
        assert (stats.compiles, stats.disk_hits, stats.downloads) == (0, 1, 0)


# 5. storage down: cached versions keep serving, uncached ones fail fast


CALL_SLACK_S = 2.0


def _storage_budget(settings: Settings) -> float:
    """The longest one blob read may take: every attempt times out, full backoff; plus
    the call's own work, which a busy machine stretches. Without the configured
    timeouts a hung read would wait botocore's 60 s, far past this."""
    attempts = settings.s3_max_attempts
    per_attempt = settings.s3_connect_timeout_s + settings.s3_read_timeout_s
    backoff = float(sum(min(1 << i, 20) for i in range(attempts - 1)))
    return attempts * per_attempt + backoff + CALL_SLACK_S


def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _readyz(url: str) -> tuple[int, Any]:
    response = httpx.get(url + "/readyz", timeout=5)
    return response.status_code, response.json()


async def test_storage_down_serves_cached_and_fails_uncached_fast(s3: S3Bucket) -> None:
    await s3.publish("down", "1", ECHO, promote=True)
    await s3.publish("down", "2", HELLO, abi="wasi-stdio", promote=False)
    settings = s3.settings(
        s3_connect_timeout_s=0.5,
        s3_read_timeout_s=0.5,
        s3_max_attempts=2,
        catalog_poll_interval_s=0.2,
    )
    budget = _storage_budget(settings)
    with _served(settings) as (url, runtime):
        assert _ok(_invoke(url, "down")) == (ADA, "1")
        s3.server.stop()
        try:
            _wait_for(lambda: _readyz(url)[0] == 503)
            assert "storage unreachable" in _readyz(url)[1]["reasons"][0]
            time.sleep(0.3)  # a failed poll must not empty the catalog
            assert _ok(_invoke(url, "down")) == (ADA, "1")

            started = time.monotonic()
            response = _invoke(url, "down", version="2")
            elapsed = time.monotonic() - started
            assert _failure(response) == ("unavailable", "ERROR_KIND_UNAVAILABLE")
            assert elapsed < budget, f"took {elapsed:.2f}s, budget {budget:.2f}s"
        finally:
            s3.server.start()
        # A restarted server answers /healthz before its volumes serve reads
        # (InternalError meanwhile): callers retrying see it recover.
        _wait_for(lambda: _invoke(url, "down", version="2").status_code == 200, timeout=30)
        assert _ok(_invoke(url, "down", version="2")) == (GREETING, "2")
        _wait_for(lambda: _readyz(url)[0] == 200)
        assert runtime.modules.stats.compiles == 2


async def test_hung_storage_is_bounded_by_timeouts_and_deadlines(s3: S3Bucket) -> None:
    """A server that accepts connections and never answers (SIGSTOP), not one that refuses."""
    await s3.publish("hung", "1", ECHO, promote=True)
    await s3.publish("hung", "2", HELLO, abi="wasi-stdio", promote=False)
    settings = s3.settings(
        s3_connect_timeout_s=0.4,
        s3_read_timeout_s=0.4,
        s3_max_attempts=2,
        # The fleet's own listing must not meet the hung server first and mark
        # storage down for the calls measured here (tests/integration/test_fleet.py).
        fleet_sync_interval_s=60,
    )
    budget = _storage_budget(settings)
    proc = s3.server.proc
    assert proc is not None
    with _served(settings) as (url, _):
        assert _ok(_invoke(url, "hung")) == (ADA, "1")
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            assert _ok(_invoke(url, "hung")) == (ADA, "1")
            # A caller deadline shorter than the storage timeouts ends the wait first.
            response = connect_json(
                url,
                {"extensionId": "hung", "version": "2", "inputJson": ADA},
                **{"connect-timeout-ms": "150"},
            )
            # Without one, the configured storage timeouts bound it.
            started = time.monotonic()
            unavailable = _invoke(url, "hung", version="2")
            elapsed = time.monotonic() - started
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        # The 150 ms ended it before any storage timeout did (which a time bound would
        # only say on an idle machine): either the RPC's deadline answered, or the
        # wait for the version was cut at the caller's deadline ("still being
        # prepared"), never a storage timeout's "module storage is unavailable".
        answer = response.json()
        assert answer["code"] == "deadline_exceeded" or (
            answer["code"] == "unavailable" and "still being prepared" in answer["message"]
        ), response.text
        assert _failure(unavailable) == ("unavailable", "ERROR_KIND_UNAVAILABLE")
        # At least one read timeout was waited out, and no more than the budget.
        assert settings.s3_read_timeout_s <= elapsed < budget, f"{elapsed:.2f}s"
        # Storage is asked again once the outage backoff has passed.
        _wait_for(
            lambda: _invoke(url, "hung", version="2").status_code == 200,
            timeout=settings.s3_outage_backoff_s + budget,
        )
        assert _ok(_invoke(url, "hung", version="2")) == (GREETING, "2")


# 6. refused credentials and a missing bucket on /readyz, secrets never logged


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"s3_secret_access_key": "wrong-secret-never-log-me-0451"},
            "storage rejected the credentials",
        ),
        ({"s3_bucket": "no-such-bucket-here"}, "bucket 'no-such-bucket-here' does not exist"),
    ],
    ids=["bad-credentials", "missing-bucket"],
)
def test_readyz_explains_unusable_storage(
    s3: S3Bucket, tmp_path: Path, overrides: dict[str, str], reason: str
) -> None:
    log = tmp_path / "serve.log"
    env = s3.env(log_level="debug", **overrides)
    with cli_server("pyvoy", env=env, dev=False, log_path=log, wait_path="/healthz") as url:
        _wait_for(
            lambda: _readyz(url)[0] == 503 and "not started" not in _readyz(url)[1]["reasons"]
        )
        status, body = _readyz(url)
        body.pop("pid", None)
        assert (status, body) == (503, {"ready": False, "reasons": [reason]})
    text = log.read_text(errors="replace")
    assert "storage.not_ready" in text  # the log was captured, so the next check means something
    assert SECRET_KEY not in text
    assert env["EXTENSIONS_RUNTIME_S3_SECRET_ACCESS_KEY"] not in text


# 6b. a published version is immutable on S3 too, unless forced


async def test_s3_publish_never_silently_replaces_a_version(s3: S3Bucket) -> None:
    from app.catalog import PublishConflict, build_definition, publish

    def definition(wasm: bytes) -> Any:
        return build_definition(
            wasm,
            extension_id="fixed",
            version="1",
            abi="raw",
            tier="pure",
            limits={},
            host_calls=[],
            config={},
        )

    settings = s3.settings()
    await publish(settings, definition(ECHO), ECHO, promote=True)
    await publish(settings, definition(ECHO), ECHO, promote=True)  # same bytes: idempotent
    with pytest.raises(PublishConflict, match="already published with different bytes"):
        await publish(settings, definition(HELLO), HELLO, promote=True)
    async with _runtime(settings) as runtime:
        assert runtime.catalog.resolve("t1", "fixed", "1").sha256 == definition(ECHO).sha256
    await publish(settings, definition(HELLO), HELLO, promote=True, force=True)
    async with _runtime(settings) as runtime:
        assert runtime.catalog.resolve("t1", "fixed", "1").sha256 == definition(HELLO).sha256


# 7. the promotion webhook refuses what is not signed with the shared secret


async def test_promotion_webhook_refuses_bad_signatures(s3: S3Bucket) -> None:
    await s3.publish("signed", "1", ECHO, promote=True)
    with _served(s3.settings()) as (url, _):
        assert _ok(_invoke(url, "signed")) == (ADA, "1")
        # Transformation's order: the version, the pointer, then the event (the
        # in-process publish(promote=True) would also announce it to the fleet).
        await s3.publish("signed", "2", HELLO, abi="wasi-stdio", promote=False)
        await s3.put("signed/promoted.json", b'{"version": "2"}')
        body = _promotion_event("signed", "2")
        for signature in (
            sign(body, b"not-the-shared-secret"),
            sign(body + b" ", WEBHOOK_SECRET.encode()),
            "sha256=deadbeef",
            None,
        ):
            answer = _post_event(url, body, signature)
            assert answer.status_code == 401, (signature, answer.text)
        assert _ok(_invoke(url, "signed")) == (ADA, "1")
        # The same event, signed properly, is applied: the refusals were the signature's.
        assert _post_event(url, body, sign(body, WEBHOOK_SECRET.encode())).status_code == 200
        assert _ok(_invoke(url, "signed")) == (GREETING, "2")


async def test_promotion_webhook_without_a_secret_is_503(s3: S3Bucket) -> None:
    await s3.publish("unsigned", "1", ECHO, promote=True)
    with _served(s3.settings(promotion_webhook_secret=None)) as (url, _):
        await s3.publish("unsigned", "2", HELLO, abi="wasi-stdio", promote=True)
        body = _promotion_event("unsigned", "2")
        answer = _post_event(url, body, sign(body, WEBHOOK_SECRET.encode()))
        assert answer.status_code == 503
        assert "not configured" in answer.json()["error"]
        assert _ok(_invoke(url, "unsigned")) == (ADA, "1")


async def test_promotion_while_storage_is_down_is_503_and_keeps_the_catalog(
    s3: S3Bucket,
) -> None:
    await s3.publish("outage", "1", ECHO, promote=True)
    settings = s3.settings(s3_connect_timeout_s=0.5, s3_read_timeout_s=0.5, s3_max_attempts=1)
    with _served(settings) as (url, _):
        assert _ok(_invoke(url, "outage")) == (ADA, "1")
        s3.server.stop()
        try:
            body = _promotion_event("outage")
            answer = _post_event(url, body, sign(body, WEBHOOK_SECRET.encode()))
            assert answer.status_code == 503, answer.text
            assert "unavailable" in answer.json()["error"]
            assert _ok(_invoke(url, "outage")) == (ADA, "1")
        finally:
            s3.server.start()
