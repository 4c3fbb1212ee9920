"""The floor: a bare gRPC service on the server's own stack, answering a fixed observation.

What enters: a port. What leaves: a ``grpc.aio`` server built by ``server.app.new_grpc_server``
(the same options and process model as the observation server) whose
``ObservationService/GetObservation`` returns a pre-serialized ``Observation`` of 15 float32
values with the same metadata as a real answer (contract id and hash, three view statuses
with event times, served_at): the same bytes on the wire, none of the work.

Run as ``python -m benchmarks echo-server --port N``; prints ``READY <port>`` once serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2 as pb

from canonical.contract import CONTRACT_HASH, CONTRACT_ID, N_FEATURES, VIEWS

SERVICE_NAME = "usdcop.observation.v1.ObservationService"


def echo_payload(symbol: str = "USDCOP") -> bytes:
    """A serialized Observation shaped like a real cached answer (values are arbitrary)."""
    observation = pb.Observation(
        symbol=symbol,
        values=[0.001 * (i + 1) - 0.0071 + 0.5 * i for i in range(N_FEATURES)],
        contract_id=CONTRACT_ID,
        contract_hash=CONTRACT_HASH,
        from_cache=True,
    )
    now_s = int(time.time())
    bar_end_s = now_s - now_s % 300
    for view in VIEWS:
        status = observation.views.add(
            view=view.name,
            freshness=pb.FRESHNESS_FRESH,
            source=pb.VALUE_SOURCE_ONLINE_STORE,
            fallback_reason=pb.FALLBACK_REASON_NONE,
        )
        status.event_time.seconds = bar_end_s
    observation.served_at.FromNanoseconds(time.time_ns())
    return bytes(observation.SerializeToString())


async def serve_echo(port: int, bind_address: str = "127.0.0.1") -> None:
    from server.app import new_grpc_server
    from server.config import ServerConfig

    config = ServerConfig(bind_address=bind_address, port=port)
    payload = echo_payload()

    async def get_observation(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return payload

    server = new_grpc_server(config)
    handlers = {"GetObservation": grpc.unary_unary_rpc_method_handler(get_observation)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)  # type: ignore[attr-defined]
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{bind_address}:{port}")
    await server.start()
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main(port: int) -> int:
    from server.app import run_event_loop
    from server.config import ServerConfig

    # The observation server's event loop (USDCOP_EVENT_LOOP), so the floor stays its floor.
    run_event_loop(serve_echo(port), ServerConfig.from_env(os.environ).event_loop)
    sys.stdout.flush()
    return 0
