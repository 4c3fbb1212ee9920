"""Which way of timing RPCs costs the request path least: none, a handler wrapper, an interceptor?

What enters: nothing (``python -m benchmarks.instrumentation [--calls N] [--rounds R]``).
What leaves: a markdown table on stdout: sequential p50/p99 of one bare unary handler (a
pre-serialized answer, like a cache hit) served three ways, in one run, rounds interleaved:

- ``none``: the handler as registered by ``server.app`` (identity serializers);
- ``wrapper``: the handler wrapped once at registration by ``ServerMetrics.instrument``
  (what the server does);
- ``interceptor``: a ``grpc.aio.ServerInterceptor`` doing the same counting, its wrapped
  handler cached per method (so only the interceptor's own per-call hook is extra).

Each server is its own spawned process on the project's server stack
(``server.app.new_grpc_server``); the client is one blocking channel per server.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from benchmarks import histograms
from devstack.embedded_redis import free_port

VARIANTS = ("none", "wrapper", "interceptor")
_SERVICE = "bench.Instrumentation"
_ANSWER = bytes(range(200))


def _serve(variant: str, port: int, ready: Any) -> None:
    import asyncio

    from server.app import new_grpc_server
    from server.config import ServerConfig
    from server.metrics import ServerMetrics

    async def handler(request: bytes, context: Any) -> bytes:
        return _ANSWER

    async def main() -> None:
        metrics = ServerMetrics(cache_enabled=True)
        interceptors: list[Any] = []
        method: Callable[[bytes, Any], Awaitable[bytes]] = handler
        if variant == "wrapper":
            method = metrics.instrument(_SERVICE, "Get", handler)
        elif variant == "interceptor":
            interceptors.append(_Interceptor(metrics))
        config = ServerConfig(port=port)
        server = (
            grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
            if interceptors
            else new_grpc_server(config)
        )
        handlers = {"Get": grpc.unary_unary_rpc_method_handler(method)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, handlers),))
        server.add_registered_method_handlers(_SERVICE, handlers)  # type: ignore[attr-defined]
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    asyncio.run(main())


class _Interceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """The wrapper's counting, applied by an interceptor; wrapped handlers cached per method."""

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, name = method.lstrip("/").rpartition("/")
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._metrics.instrument(service, name, handler.unary_unary)
        )
        self._wrapped[method] = wrapped
        return wrapped


def run(calls: int, rounds: int) -> str:
    context = multiprocessing.get_context("spawn")
    processes, ports = [], {}
    try:
        for variant in VARIANTS:
            ports[variant] = free_port()
            ready = context.Event()
            process = context.Process(target=_serve, args=(variant, ports[variant], ready))
            process.start()
            processes.append(process)
            if not ready.wait(60):
                raise RuntimeError(f"{variant} server did not start")
        channels = {v: grpc.insecure_channel(f"127.0.0.1:{ports[v]}") for v in VARIANTS}
        stubs = {v: channels[v].unary_unary(f"/{_SERVICE}/Get", None, None) for v in VARIANTS}
        merged: dict[str, list[str]] = {v: [] for v in VARIANTS}
        for round_index in range(rounds):
            order = VARIANTS[round_index % 3 :] + VARIANTS[: round_index % 3]
            for variant in order:
                stub = stubs[variant]
                for _ in range(200):  # warm-up
                    stub(b"", timeout=5)
                histogram = histograms.new_histogram()
                for _ in range(calls // rounds):
                    started = time.perf_counter()
                    stub(b"", timeout=5)
                    histograms.record_seconds(histogram, time.perf_counter() - started)
                merged[variant].append(histograms.encode(histogram))
        for channel in channels.values():
            channel.close()
    finally:
        for process in processes:
            process.terminate()
            process.join(10)
    lines = ["| variant | calls | p50 ms | p99 ms | p99 / none p99 |", "|---|---:|---:|---:|---:|"]
    summaries = {
        v: histograms.summarize_ms(histograms.merge(histograms.decode(p) for p in merged[v]))
        for v in VARIANTS
    }
    for variant in VARIANTS:
        summary = summaries[variant]
        lines.append(
            f"| {variant} | {summary['count']} | {summary['p50']:.3f} | {summary['p99']:.3f} | "
            f"{summary['p99'] / summaries['none']['p99']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="measured calls per variant")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    args = parser.parse_args()
    print(run(args.calls, args.rounds))


if __name__ == "__main__":
    main()
