"""``usdcop-observation-load`` (``python -m client.load``; also ``python -m benchmarks load``):
an open-loop load test of any running ObservationService.

What enters: a target ``HOST:PORT`` (e.g. the server ``make run`` starts), a fixed rate, a
duration, the number of connections and the symbols to ask for. What leaves: a live progress
line on stderr, then on stdout the latency percentiles (HdrHistogram), the achieved rate and
the errors counted by gRPC status code, as text or as JSON (``--json``).

Calls start on a fixed schedule whatever the server does (``client.load.scheduler.run_open_loop``)
and each is timed from its SCHEDULED send: a server stall shows in every call scheduled during
it, so coordinated omission is corrected. The generator's own lateness (send lag) is reported
too: when its p99 approaches the latencies, the generator, not the server, is the limit (one
Python process sends a few thousand calls per second at most).

Calls go round-robin over ``--concurrency`` gRPC connections (channels with distinct options,
so each is its own TCP connection) and over the ``--symbol`` values. Only successful calls
enter the percentiles; failed ones are counted per status code.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import grpc
import grpc.aio
from usdcop.observation.v1 import observation_pb2 as pb

from client._version import version_line
from client.load.histograms import summarize_ms
from client.load.scheduler import Measurement, run_open_loop

GET_OBSERVATION = "/usdcop.observation.v1.ObservationService/GetObservation"
"""The method every call makes (raw bytes in and out: nothing is parsed on the way)."""
PROGRESS_PERIOD_S = 1.0
"""How often the progress line is rewritten."""
CONNECT_TIMEOUT_S = 5.0
"""A target whose connections are not ready within this time fails the run before any load."""
DRAIN_TIMEOUT_S = 10.0
"""Calls still running this long after the last scheduled send count as errors (DRAIN_TIMEOUT)."""


class LoadError(RuntimeError):
    """The load test could not run (bad settings, target unreachable)."""


@dataclass(frozen=True)
class LoadSettings:
    """One load test."""

    target: str
    """Server address, ``HOST:PORT``."""
    rate_per_s: float
    """Calls started per second (the offered load)."""
    duration_s: float
    """How long calls are started, seconds."""
    concurrency: int = 1
    """gRPC connections the calls are spread over."""
    symbols: tuple[str, ...] = ("USDCOP",)
    """Symbols asked for, round-robin."""
    timeout_s: float = 10.0
    """Deadline of one call, seconds; a call past it fails with DEADLINE_EXCEEDED."""

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise LoadError(f"--rate must be a positive number of calls/s, got {self.rate_per_s}")
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise LoadError(
                f"--duration must be a positive number of seconds, got {self.duration_s}"
            )
        if self.concurrency < 1:
            raise LoadError(f"--concurrency must be at least 1, got {self.concurrency}")
        if not self.symbols:
            raise LoadError("at least one --symbol is needed")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise LoadError(f"--timeout must be a positive number of seconds, got {self.timeout_s}")
        host, _, port = self.target.rpartition(":")
        if not host or not port.isdigit():
            raise LoadError(f"--target must be HOST:PORT, got {self.target!r}")


@dataclass
class Tally:
    """Live counts, updated by every call as it ends."""

    started: int = 0
    ok: int = 0
    errors_by_code: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)
    """The first message seen per status code."""

    def note_error(self, error: BaseException) -> None:
        code = _status_name(error)
        self.errors_by_code[code] += 1
        if code not in self.error_examples:
            details = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
            self.error_examples[code] = (details or "")[:300]

    @property
    def errors(self) -> int:
        return sum(self.errors_by_code.values())

    @property
    def in_flight(self) -> int:
        return self.started - self.ok - self.errors


@dataclass(frozen=True)
class LoadReport:
    """The outcome of a load test."""

    settings: LoadSettings
    measurement: Measurement
    errors_by_code: dict[str, int]
    error_examples: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {
            "target": self.settings.target,
            "offered_rate_per_s": self.settings.rate_per_s,
            "duration_s": self.settings.duration_s,
            "concurrency": self.settings.concurrency,
            "symbols": list(self.settings.symbols),
            "calls": m.calls,
            "ok": m.calls - m.errors,
            "errors": m.errors,
            "errors_by_code": dict(sorted(self.errors_by_code.items())),
            "achieved_rate_per_s": round(m.achieved_rate, 3),
            "elapsed_s": round(m.elapsed_s, 3),
            "latency_ms": _finite(summarize_ms(m.histogram)),
            "send_lag_ms": _finite(summarize_ms(m.send_lag)) if m.send_lag else None,
            "error_examples": dict(sorted(self.error_examples.items())),
        }


def _finite(summary: dict[str, float | int]) -> dict[str, float | int | None]:
    # JSON has no NaN: a run without a successful call has no percentiles.
    return {
        key: (None if isinstance(value, float) and math.isnan(value) else value)
        for key, value in summary.items()
    }


def _channel_options(connection: int) -> list[tuple[str, Any]]:
    # Channels with identical arguments share one TCP connection; the load command measures the
    # server, so the client does not retry either.
    return [("benchmarks.load_connection", connection), ("grpc.enable_retries", 0)]


def _status_name(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return str(error.code().name)
    return type(error).__name__


async def _connect(settings: LoadSettings) -> list[grpc.aio.Channel]:
    channels = [
        grpc.aio.insecure_channel(settings.target, options=_channel_options(index))
        for index in range(settings.concurrency)
    ]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(channel.channel_ready() for channel in channels)),
            CONNECT_TIMEOUT_S,
        )
    except TimeoutError:
        await asyncio.gather(*(channel.close(grace=None) for channel in channels))
        raise LoadError(
            f"cannot connect to {settings.target} within {CONNECT_TIMEOUT_S:g} s"
        ) from None
    return channels


async def run_load(
    settings: LoadSettings, on_progress: Callable[[Tally, float], None] | None = None
) -> LoadReport:
    """Run the load test; ``on_progress(tally, elapsed_s)`` is called every second."""
    channels = await _connect(settings)
    try:
        methods = [
            channel.unary_unary(
                GET_OBSERVATION,
                request_serializer=None,
                response_deserializer=pb.Observation.FromString,
            )
            for channel in channels
        ]
        requests = [
            pb.GetObservationRequest(symbol=symbol).SerializeToString()
            for symbol in settings.symbols
        ]
        next_method = itertools.cycle(methods)
        next_request = itertools.cycle(requests)
        tally = Tally()

        async def call() -> object:
            method, request = next(next_method), next(next_request)
            tally.started += 1
            try:
                answer = await method(request, timeout=settings.timeout_s)
            except BaseException as error:
                tally.note_error(error)
                raise
            tally.ok += 1
            return answer

        began = time.perf_counter()

        async def report_progress() -> None:
            while True:
                await asyncio.sleep(PROGRESS_PERIOD_S)
                if on_progress is not None:
                    on_progress(tally, time.perf_counter() - began)

        progress = asyncio.create_task(report_progress())
        try:
            measurement = await run_open_loop(
                call,
                settings.rate_per_s,
                settings.duration_s,
                warmup_s=0.0,  # the connections are ready before the first scheduled send
                drain_timeout_s=DRAIN_TIMEOUT_S,
            )
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
        if on_progress is not None:
            on_progress(tally, time.perf_counter() - began)
        errors_by_code, examples = dict(tally.errors_by_code), dict(tally.error_examples)
        # Calls the drain timeout cancelled were counted by the scheduler as errors, and by
        # the tally as CancelledError: name them for what they are.
        drained = errors_by_code.pop("CancelledError", 0)
        if drained:
            errors_by_code["DRAIN_TIMEOUT"] = drained
            examples.pop("CancelledError", None)
            examples["DRAIN_TIMEOUT"] = f"still running {DRAIN_TIMEOUT_S:g} s after the last send"
        return LoadReport(settings, measurement, errors_by_code, examples)
    finally:
        await asyncio.gather(*(channel.close(grace=None) for channel in channels))


def progress_line(stream: TextIO, settings: LoadSettings) -> Callable[[Tally, float], None]:
    """A progress callback that rewrites one line of ``stream`` (a terminal) or appends one."""
    rewrite = stream.isatty()

    def show(tally: Tally, elapsed_s: float) -> None:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(tally.errors_by_code.items()))
        line = (
            f"load {settings.target}  {min(elapsed_s, settings.duration_s):5.1f}/"
            f"{settings.duration_s:g} s  sent {tally.started}  ok {tally.ok}  "
            f"errors {tally.errors}{f' ({codes})' if codes else ''}  in flight {tally.in_flight}"
        )
        stream.write(f"\r\x1b[2K{line}" if rewrite else f"{line}\n")
        stream.flush()

    return show


def format_report(report: LoadReport) -> str:
    """The report as a few lines of text."""
    data = report.to_dict()
    latency, lag = data["latency_ms"], data["send_lag_ms"] or {}

    def ms(summary: dict[str, Any], key: str) -> str:
        value = summary.get(key)
        return "-" if value is None else f"{value:.3f}"

    codes = ", ".join(f"{code} {n}" for code, n in data["errors_by_code"].items()) or "none"
    return "\n".join(
        [
            f"target {data['target']}  symbols {','.join(data['symbols'])}  "
            f"connections {data['concurrency']}",
            f"offered {data['offered_rate_per_s']:g}/s for {data['duration_s']:g} s  "
            f"achieved {data['achieved_rate_per_s']:.1f}/s successful",
            f"calls {data['calls']}  ok {data['ok']}  errors {data['errors']} ({codes})",
            "latency from the scheduled send, ms (successful calls, HdrHistogram):",
            "  "
            + "  ".join(
                f"{name} {ms(latency, key)}"
                for name, key in (
                    ("p50", "p50"),
                    ("p90", "p90"),
                    ("p99", "p99"),
                    ("p99.9", "p99_9"),
                    ("max", "max"),
                    ("mean", "mean"),
                )
            ),
            f"send lag, ms (generator lateness): p50 {ms(lag, 'p50')}  p99 {ms(lag, 'p99')}  "
            f"max {ms(lag, 'max')}",
        ]
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``load`` subcommand's options."""
    parser.add_argument("--target", required=True, help="server address HOST:PORT")
    parser.add_argument("--rate", type=float, required=True, help="calls started per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of load")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="gRPC connections to spread calls over (1)"
    )
    parser.add_argument(
        "--symbol",
        action="append",
        default=None,
        help="symbol to ask for; repeat for several, used round-robin (USDCOP)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of a call, s (10)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def main(args: argparse.Namespace) -> int:
    """Run the ``load`` subcommand; 1 with one line on stderr when it cannot run."""
    try:
        settings = LoadSettings(
            target=args.target,
            rate_per_s=args.rate,
            duration_s=args.duration,
            concurrency=args.concurrency,
            symbols=tuple(args.symbol or ("USDCOP",)),
            timeout_s=args.timeout,
        )
        on_progress = None if args.quiet else progress_line(sys.stderr, settings)
        report = asyncio.run(run_load(settings, on_progress))
    except LoadError as error:
        print(f"load: {error}", file=sys.stderr)
        return 1
    if on_progress is not None and sys.stderr.isatty():
        sys.stderr.write("\n")
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``usdcop-observation-load``: exit 0 after a run, 1 when it cannot run, 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="usdcop-observation-load",
        description="Open-loop load test of a running ObservationService at a fixed rate; "
        "latencies timed from each call's scheduled send (coordinated omission corrected).",
    )
    parser.add_argument(
        "--version", action="version", version=version_line("usdcop-observation-load")
    )
    add_arguments(parser)
    return main(parser.parse_args(argv))
