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
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from benchmarks.data import prepare_data
from devstack import processes
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import server_environment
from server.config import ServerConfig

_POLL_S = 0.005
_POLL_CHANNEL_OPTIONS = [
    # A refused connection (the port is not bound yet) is retried after _POLL_S, not after
    # gRPC's default initial backoff of 1 s.
    ("grpc.initial_reconnect_backoff_ms", int(_POLL_S * 1000)),
    ("grpc.max_reconnect_backoff_ms", int(_POLL_S * 1000)),
]
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


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _server_rss(pid: int) -> list[float]:
    return [_rss_mb(pid), *(_rss_mb(child) for child in sorted(processes.descendants(pid)))]


def _start(config: ServerConfig) -> tuple[subprocess.Popen[bytes], float]:
    """Spawn the server; returns it and the seconds to its first SERVING answer."""
    env = server_environment(config, os.environ)
    target = f"127.0.0.1:{config.port}"
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with grpc.insecure_channel(target, options=_POLL_CHANNEL_OPTIONS) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return proc, time.perf_counter() - began
            except grpc.RpcError:
                pass
            if time.perf_counter() - began > 60:
                proc.kill()
                raise RuntimeError("the server was not SERVING after 60 s")
            time.sleep(_POLL_S)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        proc, seconds = _start(config)
        starts.append(seconds)
        _stop(proc)
    proc, seconds = _start(config)
    starts.append(seconds)
    try:
        target = f"127.0.0.1:{config.port}"
        asyncio.run(_calls(target, _WARMUP_CALLS))
        warm = _server_rss(proc.pid)
        asyncio.run(_calls(target, calls))
        burst = _server_rss(proc.pid)
    finally:
        _stop(proc)
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
