"""Load-generator processes: each owns its connections and runs one measurement at a time.

What enters: commands over a pipe (probe / sequential / open / closed, with a ScenarioSpec).
What leaves: measurement dicts with the histograms encoded (merged by the parent).

Workers are ``spawn``ed (fresh interpreters: no gRPC state crosses a fork), separate from
every server process, and keep their connections open between measurements.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import traceback
from typing import Any

from benchmarks.targets import ScenarioSpec, SyncCall, Target
from client.load import histograms
from client.load.scheduler import (
    AsyncCall,
    Measurement,
    run_closed_loop,
    run_open_loop,
    run_sequential_async,
    run_sequential_sync,
)
from core.lifetime import die_with_parent

_COMMAND_TIMEOUT_S = 600.0


def measurement_to_dict(measurement: Measurement) -> dict[str, Any]:
    return {
        "histogram": histograms.encode(measurement.histogram),
        "send_lag": histograms.encode(measurement.send_lag) if measurement.send_lag else "",
        "calls": measurement.calls,
        "errors": measurement.errors,
        "elapsed_s": measurement.elapsed_s,
        "offered_rate": measurement.offered_rate,
        "error_samples": measurement.error_samples,
    }


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.loop = asyncio.new_event_loop()
        # Keyed by the scenario and its server's address: a scenario has several server
        # processes, each on its own port (``benchmarks.runner``).
        self.sync_calls: dict[tuple[str, str], SyncCall | None] = {}
        self.async_calls: dict[tuple[str, str, int], AsyncCall] = {}
        self.targets: list[Target] = []

    def _connection_id(self, channel: int) -> int:
        return self.index * 1000 + channel

    def sync_call(self, spec: ScenarioSpec) -> SyncCall | None:
        key = (spec.name, spec.address)
        if key not in self.sync_calls:
            target = Target(spec, self._connection_id(999))
            self.targets.append(target)
            self.sync_calls[key] = target.sync_call()
        return self.sync_calls[key]

    def async_call(self, spec: ScenarioSpec, channel: int) -> AsyncCall:
        key = (spec.name, spec.address, channel)
        if key not in self.async_calls:
            target = Target(spec, self._connection_id(channel))
            self.targets.append(target)
            self.async_calls[key] = self.loop.run_until_complete(target.async_call())
        return self.async_calls[key]

    def handle(self, op: str, spec: ScenarioSpec, params: dict[str, Any]) -> dict[str, Any]:
        run = self.loop.run_until_complete
        if op == "probe":
            target = Target(spec, self._connection_id(998))
            try:
                return run(target.probe())
            finally:
                run(target.close_async())
        if op == "sequential":
            sync = self.sync_call(spec)
            if sync is not None:
                measurement = run_sequential_sync(
                    sync, params["calls"], params["warmup_calls"], params.get("max_s")
                )
            else:
                call = self.async_call(spec, 0)
                measurement = run(
                    run_sequential_async(
                        call, params["calls"], params["warmup_calls"], params.get("max_s")
                    )
                )
            return measurement_to_dict(measurement)
        if op == "open":
            call = self.async_call(spec, 0)
            measurement = run(
                run_open_loop(
                    call,
                    params["rate"],
                    params["duration_s"],
                    params["warmup_s"],
                    drain_timeout_s=params.get("drain_timeout_s", 10.0),
                )
            )
            return measurement_to_dict(measurement)
        if op == "closed":
            calls = [self.async_call(spec, c) for c in range(params["channels"])]
            measurement = run(
                run_closed_loop(
                    calls, params["duration_s"], params["warmup_s"], params["in_flight"]
                )
            )
            return measurement_to_dict(measurement)
        raise ValueError(f"unknown op {op!r}")

    def close(self) -> None:
        for target in self.targets:
            try:
                self.loop.run_until_complete(target.close_async())
            except Exception:  # closing at exit: nothing useful to do with the error
                continue
        self.loop.close()


def _warm_imports() -> None:
    # `import feast` costs seconds of CPU: pay it while the servers start, not mid-measurement.
    import feast.protos.feast.serving.ServingService_pb2  # noqa: F401

    import online_store.reader  # noqa: F401


def _prepare_gc(spec: ScenarioSpec) -> None:
    """For a server scenario, the generator's own garbage collections would land in the
    server's latencies: collect first, then GC off while it measures. In-process scenarios keep
    GC on: there, collecting what the library allocates is part of its cost, over the whole
    heap as in the library's own process.

    Collecting a heap that holds Feast's modules costs ~0.1 s, before each of the run's ~600
    measurements (~1 min of a quick run): for server scenarios the surviving objects are frozen
    (``gc.freeze``: later collections skip them, 0.1 s -> ~0), and thawed again before an
    in-process scenario, whose collections must see them."""
    if spec.networked:
        gc.collect()
        gc.freeze()
        gc.disable()
    else:
        gc.unfreeze()
        gc.collect()


def _worker_main(
    conn: multiprocessing.connection.Connection, index: int, warm: bool, parent_pid: int
) -> None:
    die_with_parent(signal.SIGKILL, parent_pid)  # a killed run leaves no load generator
    if warm:
        _warm_imports()
    worker = _Worker(index)
    try:
        while True:
            message = conn.recv()
            if message is None:
                break
            op, spec_fields, params = message
            spec = ScenarioSpec(**spec_fields)
            _prepare_gc(spec)
            try:
                result = worker.handle(op, spec, params)
            except Exception as error:
                result = {
                    "error": f"{type(error).__name__}: {error}",
                    "trace": traceback.format_exc(),
                }
            finally:
                gc.enable()
            conn.send(result)
    finally:
        worker.close()
        conn.close()


class WorkerPool:
    """``size`` load-generator processes; commands go to one or to all of them at once."""

    def __init__(self, size: int, *, warm_imports: bool = True) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        for index in range(size):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker_main, args=(child, index, warm_imports, os.getpid()), daemon=True
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)

    @property
    def size(self) -> int:
        return len(self._pipes)

    def _send(self, index: int, op: str, spec: ScenarioSpec, params: dict[str, Any]) -> None:
        self._pipes[index].send((op, dataclasses.asdict(spec), params))

    def _receive(self, index: int) -> dict[str, Any]:
        pipe = self._pipes[index]
        if not pipe.poll(_COMMAND_TIMEOUT_S):
            raise TimeoutError(f"load generator {index} did not answer in {_COMMAND_TIMEOUT_S} s")
        result: dict[str, Any] = pipe.recv()
        if "error" in result:
            raise RuntimeError(
                f"load generator {index}: {result['error']}\n{result.get('trace', '')}"
            )
        return result

    def run(
        self, index: int, op: str, spec: ScenarioSpec, params: dict[str, Any]
    ) -> dict[str, Any]:
        self._send(index, op, spec, params)
        return self._receive(index)

    def run_all(self, op: str, spec: ScenarioSpec, params: dict[str, Any]) -> list[dict[str, Any]]:
        for index in range(self.size):
            self._send(index, op, spec, params)
        return [self._receive(index) for index in range(self.size)]

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(None)
            except OSError:
                continue
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()
