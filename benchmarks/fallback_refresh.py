"""Does a fallback refresh disturb the request path? Cached GetObservation latency, quiet vs.
while the raw files change every 0.25 s (so the fallback recomputes continuously).

What enters: nothing (it starts its own Redis, data and server). What leaves: two lines of
percentiles, same server, same run, interleaved rounds, and the p99 ratio refreshing / quiet
as the harness judges a target: the median of per-round ratios with its 95% interval
(``benchmarks.intervals``).

    make bench-fallback-refresh            # = python -m benchmarks.fallback_refresh (~1 min)
    python -m benchmarks.fallback_refresh [--rounds 10] [--calls 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
from usdcop.observation.v1 import observation_pb2 as pb

from benchmarks.data import prepare_data
from benchmarks.intervals import format_estimate, median_interval
from benchmarks.targets import GET_OBSERVATION
from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from market_data import files
from server.config import ServerConfig

_TOUCH_PERIOD_S = 0.25
_SETTLE_S = 3.0
"""After SERVING: the first fallback computation finishes and connections warm up."""
_WARMUP_CALLS = 500


@contextlib.contextmanager
def _serving(scratch: Path) -> Iterator[tuple[Callable[[], object], Path]]:
    """Redis + pipeline data made fresh now + a SERVING ``python -m server`` refreshing its
    fallback every 0.1 s: one blocking GetObservation for USDCOP, and the data folder."""
    with EmbeddedRedis() as redis:
        data = prepare_data(scratch, redis)
        config = ServerConfig(
            redis_host=redis.host,
            redis_port=redis.port,
            data_dir=data.data_dir,
            port=0,
            fallback_refresh_s=0.1,
        )
        with (
            ServerProcess(config, log_path=scratch / "server.log") as server,
            grpc.insecure_channel(server.target) as channel,
        ):
            server.wait_serving()
            method = channel.unary_unary(
                GET_OBSERVATION, request_serializer=None, response_deserializer=None
            )
            request = pb.GetObservationRequest(symbol="USDCOP").SerializeToString()

            def call() -> object:
                return method(request, timeout=5)

            time.sleep(_SETTLE_S)
            for _ in range(_WARMUP_CALLS):
                call()
            yield call, data.data_dir


def _timed_calls(call: Callable[[], object], calls: int) -> list[float]:
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    return latencies


def _p99(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99))


def _summary(name: str, latencies: list[float]) -> str:
    ms = np.array(latencies) * 1e3
    p50, p90, p99, p999 = np.percentile(ms, [50, 90, 99, 99.9])
    return (
        f"{name:11s} calls={len(ms)} p50 {p50:.3f} p90 {p90:.3f} p99 {p99:.3f} "
        f"p99.9 {p999:.3f} max {ms.max():.3f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=1000, help="calls per round and phase")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch, _serving(Path(scratch)) as (call, data_dir):
        bars = files.bars_path(data_dir)
        stop = threading.Event()

        def touch_raw_files() -> None:
            while not stop.is_set():
                os.utime(bars)
                stop.wait(_TOUCH_PERIOD_S)

        quiet: list[float] = []
        refreshing: list[float] = []
        ratios: list[float] = []
        for _ in range(args.rounds):
            quiet_round = _timed_calls(call, args.calls)
            stop.clear()
            toucher = threading.Thread(target=touch_raw_files)
            toucher.start()
            refreshing_round = _timed_calls(call, args.calls)
            stop.set()
            toucher.join()
            time.sleep(0.5)
            quiet += quiet_round
            refreshing += refreshing_round
            ratios.append(_p99(refreshing_round) / _p99(quiet_round))
    print(_summary("quiet", quiet))
    print(_summary("refreshing", refreshing))
    print(f"p99 refreshing / quiet, per round: {format_estimate(median_interval(ratios))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
