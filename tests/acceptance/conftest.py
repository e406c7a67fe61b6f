"""The acceptance suite's one fixture, :func:`target`, in either mode (see ``_target``).

Locally it starts what a deployment has: SeaweedFS with ``echo`` and ``spin``
published the way Transformation does, and the service (pyvoy, caller auth on)
reading it; tokens are minted with the test secret. In cluster mode nothing is
started: the environment names the service and its tokens. Tests that only
make sense locally (they stop storage, inject faults) carry
``@pytest.mark.local_only("why")`` and are skipped in cluster mode with that
reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._s3 import SeaweedS3
from tests._servers import cli_server
from tests._tokens import ISSUER, SECRET, caller_token
from tests.acceptance._target import Target, TargetProblem, cluster_target, mode
from tests.integration._storage import S3Bucket, example_module

TENANT = "rollout-tenant"


def _mode() -> str:
    try:
        return mode(os.environ)
    except TargetProblem as problem:
        pytest.exit(str(problem), returncode=2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _mode() != "cluster":
        return
    for item in items:
        marker = item.get_closest_marker("local_only")
        if marker is not None and Path(item.path).parent == Path(__file__).parent:
            reason = marker.args[0] if marker.args else "needs the local stack"
            item.add_marker(pytest.mark.skip(reason=f"local only: {reason}"))


@pytest.fixture(scope="session")
def local_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3 | None]:
    if _mode() == "cluster":
        yield None
        return
    server = SeaweedS3(tmp_path_factory.mktemp("rollout-seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def target(
    local_storage: SeaweedS3 | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    if local_storage is None:
        try:
            yield cluster_target(os.environ)
        except TargetProblem as problem:
            pytest.exit(str(problem), returncode=2)
        return
    root = tmp_path_factory.mktemp("rollout")
    bucket = S3Bucket(local_storage, f"rollout-{uuid.uuid4().hex[:12]}", root / "module-cache")

    async def publish() -> None:
        await bucket.create()
        for name in ("echo", "spin"):
            await bucket.publish(name, "1.0.0", example_module(name), promote=True)

    asyncio.run(publish())
    env = bucket.env(
        auth_enabled="true", auth_hs256_secret=SECRET, auth_issuer=ISSUER, log_format="json"
    )
    with cli_server("pyvoy", env=env, dev=False, log_path=root / "serve.log") as url:
        yield Target(
            mode="local",
            url=url,
            token=caller_token(TENANT),
            tenant=TENANT,
            admin_token=caller_token(sub="rollout", scope="extensions-runtime:admin"),
        )
