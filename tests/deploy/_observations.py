"""Calls against a deployed server: the client CLI's table, and a load loop that records every
call's outcome and the sources of its views."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical import contract
from client._result import result_from_proto


def client_table_rows(stdout: str) -> dict[str, list[str]]:
    """``python -m client``'s table: feature name -> its cells."""
    return {
        line.split()[1]: line.split()
        for line in stdout.splitlines()
        if len(line.split()) >= 6 and line.split()[1] in contract.FEATURE_NAMES
    }


def online_rows(stdout: str) -> dict[str, list[str]]:
    """The rows served fresh from the online store."""
    return {
        name: cells
        for name, cells in client_table_rows(stdout).items()
        if "online_store" in cells and "fresh" in cells
    }


def client_cli(
    argv_prefix: list[str], target: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m client USDCOP --target TARGET``, run by ``argv_prefix`` (an interpreter)."""
    return subprocess.run(
        [*argv_prefix, "-m", "client", "USDCOP", "--target", target],
        capture_output=True, text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def host_client(target: str) -> subprocess.CompletedProcess[str]:
    return client_cli([sys.executable], target)


@dataclass(frozen=True)
class Call:
    started: float
    """time.monotonic() at the send."""
    seconds: float
    code: str
    """``OK`` or the gRPC status name."""
    sources: frozenset[str]
    """The views' sources (``online_store``, ``compute_fallback``); empty on an error."""


@dataclass
class Load:
    """``threads`` closed loops of GetObservation against ``target`` until :meth:`stop`."""

    target: str
    threads: int = 4
    pause_s: float = 0.001
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for index in range(self.threads):
            worker = threading.Thread(target=self._loop, name=f"load-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> list[Call]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
        return list(self.calls)

    def _loop(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = pb_grpc.ObservationServiceStub(channel)
            request = pb.GetObservationRequest(symbol="USDCOP")
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    answer = result_from_proto(stub.GetObservation(request, timeout=2), None)
                    sources = frozenset(view.source for view in answer.views)
                    call = Call(began, time.monotonic() - began, "OK", sources)
                except grpc.RpcError as exc:
                    call = Call(began, time.monotonic() - began, exc.code().name, frozenset())
                self.calls.append(call)
                time.sleep(self.pause_s)
