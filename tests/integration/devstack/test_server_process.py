"""devstack.server_process with real processes: the child serves exactly its ServerConfig, the
probe catches a symbol it does not serve, and a port held by another server is a start-up
error, not a silent success."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import processes
from devstack.embedded_redis import EmbeddedRedis
from devstack.fixture_server import write_observation
from devstack.server_process import ServerProcess, ServerStartError
from server.config import ServerConfig
from tests.integration.devstack._support import another_server

pytestmark = pytest.mark.integration


def _config(redis_server: EmbeddedRedis, data_dir: Path, **overrides: object) -> ServerConfig:
    return ServerConfig(
        redis_port=redis_server.port, data_dir=data_dir, port=0, grace_period_s=0.5
    ).with_overrides(**overrides)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data folder: the server starts (the fallback has no rows) and serves."""
    return tmp_path / "data"


@pytest.mark.timeout(90)
def test_probe_fails_for_a_symbol_the_server_does_not_serve(
    redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    with ServerProcess(_config(redis_server, data_dir, symbols=("USDCOP",))) as server:
        server.wait_serving()
        with pytest.raises(ServerStartError, match=r"GetObservation\(USDMXN\).*NOT_FOUND"):
            server.probe(["USDMXN"])


@pytest.mark.timeout(90)
def test_probe_retries_unavailable_within_its_bound(
    redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    """No row in Redis and no fallback data: UNAVAILABLE, retried until the bound; a row that
    arrives while the probe retries makes it pass (as a client's retry would)."""
    with (
        EmbeddedRedis() as empty,
        ServerProcess(_config(empty, data_dir, cache_ttl_ms=0)) as server,
    ):
        server.wait_serving()
        with pytest.raises(ServerStartError, match=r"GetObservation\(USDCOP\).*UNAVAILABLE"):
            server.probe(timeout_s=1.0)
        writer = threading.Timer(0.5, write_observation, args=(empty,))
        writer.start()
        try:
            server.probe(timeout_s=20.0)
        finally:
            writer.join()


@pytest.fixture
def other_server() -> Iterator[int]:
    with another_server() as port:
        yield port


@pytest.mark.timeout(90)
def test_a_port_held_by_another_server_is_a_start_up_error(
    redis_server: EmbeddedRedis, data_dir: Path, other_server: int
) -> None:
    config = _config(redis_server, data_dir, port=other_server)
    with ServerProcess(config) as server:
        with pytest.raises(ServerStartError, match="server exited with code 1"):
            server.wait_serving(timeout_s=60)
        assert processes.listening_pids(other_server, among=[server.pid]) == set()
