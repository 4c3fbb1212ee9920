"""A scripted ObservationService on port 0 for the client's channel behaviour (retries,
deadlines, contract checks): answers with canned protos and counts attempts."""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical.contract import CONTRACT_HASH, CONTRACT_ID, VIEWS


def canned_observation(symbol: str, n_values: int = 15) -> pb.Observation:
    obs = pb.Observation(
        symbol=symbol,
        values=[float(i) for i in range(n_values)],
        contract_id=CONTRACT_ID,
        contract_hash=CONTRACT_HASH,
    )
    for view in VIEWS:
        obs.views.add(
            view=view.name, freshness=pb.FRESHNESS_FRESH, source=pb.VALUE_SOURCE_ONLINE_STORE
        )
    return obs


@dataclass
class ScriptedService(pb_grpc.ObservationServiceServicer):
    unavailable_first: int = 0
    """Answer this many GetObservation attempts with UNAVAILABLE before succeeding."""
    stall_s: float = 0.0
    """Sleep this long in GetObservation."""
    contract_hash: str = CONTRACT_HASH
    n_values: int = 15
    get_attempts: int = 0
    describe_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def GetObservation(
        self, request: pb.GetObservationRequest, context: grpc.ServicerContext
    ) -> pb.Observation:
        with self._lock:
            self.get_attempts += 1
            attempt = self.get_attempts
        if attempt <= self.unavailable_first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted outage")
        if self.stall_s:
            time.sleep(self.stall_s)
        return canned_observation(request.symbol, self.n_values)

    def DescribeObservation(
        self, request: pb.DescribeObservationRequest, context: grpc.ServicerContext
    ) -> pb.ObservationContract:
        with self._lock:
            self.describe_calls += 1
        return pb.ObservationContract(contract_id=CONTRACT_ID, contract_hash=self.contract_hash)

    def PushState(
        self, request: pb.PushStateRequest, context: grpc.ServicerContext
    ) -> pb.PushStateResponse:
        return pb.PushStateResponse(applied=True)


def start(service: ScriptedService, port: int = 0) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ObservationServiceServicer_to_server(service, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound
