"""One observation server on fresh data, for the single-server probes
(``benchmarks.fallback_refresh``, ``benchmarks.profile_server``).

What enters: server environment overrides (e.g. ``USDCOP_CACHE_TTL_MS``). What leaves, for the
``with`` block: a blocking GetObservation call on a ready server, the server's pid and the data
folder; Redis, data and server are gone afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from usdcop.observation.v1 import observation_pb2 as pb

from benchmarks.data import prepare_data
from benchmarks.targets import GET_OBSERVATION
from devstack.embedded_redis import EmbeddedRedis, free_port

_SETTLE_S = 3.0
"""After SERVING-ready: the first fallback computation finishes and connections warm up."""
_WARMUP_CALLS = 500


@dataclass(frozen=True)
class OneServer:
    call: Callable[[], object]
    """One blocking GetObservation for USDCOP (raw bytes in and out)."""
    pid: int
    data_dir: Path
    scratch: Path


@contextmanager
def one_server(**server_env: str) -> Iterator[OneServer]:
    """Redis + pipeline data made fresh now + ``python -m server`` with ``server_env``."""
    with EmbeddedRedis() as redis, tempfile.TemporaryDirectory() as scratch:
        data = prepare_data(Path(scratch), redis)
        port = free_port()
        env = dict(
            os.environ,
            FEAST_REDIS_HOST=redis.host,
            FEAST_REDIS_PORT=str(redis.port),
            USDCOP_DATA_DIR=str(data.data_dir),
            USDCOP_PORT=str(port),
            **server_env,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "server"], env=env, stderr=subprocess.DEVNULL
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=60)
            method = channel.unary_unary(
                GET_OBSERVATION, request_serializer=None, response_deserializer=None
            )
            request = pb.GetObservationRequest(symbol="USDCOP").SerializeToString()

            def call() -> object:
                return method(request, timeout=5)

            time.sleep(_SETTLE_S)
            for _ in range(_WARMUP_CALLS):
                call()
            yield OneServer(call, server.pid, data.data_dir, Path(scratch))
        finally:
            channel.close()
            server.terminate()
            server.wait(timeout=30)
