"""S3-compatible object source (MinIO in production, SeaweedFS in tests).

Timeouts and retries are explicit: botocore's defaults took minutes to give up
on a hung server. Checksums are computed only when required, because over
https botocore otherwise switches to aws-chunked trailers that plain-http
tests never exercise. Credentials are never logged.

Once storage has failed, further reads fail at once for
``s3_outage_backoff_s`` instead of each paying the connect and retry time
again: with SeaweedFS killed, every call of an uncached version took 1-2 s to
learn what the previous one had just learnt (`make reliability`). After that
pause, while storage has not yet answered again, requests are single
attempts (a second client without retries): callers waiting on such a probe
wait one connect, not the whole retry schedule. Cached versions never reach
this class, and ``check`` (``/readyz``) always asks.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from app._ids import ID_PATTERN, TENANT_PATTERN, VERSION_PATTERN, fullmatch
from app.errors import ErrorKind, InvocationFailure
from app.settings import Settings
from app.storage._layout import (
    PLATFORM,
    TENANTS_DIR,
    definition_key,
    extension_prefix,
    owner_prefix,
    promoted_key,
)
from app.storage._shared import StoredObject
from app.storage._source import MAX_DEFINITION_BYTES
from app.telemetry import get_logger

__all__ = ["S3Source"]

_log = get_logger("app.storage.s3")
_MISSING = {"NoSuchKey", "404", "NotFound"}
_MAX_LISTED = 10_000


def _client_config(settings: Settings, attempts: int) -> AioConfig:
    return AioConfig(
        s3={"addressing_style": "path" if settings.s3_path_style else "auto"},
        connect_timeout=settings.s3_connect_timeout_s,
        read_timeout=settings.s3_read_timeout_s,
        retries={"mode": "standard", "total_max_attempts": attempts},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Source:
    """Reads definitions and blobs under ``s3://{bucket}/{prefix}``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._bucket = settings.s3_bucket
        self._prefix = settings.s3_prefix
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._probe_client: Any = None
        self._outage = False  # failed, and not yet answered again
        # Small objects (definitions, pointers) by key: (etag, bytes). Polls send
        # If-None-Match so an unchanged catalog costs one 304 per object.
        self._etags: dict[str, tuple[str, bytes]] = {}
        self.not_modified = 0
        self._down_until = 0.0  # time.monotonic() before which reads fail at once
        self._down_reason = ""
        self.fast_failures = 0

    async def _s3(self) -> Any:
        """The client: with retries normally, single attempts during an outage."""
        if self._client is None:
            # Both at once: making a client takes ~100 ms, not to be paid by a probe.
            self._client = await self._new_client(self._settings.s3_max_attempts)
            self._probe_client = await self._new_client(attempts=1)
        return self._probe_client if self._outage else self._client

    async def _new_client(self, attempts: int) -> Any:
        settings = self._settings
        session = aioboto3.Session()
        return await self._stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=settings.s3_endpoint_url,
                region_name=settings.s3_region,
                aws_access_key_id=(
                    settings.s3_access_key_id.get_secret_value()
                    if settings.s3_access_key_id
                    else None
                ),
                aws_secret_access_key=(
                    settings.s3_secret_access_key.get_secret_value()
                    if settings.s3_secret_access_key
                    else None
                ),
                config=_client_config(settings, attempts),
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = self._probe_client = None

    def _unavailable(self, exc: Exception, what: str) -> InvocationFailure:
        code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        _log.warning("storage.s3_error", operation=what, error=code)
        self._down_until = time.monotonic() + self._settings.s3_outage_backoff_s
        self._down_reason = code
        self._outage = self._settings.s3_outage_backoff_s > 0
        return InvocationFailure(ErrorKind.UNAVAILABLE, f"module storage is unavailable ({code})")

    def _gate(self) -> None:
        """Fail at once while a recent failure says storage is down."""
        remaining = self._down_until - time.monotonic()
        if remaining > 0:
            self.fast_failures += 1
            raise InvocationFailure(
                ErrorKind.UNAVAILABLE,
                f"module storage is unavailable ({self._down_reason}); "
                f"next attempt in {remaining:.1f} s",
            )

    async def _list_prefixes(self, prefix: str, pattern: str) -> list[str]:
        self._gate()
        s3 = await self._s3()
        names: list[str] = []
        token: str | None = None
        try:
            while len(names) < _MAX_LISTED:
                kwargs: dict[str, Any] = {
                    "Bucket": self._bucket,
                    "Prefix": prefix,
                    "Delimiter": "/",
                }
                if token:
                    kwargs["ContinuationToken"] = token
                page = await s3.list_objects_v2(**kwargs)
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(prefix) :].rstrip("/")
                    if fullmatch(pattern, name):
                        names.append(name)
                if not page.get("IsTruncated"):
                    break
                token = page.get("NextContinuationToken")
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc, "list") from None
        self._outage = False
        return sorted(names)

    async def list_owners(self) -> list[str]:
        return await self._list_prefixes(f"{self._prefix}{TENANTS_DIR}/", TENANT_PATTERN)

    async def list_extensions(self, owner: str = PLATFORM) -> list[str]:
        return await self._list_prefixes(self._prefix + owner_prefix(owner), ID_PATTERN)

    async def list_versions(self, extension_id: str, owner: str = PLATFORM) -> list[str]:
        return await self._list_prefixes(
            self._prefix + extension_prefix(owner, extension_id), VERSION_PATTERN
        )

    async def _get(self, key: str, max_bytes: int, *, conditional: bool = False) -> bytes | None:
        self._gate()
        s3 = await self._s3()
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": self._prefix + key}
        cached = self._etags.get(key) if conditional else None
        if cached is not None:
            kwargs["IfNoneMatch"] = cached[0]
        try:
            response = await s3.get_object(**kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING or code == "304":
                self._outage = False  # storage answered
            if code == "304" and cached is not None:
                self.not_modified += 1
                return cached[1]
            if code in _MISSING:
                self._etags.pop(key, None)
                return None
            raise self._unavailable(exc, "get") from None
        except BotoCoreError as exc:
            raise self._unavailable(exc, "get") from None
        self._outage = False
        async with response["Body"] as body:
            if int(response.get("ContentLength", 0)) > max_bytes:
                raise InvocationFailure(
                    ErrorKind.INVALID_MODULE, f"object is larger than {max_bytes} bytes"
                )
            try:
                data: bytes = await body.read()
            except (BotoCoreError, OSError) as exc:
                raise self._unavailable(exc, "read") from None
        if conditional and (etag := response.get("ETag")):
            self._etags[key] = (str(etag), data)
        return data

    async def read_definition(
        self, extension_id: str, version: str, owner: str = PLATFORM
    ) -> bytes | None:
        return await self._get(
            definition_key(owner, extension_id, version),
            MAX_DEFINITION_BYTES,
            conditional=True,
        )

    async def read_promoted(self, extension_id: str, owner: str = PLATFORM) -> bytes | None:
        return await self._get(
            promoted_key(owner, extension_id),
            MAX_DEFINITION_BYTES,
            conditional=True,
        )

    async def read_blob(self, key: str, max_bytes: int) -> bytes:
        data = await self._get(key, max_bytes)
        if data is None:
            raise InvocationFailure(ErrorKind.NOT_FOUND, "module blob not found")
        return data

    async def read_object(self, key: str, max_bytes: int) -> bytes | None:
        """One object's bytes, ``None`` when absent (``publish`` checks what it would replace)."""
        return await self._get(key, max_bytes)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write one object (``publish``, and the fleet's control state); raises UNAVAILABLE."""
        self._gate()
        s3 = await self._s3()
        try:
            await s3.put_object(
                Bucket=self._bucket, Key=self._prefix + key, Body=data, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc, "put") from None

    async def list_objects(self, prefix: str, limit: int) -> list[StoredObject]:
        """Every object under ``prefix`` with its ETag and time, in as few pages as it takes."""
        self._gate()
        s3 = await self._s3()
        found: list[StoredObject] = []
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix + prefix}
        try:
            while len(found) < limit:
                page = await s3.list_objects_v2(**kwargs, MaxKeys=min(1000, limit - len(found)))
                for item in page.get("Contents", []):
                    found.append(
                        StoredObject(
                            item["Key"][len(self._prefix) :],
                            str(item.get("ETag", "")),
                            item["LastModified"].timestamp(),
                        )
                    )
                if not page.get("IsTruncated"):
                    break
                kwargs["ContinuationToken"] = page.get("NextContinuationToken")
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc, "list") from None
        self._outage = False
        return found

    async def delete(self, key: str) -> None:
        """Remove one object (absent already is fine); raises UNAVAILABLE."""
        self._gate()
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=self._bucket, Key=self._prefix + key)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc, "delete") from None

    async def check(self) -> str | None:
        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            code = _code(exc)
            if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                return "storage rejected the credentials"
            if code in {"404", "NoSuchBucket"}:
                return f"bucket {self._bucket!r} does not exist"
            return f"storage error {code}"
        except BotoCoreError as exc:
            return f"storage unreachable ({type(exc).__name__})"
        self._down_until = 0.0  # it answers again: so may reads, with retries
        self._outage = False
        return None
