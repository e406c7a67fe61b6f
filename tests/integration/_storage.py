"""Buckets on a real S3 server for the storage tests, and the settings that use them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
from pydantic import SecretStr

from app.catalog import build_definition, publish
from app.settings import Settings
from tests._s3 import ACCESS_KEY, SECRET_KEY, SeaweedS3
from tests._servers import ROOT

EXAMPLES = ROOT / "examples" / "extensions"
WEBHOOK_SECRET = "promotion-webhook-secret-for-tests"


def example_module(name: str) -> bytes:
    return (EXAMPLES / name / "1.0.0" / "module.wasm").read_bytes()


@dataclass
class S3Bucket:
    """One fresh bucket on the shared server, and the settings that point at it."""

    server: SeaweedS3
    name: str
    cache_dir: Path

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "auth_enabled": False,
            "s3_endpoint_url": self.server.endpoint,
            "s3_bucket": self.name,
            "s3_access_key_id": SecretStr(ACCESS_KEY),
            "s3_secret_access_key": SecretStr(SECRET_KEY),
            "catalog_poll_interval_s": 0,
            "module_cache_dir": self.cache_dir,
            "promotion_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "log_format": "json",
        }
        values.update(overrides)
        return Settings(**values)

    def env(self, **overrides: str) -> dict[str, str]:
        """The same configuration as environment variables, for a subprocess."""
        env = {
            "EXTENSIONS_RUNTIME_AUTH_ENABLED": "false",
            "EXTENSIONS_RUNTIME_S3_ENDPOINT_URL": self.server.endpoint,
            "EXTENSIONS_RUNTIME_S3_BUCKET": self.name,
            "EXTENSIONS_RUNTIME_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "EXTENSIONS_RUNTIME_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "EXTENSIONS_RUNTIME_CATALOG_POLL_INTERVAL_S": "0",
            "EXTENSIONS_RUNTIME_MODULE_CACHE_DIR": str(self.cache_dir),
            "EXTENSIONS_RUNTIME_PROMOTION_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
        env.update({f"EXTENSIONS_RUNTIME_{k.upper()}": v for k, v in overrides.items()})
        return env

    def _client(self) -> Any:
        return aioboto3.Session().client(
            "s3",
            endpoint_url=self.server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    async def put(self, key: str, data: bytes) -> None:
        """Write an object under the runtime's prefix, bypassing the publish path."""
        async with self._client() as s3:
            await s3.put_object(Bucket=self.name, Key=self.settings().s3_prefix + key, Body=data)

    async def publish(
        self, extension_id: str, version: str, wasm: bytes, *, abi: str = "raw", promote: bool
    ) -> str:
        """What ``extensions-runtime publish`` does, in process; returns the digest."""
        definition = build_definition(
            wasm,
            extension_id=extension_id,
            version=version,
            abi=abi,
            tier="pure",
            limits={},
            host_calls=[],
            config={},
        )
        await publish(self.settings(), definition, wasm, promote=promote)
        return definition.sha256

    async def create(self) -> None:
        async with self._client() as s3:
            await s3.create_bucket(Bucket=self.name)
