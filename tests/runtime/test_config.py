"""A definition's static ``config`` reaches its guest through the whole pipeline."""

from __future__ import annotations

from pathlib import Path

from app.catalog import build_definition, publish
from app.invocation import ExecutionContext, Invocation
from app.runtime import Runtime
from app.settings import Settings
from tests.sandbox import _modules


async def test_the_guest_reads_the_config_of_its_definition(tmp_path: Path) -> None:
    settings = Settings(extensions_dir=tmp_path, catalog_poll_interval_s=0)
    definition = build_definition(
        _modules.CONFIG_RAW,
        extension_id="configured",
        version="1",
        abi="raw",
        tier="pure",
        limits={},
        host_calls=[],
        config={"discount": 0.1, "sku": 9007199254740993},
    )
    await publish(settings, definition, _modules.CONFIG_RAW, promote=True)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        outcome = await runtime.invoke(
            Invocation(
                context=ExecutionContext(tenant_id="t1"),
                extension_id="configured",
                version="",
                input=b"",
            )
        )
    finally:
        await runtime.close()
    assert outcome.output == b'{"discount":0.1,"sku":9007199254740993}'
