"""A/B of the gRPC echo floor: variants of the shared server stack, interleaved in one run.

What enters: variant names (``--variants base,gc_freeze,...``), rounds and calls per round.
What leaves: a table of each variant's sequential p50/p99/p99.9 (ms), pooled over the rounds,
and its p99 over the first variant's as the harness judges targets (median of per-round
ratios, 95% interval: ``benchmarks.intervals``); the figures the server README's
optimisation table quotes.

Each echo variant is its own server process (``benchmarks.echo_server``'s payload and handler
on ``server.app``'s options and event loop) with one change applied; one client calls them in
rounds, the variants' order shuffled each round, so the machine's noise lands on all alike.

    make bench-echo-ab ECHO_AB_VARIANTS=asyncio,uvloop   # 20 rounds x 1,000 calls
    python -m benchmarks.echo_ab --variants asyncio,uvloop --rounds 30 --calls 500
    python -m benchmarks.echo_ab --variants asyncio,uvloop,redis_asyncio,redis_uvloop
    python -m benchmarks.echo_ab --variants base,cached_log_on,cached_log_off --rounds 30

``redis_*``/``cached_*`` variants are the observation server itself (cache off / on) on a
Redis with freshly materialized data, so the floor and the server are compared in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from benchmarks.data import prepare_data
from benchmarks.intervals import format_estimate, median_interval
from benchmarks.targets import GET_OBSERVATION
from client.load.histograms import merge, percentile_ms, summarize_ms
from client.load.scheduler import run_sequential_sync
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import ServerProcess
from server.config import ServerConfig

# Each echo variant: environment for the server process, and extra channel options.
VARIANTS: dict[str, tuple[dict[str, str], list[tuple[str, Any]]]] = {
    "base": ({}, []),
    "asyncio": ({"USDCOP_EVENT_LOOP": "asyncio"}, []),
    "poll_epoll1": ({"GRPC_POLL_STRATEGY": "epoll1"}, []),
    "poll_poll": ({"GRPC_POLL_STRATEGY": "poll"}, []),
    "latency_target": ({}, [("grpc.optimization_target", "latency")]),
    "max_streams_16": ({}, [("grpc.max_concurrent_streams", 16)]),
    "gc_freeze": ({"ECHO_AB_GC": "freeze"}, []),
    "gc_thresholds": ({"ECHO_AB_GC": "thresholds"}, []),
    "gc_off": ({"ECHO_AB_GC": "off"}, []),
    "uvloop": ({"USDCOP_EVENT_LOOP": "uvloop"}, []),
}
# Observation-server variants (``python -m server`` on the run's Redis and fresh data).
# Their ``ServerConfig`` fields (devstack.server_process starts them).
OBSERVATION_VARIANTS: dict[str, dict[str, Any]] = {
    "redis_asyncio": {"cache_ttl_ms": 0, "event_loop": "asyncio"},
    "redis_uvloop": {"cache_ttl_ms": 0, "event_loop": "uvloop"},
    "cached_asyncio": {"event_loop": "asyncio"},
    "cached_uvloop": {"event_loop": "uvloop"},
    # The served log's cost on the cached path (the skew check's input): on as deployed, off.
    "cached_log_on": {"served_log": True},
    "cached_log_off": {"served_log": False},
}


def _apply_gc(mode: str) -> None:
    if mode == "freeze":
        gc.collect()
        gc.freeze()
    elif mode == "thresholds":
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
    elif mode == "off":
        gc.disable()


async def _serve(port: int, extra_options: list[tuple[str, Any]]) -> None:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from benchmarks.echo_server import SERVICE_NAME, echo_payload
    from server import app

    config = ServerConfig(port=port)
    payload = echo_payload()

    async def get_observation(request: bytes, context: Any) -> bytes:
        return payload

    options = app.grpc_server_options(config) + extra_options
    server = grpc.aio.server(options=options)
    handlers = {"GetObservation": grpc.unary_unary_rpc_method_handler(get_observation)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    _apply_gc(os.environ.get("ECHO_AB_GC", ""))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.2)


def serve_variant(name: str, port: int) -> None:
    """The server side of one variant (runs in its own process)."""
    from server.app import run_event_loop

    _env, extra = VARIANTS[name]
    run_event_loop(_serve(port, extra), ServerConfig.from_env(os.environ).event_loop)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ab(variants: Sequence[str], rounds: int, calls: int, emit: Callable[[str], None]) -> None:
    servers: dict[str, ServerProcess] = {}
    channels: dict[str, grpc.Channel] = {}
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        data_config: ServerConfig | None = None
        if any(name in OBSERVATION_VARIANTS for name in variants):
            redis = stack.enter_context(EmbeddedRedis())
            data = prepare_data(Path(stack.enter_context(tempfile.TemporaryDirectory())), redis)
            data_config = ServerConfig(
                redis_host=redis.host, redis_port=redis.port, data_dir=data.data_dir, port=0
            )
        for name in variants:
            if data_config is not None and name in OBSERVATION_VARIANTS:
                config = data_config.with_overrides(**OBSERVATION_VARIANTS[name])
                server = ServerProcess(config, name=name, log_path=scratch / f"{name}.log")
            else:
                port = free_port()
                command = [sys.executable, "-m", "benchmarks.echo_ab", "serve", name, str(port)]
                server = ServerProcess.command(
                    name, command, port=port, env=VARIANTS[name][0], log_path=scratch / name
                )
            stack.callback(server.stop)
            servers[name] = server.start()
        for name, server in servers.items():
            server.wait_serving()
            channels[name] = stack.enter_context(grpc.insecure_channel(server.target))
        if data_config is not None:
            time.sleep(3.0)  # the fallback's first computation ends
        _measure(variants, servers, channels, rounds=rounds, calls=calls, emit=emit)


def _measure(  # noqa: PLR0913 - a round's parts, keyword-only
    variants: Sequence[str],
    servers: dict[str, ServerProcess],
    channels: dict[str, grpc.Channel],
    *,
    rounds: int,
    calls: int,
    emit: Callable[[str], None],
) -> None:
    request = b"\n\x06USDCOP"
    methods = {
        name: channel.unary_unary(
            GET_OBSERVATION, request_serializer=None, response_deserializer=None
        )
        for name, channel in channels.items()
    }
    histograms: dict[str, list[Any]] = {name: [] for name in variants}
    cpu_s = dict.fromkeys(variants, 0.0)
    for method in methods.values():  # warm-up
        for _ in range(300):
            method(request, timeout=5)
    order = list(variants)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            cpu_before = _cpu_seconds(servers[name].pid)
            measurement = run_sequential_sync(
                functools.partial(methods[name], request, timeout=5), calls, warmup_calls=20
            )
            cpu_s[name] += _cpu_seconds(servers[name].pid) - cpu_before
            histograms[name].append(measurement.histogram)
    emit(ab_table(variants, histograms, cpu_s, rounds=rounds, calls=calls))


def ab_table(
    variants: Sequence[str],
    histograms: dict[str, list[Any]],
    cpu_s: dict[str, float],
    *,
    rounds: int,
    calls: int,
) -> str:
    """Each variant's pooled percentiles, and its p99 over the first variant's p99 as the
    harness judges a target: the median of per-round ratios with a 95% interval
    (``benchmarks.intervals``)."""
    base = variants[0]
    lines = [
        f"| variant | calls | p50 ms | p99 ms | p99.9 ms | p99 / {base} p99 [95%] "
        "| server CPU us/call |",
        "|---|---|---|---|---|---|---|",
    ]
    base_p99 = [percentile_ms(h, 99.0) for h in histograms[base]]
    for name in variants:
        summary = summarize_ms(merge(histograms[name]))
        ratios = [
            percentile_ms(h, 99.0) / b
            for h, b in zip(histograms[name], base_p99, strict=True)
            if b > 0
        ]
        # CPU includes each round's 20 warm-up calls.
        per_call_us = cpu_s[name] / (rounds * (calls + 20)) * 1e6
        lines.append(
            f"| {name} | {summary['count']} | {summary['p50']:.3f} | {summary['p99']:.3f} "
            f"| {summary['p99_9']:.3f} | {format_estimate(median_interval(ratios))} "
            f"| {per_call_us:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        serve_variant(args[1], int(args[2]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.echo_ab", description=__doc__)
    parser.add_argument("--variants", default="base,gc_freeze")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=1000)
    parsed = parser.parse_args(args)
    run_ab(parsed.variants.split(","), parsed.rounds, parsed.calls, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
