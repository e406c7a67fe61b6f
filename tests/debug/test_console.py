"""The /debug console in a real headless Chromium (Debian's), driven by Playwright.

The browser is Debian's ``chromium`` (``make browser``), never a Playwright
download: Playwright only drives the ``/usr/bin/chromium`` it is given.
Screenshots land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import ROOT, cli_server
from tests._tokens import SECRET, caller_token

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = ROOT / "tests" / "artifacts"
ISSUER = "https://issuer.test"

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


@pytest.fixture(scope="module")
def console_url() -> Iterator[str]:
    """``serve --dev``: the console is on, auth is off."""
    with cli_server("pyvoy") as url:
        yield url


@pytest.fixture(scope="module")
def cors_url(console_url: str) -> Iterator[str]:
    """A second runtime that lets pages from ``console_url`` call it (CORS)."""
    env = {"EXTENSIONS_RUNTIME_CORS_ALLOWED_ORIGINS": f'["{console_url}"]'}
    with cli_server("pyvoy", env=env) as url:
        yield url


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 860})
            page = await context.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert not errors, f"uncaught errors in the page: {errors}"
        finally:
            await browser.close()


async def _open(page: Any, url: str) -> None:
    await page.goto(url + "/debug")
    await page.wait_for_selector("body[data-ready=true]")


async def _invoke(page: Any, *, transport: str, extension: str, data: str) -> str:
    """Fill the form, press Invoke, wait for an answer; returns the request's content type."""
    await page.select_option("#transport", transport)
    listed = await page.eval_on_selector_all("#extension option", "els => els.map(e => e.value)")
    if extension in listed:
        await page.select_option("#extension", extension)
    else:
        await page.select_option("#extension", "__other__")
        await page.fill("#extension-other", extension)
    await page.fill("#input", data)
    async with page.expect_request("**/InvokeExtension") as request_info:
        await page.click("#invoke")
    request = await request_info.value
    await page.wait_for_selector('#status[data-state="ok"], #status[data-state="error"]')
    return str(await request.header_value("content-type"))


async def test_hello_over_grpc_web(page: Any, console_url: str) -> None:
    await _open(page, console_url)
    options = await page.eval_on_selector_all("#extension option", "els => els.map(e => e.value)")
    assert {"echo", "hello", "spin", "wordcount"} <= set(options)
    content_type = await _invoke(
        page, transport="grpc-web", extension="hello", data='{"name": "Ada"}'
    )
    assert content_type.startswith("application/grpc-web")
    assert await page.get_attribute("#status", "data-state") == "ok"
    output = await page.inner_text("#output")
    assert "Hello, Ada!" in output
    assert "hello: greeting a name of 3 bytes" in await page.inner_text("#logs")
    metrics = await page.inner_text("#metrics")
    assert "fuel consumed" in metrics
    assert "peak memory" in metrics
    assert await page.inner_text("#resolved-version") == "1.0.0"
    assert len(await page.inner_text("#request-id")) == 32
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "debug-console-grpc-web.png"), full_page=True)


async def test_numbers_stay_exact(page: Any, console_url: str) -> None:
    """The page parses and shows JSON with the client's exact helpers, not JSON.parse."""
    await _open(page, console_url)
    await _invoke(
        page,
        transport="connect",
        extension="echo",
        data='{"id": 9007199254740993, "big": 12345678901234567890, "n": 1}',
    )
    output = await page.inner_text("#output")
    assert '"id": 9007199254740993' in output and '"big": 12345678901234567890' in output
    assert '"n": 1\n' in output


async def test_typed_error_over_connect(page: Any, console_url: str) -> None:
    await _open(page, console_url)
    content_type = await _invoke(page, transport="connect", extension="hello", data="[1, 2]")
    assert content_type.startswith("application/json")
    assert await page.get_attribute("#status", "data-state") == "error"
    assert await page.inner_text("#error-kind") == "TRAP"
    assert await page.inner_text("#error-code") == "aborted"
    assert "exit status 1" in await page.inner_text("#error-message")
    assert not await page.is_visible("#output")
    # The guest's own explanation comes back with the failure.
    assert "input must be a JSON object" in await page.inner_text("#logs")
    await _invoke(page, transport="grpc-web", extension="hello", data="[1, 2]")
    assert await page.inner_text("#error-kind") == "TRAP"
    assert "input must be a JSON object" in await page.inner_text("#logs")
    assert await page.inner_text("#resolved-version") == "1.0.0"  # the version that failed
    # The same typed error over gRPC-web, where it travels in headers/trailers.
    await _invoke(page, transport="grpc-web", extension="nope-missing", data="{}")
    assert await page.inner_text("#error-kind") == "NOT_FOUND"
    assert await page.inner_text("#error-code") == "not_found"
    assert await page.inner_text("#resolved-version") == "\u2013"  # nothing was resolved
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "debug-console-error.png"), full_page=True)


async def test_cross_origin_needs_cors(page: Any, console_url: str, cors_url: str) -> None:
    """A page from one runtime calls another: allowed only where CORS names its origin."""
    await _open(page, console_url)
    await page.fill("#server", cors_url)
    await page.dispatch_event("#server", "change")  # lists cors_url's extensions
    await page.wait_for_selector("body[data-ready=true]")
    content_type = await _invoke(
        page, transport="grpc-web", extension="hello", data='{"name": "Grace"}'
    )
    assert content_type.startswith("application/grpc-web")
    assert "Hello, Grace!" in await page.inner_text("#output")
    # A typed gRPC-web error across origins: readable only because Grpc-Status,
    # Grpc-Message and Grpc-Status-Details-Bin are exposed.
    await _invoke(page, transport="grpc-web", extension="hello", data="[1]")
    assert await page.inner_text("#error-kind") == "TRAP"
    # The other way round: the console runtime allows no other origin.
    await _open(page, cors_url)
    await page.fill("#server", console_url)
    await _invoke(page, transport="connect", extension="hello", data='{"name": "Ada"}')
    assert await page.get_attribute("#status", "data-state") == "error"
    assert "cors_allowed_origins" in await page.inner_text("#error-message")
    assert not await page.is_visible("#output")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "debug-console-cors-refused.png"), full_page=True)


@pytest.fixture(scope="module")
def auth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A runtime with caller auth on and the console on (not --dev)."""
    env = {
        "EXTENSIONS_RUNTIME_DEBUG_CONSOLE": "true",
        "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(ROOT / "examples" / "extensions"),
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }
    with cli_server("pyvoy", env=env, dev=False) as url:
        yield url


async def test_listing_with_auth_on_uses_the_token(page: Any, auth_url: str) -> None:
    """Without a token the page cannot list (401) but still works; with one it lists."""
    await _open(page, auth_url)
    assert "HTTP 401" in await page.inner_text("#problem")
    assert await page.eval_on_selector_all("#extension option", "els => els.length") == 1
    await page.fill("#token", caller_token(iss=ISSUER))
    await page.dispatch_event("#token", "change")  # reloads the list with the token
    await page.wait_for_selector('#extension option[value="hello"]', state="attached")
    assert await page.inner_text("#problem") == ""
    await _invoke(page, transport="grpc-web", extension="hello", data='{"name": "Ada"}')
    assert "Hello, Ada!" in await page.inner_text("#output")


@pytest.fixture(scope="module")
def rollout_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Auth on, the console on, ``rules`` 1 promoted and 2 published beside it."""
    import asyncio

    from tests.rollout.test_rollout import CONSTANT, _point, _publish
    from tests.sandbox._modules import ECHO

    root = tmp_path_factory.mktemp("rollout") / "extensions"
    asyncio.run(_publish(root, "1", ECHO))
    asyncio.run(_publish(root, "2", CONSTANT))
    _point(root, version="1")
    env = {
        "EXTENSIONS_RUNTIME_DEBUG_CONSOLE": "true",
        "EXTENSIONS_RUNTIME_AUTH_HS256_SECRET": SECRET,
        "EXTENSIONS_RUNTIME_AUTH_ISSUER": ISSUER,
        "EXTENSIONS_RUNTIME_EXTENSIONS_DIR": str(root),
        "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }
    with cli_server("pyvoy", env=env, dev=False) as url:
        yield url, root


async def _apply_rollout(page: Any, token: str, candidate: str, canary: str) -> str:
    await page.fill("#token", token)
    await page.press("#token", "Tab")  # leaving the box reloads the listing (and the form)
    await page.wait_for_selector("body[data-ready=true]")
    await page.select_option("#extension", "rules")
    if not await page.is_visible("#rollout-apply"):
        await page.click("#rollout-panel summary")
    await page.select_option("#rollout-candidate", candidate)
    await page.fill("#rollout-canary", canary)
    async with page.expect_request("**/SetRollout") as sent:
        await page.click("#rollout-apply")
    assert (await sent.value).post_data_buffer  # a real request went out
    await page.wait_for_selector("#rollout-result[data-state]")
    return str(await page.inner_text("#rollout-result"))


async def test_rollout_is_shown_and_set_through_the_admin_rpc(
    page: Any, rollout_url: tuple[str, Path]
) -> None:
    """A tenant's token is refused; an admin token sets a 100% canary of 2, which
    the page then shows and the next invocation resolves to."""
    url, root = rollout_url
    pointer = root / "rules" / "promoted.json"
    await _open(page, url)
    refused = await _apply_rollout(page, caller_token(iss=ISSUER), "2", "100")
    assert refused.startswith("Refused (permission_denied)")
    assert "candidate" not in pointer.read_text()

    admin = caller_token(iss=ISSUER, scope="extensions-runtime:admin")
    await page.evaluate("document.querySelector('#rollout-result').removeAttribute('data-state')")
    applied = await _apply_rollout(page, admin, "2", "100")
    assert applied == "Applied: candidate 2, shadow 0‰, canary 100%."
    assert '"candidate":"2"' in pointer.read_text()
    await page.wait_for_function(
        "document.querySelector('#rollout-state').textContent.includes('candidate 2')"
    )
    assert "canary 100%" in await page.inner_text("#rollout-state")
    await _invoke(page, transport="connect", extension="rules", data='{"name": "Ada"}')
    assert await page.inner_text("#resolved-version") == "2"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "debug-console-rollout.png"), full_page=True)
