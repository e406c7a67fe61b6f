"""The one settings object: dev defaults live in it, however dev is turned on."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import DEV_DEFAULTS, DEV_EXTENSIONS_DIR, Settings
from tests._clients import connect_json
from tests._servers import cli_server


def test_dev_defaults_apply_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTENSIONS_RUNTIME_DEV", "true")
    settings = Settings()
    assert settings.dev and not settings.auth_enabled
    assert settings.debug_console and settings.extensions_dir == DEV_EXTENSIONS_DIR
    assert settings.policy_file == DEV_DEFAULTS["policy_file"]


def test_explicit_settings_win_over_dev_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTENSIONS_RUNTIME_LOG_FORMAT", "json")
    settings = Settings(dev=True, extensions_dir=Path("/elsewhere"))
    assert settings.log_format == "json"
    assert settings.extensions_dir == Path("/elsewhere")
    assert Settings(dev=True, s3_endpoint_url="http://s3.local").extensions_dir is None


def test_without_dev_nothing_is_relaxed() -> None:
    settings = Settings()
    assert settings.auth_enabled and not settings.debug_console
    assert settings.extensions_dir is None


@pytest.mark.integration
def test_serve_with_dev_from_the_environment_starts_and_answers() -> None:
    with cli_server("pyvoy", env={"EXTENSIONS_RUNTIME_DEV": "true"}, dev=False) as url:
        response = connect_json(url, {"extensionId": "echo", "inputJson": {"a": 1}})
        assert response.status_code == 200, response.text
        assert response.json()["outputJson"] == {"a": 1}
