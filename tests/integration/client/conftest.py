"""A real ObservationService (server.app.create_server on port 0) in a background thread, a
real redis-server holding one observation in Feast's layout, and raw data for the fallback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis

from canonical import contract
from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis
from market_data import files, generator
from online_store import feast_layout
from server.app import ObservationServer, create_server
from server.config import ServerConfig
from tests.plausible import PLAUSIBLE_VALUES

PROJECT = "client_tests"
"""A Feast project of these tests alone: their keys never meet other tests' in the shared Redis."""
BARS_START = date(2025, 12, 1)
BARS_END = date(2025, 12, 12)
NOW = datetime(2025, 12, 12, 18, 30, tzinfo=UTC)
"""The server's (manual) clock: 30 min after the last bar's close, so every view is fresh."""
NOW_NS = int(NOW.timestamp()) * 10**9
STORE_VALUES = PLAUSIBLE_VALUES
STORE_EVENT_NS = NOW_NS - 120 * 10**9


class ServerThread:
    """create_server() running on its own event loop in a daemon thread."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.clock = ManualClock(wall_ns=NOW_NS)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: ObservationServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server, self.port = self._loop.run_until_complete(
                create_server(self.config, clock=self.clock)
            )
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stall(self, seconds: float) -> None:
        """Block the server's event loop for ``seconds`` (every call waits), from now."""
        self._loop.call_soon_threadsafe(time.sleep, seconds)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def write_store_observation(
    server: EmbeddedRedis, symbol: str = "USDCOP", event_ns: int = STORE_EVENT_NS
) -> None:
    mapping: dict[bytes, bytes] = {}
    for feature in contract.FEATURES:
        field = feast_layout.feature_field(feature.view, feature.name)
        mapping[field] = feast_layout.encode_float32(STORE_VALUES[feature.index])
    for view in contract.VIEWS:
        mapping[feast_layout.ts_field(view.name)] = feast_layout.encode_timestamp(event_ns)
    client = redis.Redis(host=server.host, port=server.port)
    try:
        key = feast_layout.entity_key(symbol, PROJECT)
        client.delete(key)
        client.hset(key, mapping=mapping)  # type: ignore[arg-type]
    finally:
        client.close()


@pytest.fixture(scope="module")
def raw_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_raw_data(tmp_path_factory.mktemp("client-data") / "data")


def write_raw_data(data_dir: Path) -> Path:
    """The fallback's raw bars and macro prints (BARS_START .. BARS_END) under ``data_dir``."""
    files.write_bars(
        files.bars_path(data_dir), generator.generate_bars(start=BARS_START, end=BARS_END)
    )
    macro_start = generator.macro_start_for(BARS_START)
    files.write_macro(
        files.macro_path(data_dir), generator.generate_macro(start=macro_start, end=BARS_END)
    )
    return data_dir


def client_server_config(
    redis_server: EmbeddedRedis, data_dir: Path, port: int = 0
) -> ServerConfig:
    return ServerConfig(
        redis_host=redis_server.host,
        redis_port=redis_server.port,
        port=port,
        data_dir=data_dir,
        project=PROJECT,
        redis_timeout_ms=1000.0,  # a busy machine must not send these calls to the fallback
    )


@pytest.fixture
def real_server(redis_server: EmbeddedRedis, raw_data_dir: Path) -> Iterator[ServerThread]:
    write_store_observation(redis_server)
    thread = ServerThread(client_server_config(redis_server, raw_data_dir)).start()
    yield thread
    thread.stop()
