"""Operator mistakes are said once at start-up, not passed silently: a missing data folder, a
served symbol absent from Redis under the configured Feast project, PushState open to every
caller on a non-loopback address. A correct configuration says none of them. Real
redis-server, real server on port 0."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from devstack.embedded_redis import EmbeddedRedis
from tests.integration.server.conftest import (
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (getattr(r, "check", ""), r.getMessage())
        for r in caplog.records
        if getattr(r, "event", "") == "operator_warning"
    ]


def _start(config: object) -> None:
    async def scenario() -> None:
        async with running(config) as app:  # type: ignore[arg-type]
            assert app.port > 0

    asyncio.run(scenario())


def test_each_mistake_is_warned_once(
    fresh_redis: EmbeddedRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_observation(redis_client(fresh_redis))  # under the contract's project
    missing = tmp_path / "nonexistent"
    config = server_config(fresh_redis.port, missing, project="usdcop_typo", bind_address="0.0.0.0")
    with caplog.at_level(logging.WARNING, logger="server"):
        _start(config)
    assert _warnings(caplog) == [
        (
            "data_dir",
            f"data folder {missing} does not exist (USDCOP_DATA_DIR): the compute fallback has "
            "no data, so a view Redis cannot answer gets UNAVAILABLE",
        ),
        (
            "push_open",
            "PushState is open to every caller on 0.0.0.0: set USDCOP_PUSH_TOKEN or "
            "USDCOP_PUSH_ALLOWED_CLIENTS (with mTLS), or bind 127.0.0.1",
        ),
        (
            "entity",
            "no entry for USDCOP in Redis under Feast project 'usdcop_typo' "
            "(USDCOP_FEAST_PROJECT): every view comes from the fallback until it is "
            "materialized there",
        ),
    ]


def test_a_correct_configuration_warns_nothing(
    fresh_redis: EmbeddedRedis, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_observation(redis_client(fresh_redis))
    data_dir.mkdir(parents=True, exist_ok=True)
    with caplog.at_level(logging.WARNING, logger="server"):
        _start(server_config(fresh_redis.port, data_dir))
        # A token closes PushState on a wildcard bind: no warning either.
        _start(
            server_config(fresh_redis.port, data_dir, bind_address="0.0.0.0", push_token="t" * 32)
        )
    assert _warnings(caplog) == []


def test_a_misspelt_variable_is_warned_at_start(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from devstack.embedded_redis import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("USDCOP_", "FEAST_REDIS_"))}
    env.update(
        USDCOP_MAX_CONCURENT_RPCS="10",
        FEAST_REDIS_PORT=str(free_port()),  # nothing there: not fatal, the fallback serves
        USDCOP_DATA_DIR=str(tmp_path),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", "--metrics-port", "0"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        seen = []
        for line in server.stderr:
            seen.append(line)
            if "listening on" in line:
                break
        warned = [line for line in seen if "unknown variable" in line]
        assert len(warned) == 1, "".join(seen)
        assert (
            "unknown variable USDCOP_MAX_CONCURENT_RPCS is ignored; "
            "did you mean USDCOP_MAX_CONCURRENT_RPCS?" in warned[0]
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
