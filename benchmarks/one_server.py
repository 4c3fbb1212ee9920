"""One observation server on fresh data, for the single-server probes
(``benchmarks.fallback_refresh``, ``benchmarks.profile_server``).

What enters: ``ServerConfig`` field overrides (e.g. ``cache_ttl_ms=0``). What leaves, for the
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
from typing import Any

import grpc
from usdcop.observation.v1 import observation_pb2 as pb

from benchmarks.data import prepare_data
from benchmarks.targets import GET_OBSERVATION
from core.lifetime import preexec_die_with_parent
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import server_environment
from server.config import ServerConfig

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
def one_server(**overrides: Any) -> Iterator[OneServer]:
    """Redis + pipeline data made fresh now + ``python -m server`` with the ``ServerConfig``
    fields in ``overrides`` (e.g. ``cache_ttl_ms=0``)."""
    with EmbeddedRedis() as redis, tempfile.TemporaryDirectory() as scratch:
        data = prepare_data(Path(scratch), redis)
        port = free_port()
        config = ServerConfig(
            redis_host=redis.host,
            redis_port=redis.port,
            data_dir=data.data_dir,
            port=port,
        ).with_overrides(**overrides)
        server = subprocess.Popen(
            [sys.executable, "-m", "server"],
            env=server_environment(config, os.environ),
            stderr=subprocess.DEVNULL,
            preexec_fn=preexec_die_with_parent(),  # noqa: PLW1509 -- only prctl, no locks
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
