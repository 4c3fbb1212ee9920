"""The start-up floor: a ``grpc.aio`` server with the health service, and nothing else.

What enters: a port (``python -m benchmarks.start_floor PORT``). What leaves: a server that
answers ``grpc.health.v1`` SERVING until SIGTERM or SIGINT. It imports Python's asyncio,
grpcio and its health service only, no module of the project, so its start to SERVING is
what any Python gRPC server pays on this machine: the floor the footprint's start-up target
divides by (``benchmarks.footprint``). The latency floor, which answers GetObservation on
the server's own stack, is ``benchmarks.echo_server``.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def serve(port: int) -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m benchmarks.start_floor PORT", file=sys.stderr)
        return 2
    asyncio.run(serve(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
