"""Footprint of a serving process: start to SERVING, and resident memory per process.

``python -m benchmarks footprint [--runs 10] [--calls 5000]`` (``make bench-footprint``), and
the footprint rows and targets of every ``make bench`` run (``measure_all``, ``targets``):

- **Start to SERVING**: from the ``exec`` of ``python -m server`` (the time just before the
  child is spawned) to the first ``grpc.health.v1`` answer SERVING, polled every 5 ms, over
  ``--runs`` starts; median, min and max. The store and the fallback's files are ready before
  the clock starts (the pipeline ran once, untimed), so it is the server's own start-up. The
  polling channel retries a refused connection every 5 ms too: with gRPC's default reconnect
  backoff (1 s after the first refusal, +-20 %) the row measured the client's backoff, about
  1 s whatever the server did.
- **RSS**: ``VmRSS`` of every process of the server (the process itself, and with
  ``--workers 2`` its supervisor and workers), after a warm-up of 500 calls and again after a
  burst of ``--calls`` GetObservation calls (16 in flight), for ``--workers 1`` and ``2``, in
  every start; the total is what a deployment pays for one serving instance with its fallback
  ready.
- **Floor start** (``--workers 1``): each of our starts is paired with the start of a bare gRPC
  server with the health service (``benchmarks.start_floor``: Python, grpcio, the health
  service, no module of the project), timed the same way, the two in alternating order. The
  ratio of the pair (``start / floor start``) is reported per start with its median and
  interval. (The latency floor, ``benchmarks echo-server``, imports the server's own stack and
  the benchmark's command line: in this phase it started in 0.32-0.51 s, as slow as our server
  or slower, so it was no floor for a start.)
- **Targets** (one value per start, so each has a median and a 95% interval like the
  latency targets): ``--workers 1`` start to SERVING over its paired floor start <=
  ``START_OVER_FLOOR_BOUND``; ``--workers 1`` RSS total after the burst <= 120 MB. Start to
  SERVING in seconds is reported, not judged: three quick runs of one commit gave medians of
  0.468, 0.428 and 0.361 s with disjoint intervals, a level that moved with the machine; the
  ratio to a start taken seconds apart on the same machine does not carry that level.

Absolute times depend on the machine (2 shared cores here): compare runs of one machine, or
the rows of one run (``--workers 1`` vs ``2``), not figures across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from benchmarks import intervals
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
    rss_total_after_burst_mb: list[float] = dataclasses.field(default_factory=list)
    """Per start: every process's RSS after its burst, summed."""
    floor_start_to_serving_s: list[float] = dataclasses.field(default_factory=list)
    """Per start (``--workers 1``): the paired bare gRPC server's start to SERVING."""

    def start_ratios(self) -> list[float]:
        """Per start: our start to SERVING over its paired floor start's."""
        return [
            ours / floor
            for ours, floor in zip(
                self.start_to_serving_s, self.floor_start_to_serving_s, strict=False
            )
            if floor > 0
        ]

    def summary(self) -> str:
        starts = self.start_to_serving_s
        line = (
            f"--workers {self.workers}: start to SERVING median {statistics.median(starts):.3f} s "
            f"(min {min(starts):.3f}, max {max(starts):.3f}, {len(starts)} starts); RSS after "
            f"warm-up {_mb(self.rss_after_warmup_mb)}; after the burst "
            f"{_mb(self.rss_after_burst_mb)}"
        )
        ratios = self.start_ratios()
        if ratios:
            floor = statistics.median(self.floor_start_to_serving_s)
            line += (
                f"; a bare gRPC server's start {floor:.3f} s (median), ours over it per pair "
                f"{intervals.format_estimate(intervals.median_interval(ratios))}"
            )
        return line


def _mb(values: list[float]) -> str:
    parts = " + ".join(f"{v:.1f}" for v in values)
    return f"{sum(values):.1f} MB ({parts})" if len(values) > 1 else f"{values[0]:.1f} MB"


def _floor_start(scratch: Path) -> float:
    """Seconds from spawning a bare gRPC server (``benchmarks.start_floor``: grpcio and the
    health service, no module of the project) to its first SERVING answer, timed as
    :func:`_start`."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.start_floor", str(port)]
    began = time.perf_counter()
    server = ServerProcess.command(
        "floor", command, port=port, env={}, log_path=scratch / "floor.log"
    ).start()
    try:
        server.wait_serving(timeout_s=60.0, poll_s=_POLL_S)
        return time.perf_counter() - began
    finally:
        server.stop()


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


def measure(config: ServerConfig, runs: int, calls: int, *, floor: Path | None = None) -> Footprint:
    """``runs`` starts of one configuration; each: time to SERVING, warm-up, RSS, burst, RSS.
    ``floor``: a scratch folder; each start is then paired with a bare gRPC server's start,
    after ours has stopped in even starts and before ours in odd ones."""
    starts: list[float] = []
    floors: list[float] = []
    totals: list[float] = []
    warm: list[float] = []
    burst: list[float] = []
    for index in range(runs):
        floor_first = floor is not None and index % 2 == 1
        if floor is not None and floor_first:
            floors.append(_floor_start(floor))
        server, seconds = _start(config)
        starts.append(seconds)
        try:
            asyncio.run(_calls(server.target, _WARMUP_CALLS))
            warm = server.rss_tree_mb()
            asyncio.run(_calls(server.target, calls))
            burst = server.rss_tree_mb()
        finally:
            server.stop(timeout_s=20.0)
        totals.append(sum(burst))
        if floor is not None and not floor_first:
            floors.append(_floor_start(floor))
    return Footprint(config.workers, starts, warm, burst, totals, floors)


WORKERS_2_STARTS = 5
"""Starts of ``--workers 2`` at most: it has no target, its rows only describe it."""


def measure_all(runs: int, calls: int) -> list[Footprint]:
    """``--workers 1`` (``runs`` starts) and ``2`` (half as many, at most
    ``WORKERS_2_STARTS``) over fresh data in an embedded Redis of their own."""
    with tempfile.TemporaryDirectory() as workdir, EmbeddedRedis() as redis:
        data = prepare_data(Path(workdir), redis)
        rows = []
        for workers in (1, 2):
            config = ServerConfig(
                port=free_port(), redis_port=redis.port, data_dir=data.data_dir, workers=workers
            )
            # --workers 2 has no target: a few starts describe it.
            starts = runs if workers == 1 else max(1, min(runs // 2, WORKERS_2_STARTS))
            rows.append(
                measure(config, starts, calls, floor=Path(workdir) if workers == 1 else None)
            )
    return rows


START_OVER_FLOOR_BOUND = 2.3
"""Start to SERVING over a bare gRPC server's start (``benchmarks.start_floor``), per pair.
Issue 17 asked for ``python -m server`` to SERVING <= 0.5 s on this machine, where this
phase times the bare server's start at 0.219 s (the median of six runs' medians on
2026-12-06: 0.142, 0.211, 0.211, 0.227, 0.231, 0.234 s; ``make bench-footprint`` prints it):
2.3 floor starts. A bound in seconds moved with the machine from run to run (medians 0.468,
0.428 and 0.361 s for one commit, intervals disjoint); over the paired floor start, the
machine's level of those seconds cancels."""
RSS_TOTAL_BOUND_MB = 120.0


def targets(rows: list[Footprint]) -> list[dict[str, Any]]:
    """The footprint targets of ``--workers 1``, judged like the latency targets (median of
    one value per start, 95% interval, verdict)."""
    one = next(row for row in rows if row.workers == 1)
    out = []
    for label, values, bound in (
        ("start to SERVING / a bare gRPC server's (--workers 1)", one.start_ratios(),
         START_OVER_FLOOR_BOUND),
        ("RSS after the burst, MB, all processes (--workers 1)", one.rss_total_after_burst_mb,
         RSS_TOTAL_BOUND_MB),
    ):  # fmt: skip
        estimate = intervals.median_interval(values)
        out.append(
            {
                "target": label,
                "mode": "footprint",
                "metric": "value",
                "rate": None,
                "median": None if estimate is None else estimate.median,
                "low": None if estimate is None else estimate.low,
                "high": None if estimate is None else estimate.high,
                "rounds": 0 if estimate is None else estimate.rounds,
                "ratios": values,
                "bound": f"<= {bound:g}",
                "bound_value": bound,
                "at_most": True,
                "verdict": intervals.verdict(estimate, bound, at_most=True),
            }
        )
    return out


def markdown(rows: list[Footprint]) -> list[str]:
    """The footprint section of a run's markdown."""
    lines = ["## Footprint (start to SERVING; RSS of every serving process)", ""]
    lines += [f"- {row.summary()}" for row in rows]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        type=int,
        default=10,
        help="starts of --workers 1, half as many (at most 5) of --workers 2 (default 10: the "
        "95%% interval is then the 2nd smallest to the 2nd largest; make bench uses 20)",
    )
    parser.add_argument("--calls", type=int, default=5000, help="burst size (default 5000)")
    parser.add_argument("--results-dir", type=Path, default=Path("benchmarks/results"))


def main(args: argparse.Namespace) -> int:
    if args.runs < 1 or args.calls < 1:
        print("error: --runs and --calls must be >= 1", file=sys.stderr)
        return 2
    rows = measure_all(args.runs, args.calls)
    for row in rows:
        print(row.summary(), flush=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"footprint-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    print(f"results: {out}")
    return 0
