"""Separate budgets: watch streams have their own bound, outside the bound on unary calls; unary
calls always have room while every watch slot is taken; health checks are never refused; every
refusal is counted in grpc_server_handled_total with its code, and the watcher beyond the bound
gets the watch bound's own message. Small bounds via config; real redis-server, real server on
port 0, real streams and channels."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2 as pb

from devstack.embedded_redis import EmbeddedRedis, free_port
from tests.integration.server.conftest import (
    redis_client,
    running,
    server_config,
    write_observation,
)
from tests.integration.server.test_metrics import SERVICE, scrape, value

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MAX_CALLS = 4
MAX_WATCHERS = 6


def _handled(samples: dict, method: str, code: str, kind: str = "unary") -> float:  # type: ignore[type-arg]
    labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind, "grpc_code": code}
    try:
        return value(samples, "grpc_server_handled_total", **labels)
    except KeyError:
        return 0.0


def test_watchers_at_their_bound_starve_no_call(fresh_redis: EmbeddedRedis, data_dir: Path) -> None:
    client = redis_client(fresh_redis)
    write_observation(client)
    config = server_config(
        fresh_redis.port,
        data_dir,
        cache_ttl_ms=0.0,
        redis_timeout_ms=5000.0,
        max_concurrent_rpcs=MAX_CALLS,
        watch_max_subscribers=MAX_WATCHERS,
        metrics_port=free_port(),
    )

    async def scenario() -> None:
        async with running(config) as app:
            health = health_pb2_grpc.HealthStub(app.channel)
            request = pb.WatchObservationsRequest(symbols=["USDCOP"])
            watchers = [app.stub.WatchObservations(request) for _ in range(MAX_WATCHERS)]
            for call in watchers:  # every slot taken: each got its first observation
                assert (await call.read()).HasField("observation")

            # The next watcher: the watch bound's own message.
            extra = app.stub.WatchObservations(request)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await extra.read()
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused.value.details() == (
                f"this server already serves its maximum of {MAX_WATCHERS} WatchObservations "
                "streams; retry later or elsewhere"
            )

            # Unary calls and health checks have room while every watch slot is taken.
            assert len((await app.get()).values) == 15
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING

            # Unary calls at their own bound: the excess is refused with its own message, and
            # health checks are still answered meanwhile.
            client.execute_command("CLIENT", "PAUSE", "800", "ALL")
            calls = [asyncio.ensure_future(app.get(timeout=10)) for _ in range(MAX_CALLS + 8)]
            await asyncio.sleep(0.2)
            during = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert during.status == health_pb2.HealthCheckResponse.SERVING
            results = await asyncio.gather(*calls, return_exceptions=True)
            refusals = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
            assert len(refusals) == 8
            assert {r.code() for r in refusals} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert refusals[0].details() == (
                f"this server is at its bound of {MAX_CALLS} concurrent calls; retry shortly"
            )

            # Every refusal is counted with its code.
            assert app.server.metrics_url is not None
            _, samples = await asyncio.to_thread(scrape, app.server.metrics_url)
            assert _handled(samples, "GetObservation", "RESOURCE_EXHAUSTED") == 8
            assert _handled(samples, "GetObservation", "OK") == 1 + MAX_CALLS
            assert (
                _handled(samples, "WatchObservations", "RESOURCE_EXHAUSTED", "server_stream") == 1
            )
            for call in watchers:
                call.cancel()

    asyncio.run(scenario())
