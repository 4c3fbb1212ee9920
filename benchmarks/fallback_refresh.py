"""Does a fallback refresh disturb the request path? Cached GetObservation latency, quiet vs.
while the raw files change every 0.25 s (so the fallback recomputes continuously).

What enters: nothing (it starts its own Redis, data and server). What leaves: two lines of
percentiles, same server, same run, interleaved rounds.

    python -m benchmarks.fallback_refresh [--rounds 4] [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import numpy as np
from usdcop.observation.v1 import observation_pb2 as pb

from benchmarks.data import prepare_data
from benchmarks.targets import GET_OBSERVATION
from market_data import files
from pipeline.embedded_redis import EmbeddedRedis, free_port

_TOUCH_PERIOD_S = 0.25


def _timed_calls(call: Callable[[], object], calls: int) -> list[float]:
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    return latencies


def _summary(name: str, latencies: list[float]) -> str:
    ms = np.array(latencies) * 1e3
    p50, p90, p99, p999 = np.percentile(ms, [50, 90, 99, 99.9])
    return (
        f"{name:11s} calls={len(ms)} p50 {p50:.3f} p90 {p90:.3f} p99 {p99:.3f} "
        f"p99.9 {p999:.3f} max {ms.max():.3f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round and phase")
    args = parser.parse_args(argv)
    with EmbeddedRedis() as redis, tempfile.TemporaryDirectory() as scratch:
        data = prepare_data(Path(scratch), redis)
        port = free_port()
        env = dict(
            os.environ,
            FEAST_REDIS_HOST=redis.host,
            FEAST_REDIS_PORT=str(redis.port),
            USDCOP_DATA_DIR=str(data.data_dir),
            USDCOP_PORT=str(port),
            USDCOP_FALLBACK_REFRESH_S="0.1",
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "server"], env=env, stderr=subprocess.DEVNULL
        )
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=60)
            method = channel.unary_unary(
                GET_OBSERVATION, request_serializer=None, response_deserializer=None
            )
            request = pb.GetObservationRequest(symbol="USDCOP").SerializeToString()

            def call() -> object:
                return method(request, timeout=5)

            time.sleep(3)  # the first fallback computation and warm connections
            _timed_calls(call, 1000)
            bars = files.bars_path(data.data_dir)
            stop = threading.Event()

            def touch_raw_files() -> None:
                while not stop.is_set():
                    os.utime(bars)
                    stop.wait(_TOUCH_PERIOD_S)

            quiet: list[float] = []
            refreshing: list[float] = []
            for _ in range(args.rounds):
                quiet += _timed_calls(call, args.calls)
                stop.clear()
                toucher = threading.Thread(target=touch_raw_files)
                toucher.start()
                refreshing += _timed_calls(call, args.calls)
                stop.set()
                toucher.join()
                time.sleep(0.5)
            print(_summary("quiet", quiet))
            print(_summary("refreshing", refreshing))
            channel.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
