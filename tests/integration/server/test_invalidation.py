"""The push-invalidated cache against a real redis-server: writes by anyone reach the cache,
a lost tracking connection falls back to TTL mode at once and recovers.

The server's clock is a ManualClock that these tests never advance unless they say so: a new
value seen without advancing it cannot come from a TTL expiry, only from an invalidation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from tests.integration.server.conftest import (
    STORE_VALUES,
    Running,
    redis_client,
    running,
    server_config,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CHANGED = tuple(v * 2 for v in STORE_VALUES)
STORE = pb.VALUE_SOURCE_ONLINE_STORE
FALLBACK = pb.VALUE_SOURCE_COMPUTE_FALLBACK


async def _until(predicate: object, timeout_s: float = 3.0) -> float:
    """Wait (real time) until ``predicate()`` is true; the seconds it took."""
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not true within {timeout_s} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def _get_until(app: Running, values: tuple[float, ...], timeout_s: float = 3.0) -> float:
    start = time.monotonic()
    while True:
        answer = await app.get()
        if list(answer.values) == list(values):
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"still {list(answer.values)[:3]}... after {timeout_s} s")
        await asyncio.sleep(0.002)


def test_a_write_by_another_client_reaches_the_cache(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            assert app.server.tracker is not None and app.server.tracker.healthy
            first = await app.get()
            assert list(first.values) == list(STORE_VALUES) and not first.from_cache
            second = await app.get()
            assert second.from_cache  # held while nothing is written
            write_observation(client, CHANGED)  # another client, clock not advanced
            await _get_until(app, CHANGED)
            third = await app.get()
            assert third.from_cache and list(third.values) == list(CHANGED)
            assert app.server.tracker.invalidations_total >= 1

            client.flushall()  # every key gone: the answer no longer comes from the store
            start = time.monotonic()
            while (await app.get()).views[0].source != FALLBACK:
                assert time.monotonic() - start < 3.0
                await asyncio.sleep(0.002)

    asyncio.run(scenario())


def test_lost_tracking_falls_back_to_ttl_at_once_then_recovers(
    fresh_redis: EmbeddedRedis, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    caplog.set_level(logging.INFO, logger="online_store.tracking")

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            tracker = app.server.tracker
            assert tracker is not None and tracker.healthy
            await app.get()
            assert (await app.get()).from_cache

            killed = client.client_kill_filter(_type="pubsub")
            assert killed == 1
            await _until(lambda: not tracker.healthy, timeout_s=1.0)
            assert tracker.state == "ttl" and tracker.lost_total == 1
            assert any("tracking lost" in r.getMessage() for r in caplog.records)

            # TTL mode: the long-lived entry was dropped; a new one lives the plain TTL (1 s).
            assert not (await app.get()).from_cache
            write_observation(client, CHANGED)
            stale = await app.get()
            if not tracker.healthy:  # (when it already recovered, the write was reported)
                assert stale.from_cache and list(stale.values) == list(STORE_VALUES)
            app.clock.advance(1.0)
            assert list((await app.get()).values) == list(CHANGED)

            # Recovery with backoff, then writes are reported again.
            await _until(lambda: tracker.healthy, timeout_s=5.0)
            assert tracker.connects_total == 2
            assert any("tracking up" in r.getMessage() for r in caplog.records)
            write_observation(client, STORE_VALUES)
            await _get_until(app, STORE_VALUES)

    asyncio.run(scenario())


def test_tracking_off_keeps_ttl_mode(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)

    async def scenario() -> None:
        config = server_config(fresh_redis.port, data_dir, cache_tracking=False)
        async with running(config) as app:
            assert app.server.tracker is None
            await app.get()
            write_observation(client, CHANGED)
            await asyncio.sleep(0.2)
            assert list((await app.get()).values) == list(STORE_VALUES)

    asyncio.run(scenario())


def test_push_state_on_one_worker_is_seen_by_the_other_at_once(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    """Two worker processes on one port, a 10-minute cache TTL: only invalidation explains
    a PushState (on whichever worker) being seen on every connection within seconds."""
    client = redis_client(fresh_redis)
    now_ns = time.time_ns()
    write_observation(client, event_ns={v.name: now_ns - 60 * 10**9 for v in contract.VIEWS})
    config = server_config(fresh_redis.port, data_dir, workers=2, cache_ttl_ms=600_000.0)
    with ServerProcess(config) as server:
        server.wait_serving()
        # Distinct channel options: each channel is its own TCP connection; SO_REUSEPORT
        # spreads them over the two workers.
        channels = [
            grpc.insecure_channel(server.target, options=[("test.channel", i)]) for i in range(8)
        ]
        try:
            stubs = [pb_grpc.ObservationServiceStub(c) for c in channels]
            position = contract.FEATURE_INDEX["position"]
            for stub in stubs:  # warm every worker's cache
                answer = stub.GetObservation(pb.GetObservationRequest(symbol="USDCOP"), timeout=5)
                assert answer.values[position] == pytest.approx(STORE_VALUES[position])
            assert all(
                s.GetObservation(pb.GetObservationRequest(symbol="USDCOP"), timeout=5).from_cache
                for s in stubs
            )
            event_time = Timestamp()
            event_time.FromNanoseconds(time.time_ns())
            pushed = stubs[0].PushState(
                pb.PushStateRequest(symbol="USDCOP", position=-0.5, event_time=event_time),
                timeout=5,
            )
            assert pushed.applied
            deadline = time.monotonic() + 3.0
            pending = set(range(len(stubs)))
            while pending and time.monotonic() < deadline:
                for i in list(pending):
                    answer = stubs[i].GetObservation(
                        pb.GetObservationRequest(symbol="USDCOP"), timeout=5
                    )
                    if answer.values[position] == -0.5:
                        pending.discard(i)
                time.sleep(0.005)
            assert not pending, f"channels {sorted(pending)} still served the old position"
        finally:
            for channel in channels:
                channel.close()


def test_a_silent_redis_is_detected_by_ping_and_recovers(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    """CLIENT PAUSE freezes every client (the tracking connection's PING too), as a network
    that drops packets would: the tracker declares the stream lost within ~2 s, and comes back
    after the pause."""
    client = redis_client(fresh_redis)
    write_observation(client)

    async def scenario() -> None:
        async with running(server_config(fresh_redis.port, data_dir)) as app:
            tracker = app.server.tracker
            assert tracker is not None and tracker.healthy
            client.execute_command("CLIENT", "PAUSE", "3000", "ALL")
            took = await _until(lambda: not tracker.healthy, timeout_s=3.0)
            assert took < 3.0 and tracker.lost_total == 1
            await _until(lambda: tracker.healthy, timeout_s=10.0)
            write_observation(client, CHANGED)
            await _get_until(app, CHANGED)

    asyncio.run(scenario())


def test_watch_keeps_delivering_in_ttl_mode(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    """Tracking off: the watch hub polls every cache TTL, so a change still arrives."""
    client = redis_client(fresh_redis)
    write_observation(client)

    async def scenario() -> None:
        config = server_config(fresh_redis.port, data_dir, cache_tracking=False, cache_ttl_ms=200.0)
        async with running(config) as app:
            call = app.stub.WatchObservations(
                pb.WatchObservationsRequest(symbols=["USDCOP"], heartbeat_interval_ms=50),
                timeout=20,
            )
            stream = call.__aiter__()
            first = await stream.__anext__()
            assert list(first.observation.values) == list(STORE_VALUES)
            write_observation(client, CHANGED)
            start = time.monotonic()
            while True:
                message = await stream.__anext__()
                if message.WhichOneof("event") == "observation":
                    break
                app.clock.advance(0.2)  # the cache TTL passes (manual clock)
                assert time.monotonic() - start < 10
            assert list(message.observation.values) == list(CHANGED)
            call.cancel()

    asyncio.run(scenario())
