"""SIGTERM with open WatchObservations streams: the streams end at the drain's end with
UNAVAILABLE (the clients' watch reconnects elsewhere), and the process exits then, not after
its whole grace period. Real `python -m server`, real redis-server, real streams, real signal."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from server.config import ServerConfig
from tests.integration.server.conftest import redis_client, write_observation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

DRAIN_S = 0.5
GRACE_S = 8.0


def test_open_watch_streams_end_at_the_drain(redis_server: EmbeddedRedis, data_dir: Path) -> None:
    write_observation(redis_client(redis_server))
    config = ServerConfig(
        redis_port=redis_server.port,
        data_dir=data_dir,
        port=0,
        drain_period_s=DRAIN_S,
        grace_period_s=GRACE_S,
        redis_timeout_ms=1000.0,
    )
    with ServerProcess(config) as server:
        server.wait_serving()
        channel = grpc.insecure_channel(server.target)
        stub = pb_grpc.ObservationServiceStub(channel)
        streams = [
            stub.WatchObservations(pb.WatchObservationsRequest(symbols=["USDCOP"]))
            for _ in range(3)
        ]
        for stream in streams:
            assert next(stream).HasField("observation")
        ends: list[tuple[grpc.StatusCode, str, float]] = []

        def drain(stream: grpc.Call) -> None:
            try:
                for _ in stream:  # heartbeats until the end
                    pass
            except grpc.RpcError as error:
                ends.append((error.code(), error.details(), time.monotonic()))

        readers = [threading.Thread(target=drain, args=(s,)) for s in streams]
        for reader in readers:
            reader.start()
        signalled = time.monotonic()
        server._proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        code = server.wait_exit(timeout_s=GRACE_S + 10)
        exited_after_s = time.monotonic() - signalled
        for reader in readers:
            reader.join(timeout=10)
        channel.close()

    print(f"exit {exited_after_s:.2f} s after SIGTERM (drain {DRAIN_S} s, grace {GRACE_S} s)")
    assert code == 0
    assert exited_after_s < DRAIN_S + 3.0 < GRACE_S  # not the whole grace period
    assert [(c, d) for c, d, _ in ends] == [
        (grpc.StatusCode.UNAVAILABLE, "the server is shutting down; retry on another instance")
    ] * 3
    assert all(at - signalled >= DRAIN_S for _, _, at in ends)  # still served during the drain
