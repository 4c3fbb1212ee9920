"""Redis over TLS with a CA and a client certificate: Feast materializes into a real TLS-only
redis-server, the observation server reads it and writes PushState to it; TLS mismatches are
fatal at start with one clear line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from core.clock import ManualClock
from online_store import feast_layout
from online_store.address import RedisAddress
from online_store.startup_check import fatal_store_problem
from pipeline.feast_online import read_online_observation
from pipeline.run import run_pipeline
from server.app import create_server
from server.config import ServerConfig
from server.errors import StartupError
from tests.integration.faults._tls_redis import TlsRedis, tls_redis
from tests.integration.feast._support import FRIDAY_CLOSE, HISTORY_DAYS, copy_feature_repo
from tests.integration.server.conftest import running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsRedis]:
    with tls_redis() as server:
        yield server


def _config(server: TlsRedis, data_dir: Path, **overrides: object) -> ServerConfig:
    base = ServerConfig(
        redis_port=server.port,
        port=0,
        data_dir=data_dir,
        redis_timeout_ms=1000.0,
        redis_tls=True,
        redis_tls_ca_file=server.ca_file,
        redis_tls_cert_file=server.client_cert_file,
        redis_tls_key_file=server.client_key_file,
    )
    return base.with_overrides(**overrides)


def _address(server: TlsRedis) -> RedisAddress:
    """The pipeline's (Feast's) address of the TLS Redis, with the CA and client certificate."""
    return RedisAddress(
        host=server.host,
        port=server.port,
        tls=True,
        tls_ca_file=server.ca_file,
        tls_cert_file=server.client_cert_file,
        tls_key_file=server.client_key_file,
    )


def test_feast_materializes_into_tls_redis_and_the_server_reads_and_writes_it(
    tls_server: TlsRedis, tmp_path: Path
) -> None:
    repo = copy_feature_repo(tmp_path)
    address = _address(tls_server)
    result = run_pipeline(repo.repo_dir, repo.data_dir, FRIDAY_CLOSE, address, days=HISTORY_DAYS)
    assert all(m.ran for m in result.materialized)
    feast_view = read_online_observation(result.store, "USDCOP", FRIDAY_CLOSE)
    assert None not in feast_view.values
    assert len(tls_server.client().keys("*")) == 1  # the USDCOP entity's hash, over TLS

    now_ns = int(FRIDAY_CLOSE.timestamp()) * 10**9
    config = _config(tls_server, repo.data_dir, cache_ttl_ms=0)

    async def scenario() -> None:
        async with running(config, ManualClock(wall_ns=now_ns)) as app:
            obs = await app.get()
            assert [v.source for v in obs.views] == [pb.VALUE_SOURCE_ONLINE_STORE] * 3
            expected = [float(pb.Observation(values=[v]).values[0]) for v in feast_view.values]
            assert list(obs.values) == expected
            push_at = FRIDAY_CLOSE + timedelta(seconds=1)
            stamp = Timestamp()
            stamp.FromDatetime(push_at)
            reply = await app.stub.PushState(
                pb.PushStateRequest(symbol="USDCOP", position=-0.25, event_time=stamp), timeout=10
            )
            assert reply.applied
            state = (await app.get()).values[contract.FEATURE_INDEX["position"]]
            assert state == -0.25

    asyncio.run(scenario())


def test_cache_tracking_runs_over_tls(tls_server: TlsRedis, tmp_path: Path) -> None:
    """The invalidation stream connects with the same CA and client certificate as the reads:
    tracking is up at start, and a value written to Redis behind the server's back (no
    PushState through it) is served at once although the cache would hold the old one 60 s."""
    repo = copy_feature_repo(tmp_path)
    address = _address(tls_server)
    run_pipeline(repo.repo_dir, repo.data_dir, FRIDAY_CLOSE, address, days=HISTORY_DAYS)
    now_ns = int(FRIDAY_CLOSE.timestamp()) * 10**9
    config = _config(tls_server, repo.data_dir, cache_ttl_ms=60_000.0, cache_tracking=True)
    redis = tls_server.client()
    key = feast_layout.entity_key("USDCOP", contract.PROJECT)
    field = feast_layout.feature_field(contract.STATE.name, "position")

    async def scenario() -> None:
        async with running(config, ManualClock(wall_ns=now_ns)) as app:
            tracker = app.server.tracker
            assert tracker is not None and tracker.healthy
            before = (await app.get()).values[contract.FEATURE_INDEX["position"]]
            assert before != 0.75
            redis.hset(key, field, feast_layout.encode_float32(0.75))
            for _ in range(100):  # the invalidation arrives within milliseconds
                served = (await app.get()).values[contract.FEATURE_INDEX["position"]]
                if served == 0.75:
                    break
                await asyncio.sleep(0.02)
            assert served == 0.75

    asyncio.run(scenario())


def test_plaintext_against_a_tls_port_is_fatal(tls_server: TlsRedis, tmp_path: Path) -> None:
    config = ServerConfig(redis_port=tls_server.port, port=0, data_dir=tmp_path)
    problem = asyncio.run(fatal_store_problem(config.redis_address, 2.0))
    assert problem is not None and "TLS-only port" in problem

    async def start() -> None:
        await create_server(config)

    with pytest.raises(StartupError, match="TLS-only port"):
        asyncio.run(start())


def test_an_untrusted_redis_certificate_is_fatal(tls_server: TlsRedis, tmp_path: Path) -> None:
    config = _config(tls_server, tmp_path, redis_tls_ca_file=tls_server.other_ca_file)
    problem = asyncio.run(fatal_store_problem(config.redis_address, 2.0))
    assert problem is not None and "TLS certificate is not trusted" in problem


def test_a_missing_client_certificate_is_fatal(tls_server: TlsRedis, tmp_path: Path) -> None:
    config = _config(tls_server, tmp_path, redis_tls_cert_file="", redis_tls_key_file="")
    problem = asyncio.run(fatal_store_problem(config.redis_address, 2.0))
    # An alert (TLSV13_ALERT_CERTIFICATE_REQUIRED) or a reset, depending on timing.
    assert problem is not None and "client certificate" in problem


def test_a_correct_tls_configuration_is_not_a_problem(tls_server: TlsRedis, tmp_path: Path) -> None:
    assert (
        asyncio.run(fatal_store_problem(_config(tls_server, tmp_path).redis_address, 2.0)) is None
    )
