"""Graceful shutdown on a real SIGTERM: health NOT_SERVING at once, calls still accepted for
the drain period, then new calls refused while an in-flight call finishes."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from server.config import ServerConfig
from tests.integration.server.conftest import redis_client, write_observation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DRAIN_S = 1.5


def health_status(target: str, timeout_s: float = 1.0) -> int | None:
    """The server's overall health, or None when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


def test_sigterm_drains_then_stops_accepting_and_finishes_in_flight_calls(
    fresh_redis: EmbeddedRedis, data_dir: Path
) -> None:
    client = redis_client(fresh_redis)
    now_ns = time.time_ns()
    write_observation(
        client,
        event_ns=dict.fromkeys(("technical_features", "macro_features", "state_features"), now_ns),
    )
    config = ServerConfig(
        redis_port=fresh_redis.port,
        data_dir=data_dir,
        port=0,
        cache_ttl_ms=0,
        redis_timeout_ms=5000,
        drain_period_s=DRAIN_S,
        grace_period_s=5,
    )
    with ServerProcess(config) as server:
        server.wait_serving()
        target = server.target
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.ObservationServiceStub(channel)
            request = pb.GetObservationRequest(symbol="USDCOP")
            assert len(stub.GetObservation(request, timeout=10).values) == 15

            sigterm_at = time.monotonic()
            server.send_signal(signal.SIGTERM)
            status = None
            while time.monotonic() - sigterm_at < 0.5:
                status = health_status(target)
                if status == NOT_SERVING:
                    break
                time.sleep(0.02)
            assert status == NOT_SERVING
            not_serving_after_s = time.monotonic() - sigterm_at
            assert not_serving_after_s < 0.5

            # Within the drain period: new calls (and new connections) are still answered.
            time.sleep(0.3)
            assert len(stub.GetObservation(request, timeout=10).values) == 15
            with grpc.insecure_channel(target) as fresh:
                fresh_stub = pb_grpc.ObservationServiceStub(fresh)
                assert len(fresh_stub.GetObservation(request, timeout=10).values) == 15
            assert time.monotonic() - sigterm_at < DRAIN_S

            # A call in flight when the drain ends still completes: Redis stalls 1.5 s.
            client.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            in_flight: dict[str, object] = {}

            def slow_call() -> None:
                in_flight["answer"] = stub.GetObservation(request, timeout=10)

            worker = threading.Thread(target=slow_call)
            worker.start()
            time.sleep(max(0.0, DRAIN_S + 0.3 - (time.monotonic() - sigterm_at)))
            # Drain over: new connections are refused.
            with grpc.insecure_channel(target) as late:
                late_stub = pb_grpc.ObservationServiceStub(late)
                with pytest.raises(grpc.RpcError) as raised:
                    late_stub.GetObservation(request, timeout=2)
                assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            worker.join(timeout=10)
            answer = in_flight["answer"]
            assert isinstance(answer, pb.Observation) and len(answer.values) == 15
        assert server.wait_exit(timeout_s=30) == 0
