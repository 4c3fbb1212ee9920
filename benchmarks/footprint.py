"""Footprint of a serving process: start to SERVING, and resident memory per process.

``python -m benchmarks footprint [--runs 5] [--calls 5000]`` (``make bench-footprint``):

- **Start to SERVING**: from the ``exec`` of ``python -m server`` (the time just before the
  child is spawned) to the first ``grpc.health.v1`` answer SERVING, polled every 5 ms, over
  ``--runs`` starts; median, min and max. The store and the fallback's files are ready before
  the clock starts (the pipeline ran once, untimed), so it is the server's own start-up. The
  polling channel retries a refused connection every 5 ms too: with gRPC's default reconnect
  backoff (1 s after the first refusal, +-20 %) the row measured the client's backoff, about
  1 s whatever the server did.
- **RSS**: ``VmRSS`` of every process of the server (the process itself, and with
  ``--workers 2`` its supervisor and workers), after a warm-up of 500 calls and again after a
  burst of ``--calls`` GetObservation calls (16 in flight), for ``--workers 1`` and ``2``; the
  total is what a deployment pays for one serving instance with its fallback ready.

Absolute times depend on the machine (2 shared cores here): compare runs of one machine, or
the rows of one run (``--workers 1`` vs ``2``), not figures across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from benchmarks.data import prepare_data
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import ServerProcess
from server.config import ServerConfig

_POLL_S = 0.005
"""Health polls (and reconnects after a refused connection) every 5 ms."""
_WARMUP_CALLS = 500
_IN_FLIGHT = 16


@dataclass(frozen=True)
class Footprint:
    workers: int
    start_to_serving_s: list[float]
    rss_after_warmup_mb: list[float]
    """Per process: the server (or supervisor) first, then its workers."""
    rss_after_burst_mb: list[float]

    def summary(self) -> str:
        starts = self.start_to_serving_s
        return (
            f"--workers {self.workers}: start to SERVING median {statistics.median(starts):.3f} s "
            f"(min {min(starts):.3f}, max {max(starts):.3f}, {len(starts)} starts); RSS after "
            f"warm-up {_mb(self.rss_after_warmup_mb)}; after the burst "
            f"{_mb(self.rss_after_burst_mb)}"
        )


def _mb(values: list[float]) -> str:
    parts = " + ".join(f"{v:.1f}" for v in values)
    return f"{sum(values):.1f} MB ({parts})" if len(values) > 1 else f"{values[0]:.1f} MB"


def _start(config: ServerConfig) -> tuple[ServerProcess, float]:
    """Spawn the server; returns it and the seconds to its first SERVING answer."""
    began = time.perf_counter()
    server = ServerProcess(config, echo_stderr=False).start()
    try:
        server.wait_serving(timeout_s=60.0, poll_s=_POLL_S)
    except BaseException:
        server.stop()
        raise
    return server, time.perf_counter() - began


async def _calls(target: str, count: int) -> None:
    """``count`` calls, 16 in flight, on a channel retrying as the project's clients do: a call
    right after start may meet the fallback still loading (UNAVAILABLE, retried)."""
    from client._base import channel_options

    request = pb.GetObservationRequest(symbol="USDCOP")
    async with grpc.aio.insecure_channel(target, options=channel_options()) as channel:
        stub = pb_grpc.ObservationServiceStub(channel)
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await stub.GetObservation(request, timeout=10)

        await asyncio.gather(*(worker() for _ in range(_IN_FLIGHT)))


def measure(config: ServerConfig, runs: int, calls: int) -> Footprint:
    starts: list[float] = []
    for _ in range(runs - 1):
        server, seconds = _start(config)
        starts.append(seconds)
        server.stop(timeout_s=20.0)
    server, seconds = _start(config)
    starts.append(seconds)
    try:
        asyncio.run(_calls(server.target, _WARMUP_CALLS))
        warm = server.rss_tree_mb()
        asyncio.run(_calls(server.target, calls))
        burst = server.rss_tree_mb()
    finally:
        server.stop(timeout_s=20.0)
    return Footprint(config.workers, starts, warm, burst)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="starts per worker count (default 5)")
    parser.add_argument("--calls", type=int, default=5000, help="burst size (default 5000)")
    parser.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"))


def main(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.calls < 1:
        print("error: --runs and --calls must be >= 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as workdir, EmbeddedRedis() as redis:
        data = prepare_data(Path(workdir), redis)
        rows = []
        for workers in (1, 2):
            config = ServerConfig(
                port=free_port(),
                redis_port=redis.port,
                data_dir=data.data_dir,
                workers=workers,
            )
            row = measure(config, args.runs, args.calls)
            print(row.summary(), flush=True)
            rows.append(row)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"footprint-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    print(f"results: {out}")
    return 0
