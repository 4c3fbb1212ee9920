"""The open-loop scheduler's latency accounting against a real gRPC server that stalls once.

A server that stalls for 100 ms delays every call scheduled during the stall. Timed from the
scheduled send (no coordinated omission), those calls all show it, so the stall reaches the
p99 even at a low rate; a one-in-flight loop records only the single call that hit it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import grpc.aio
import pytest

from client.load.scheduler import run_open_loop, run_sequential_sync

pytestmark = pytest.mark.integration

METHOD = "/bench.Stall/Call"
STALL_S = 0.100


class StallOnce:
    """Answers at once, except call number ``stall_at`` which holds everyone for 100 ms."""

    def __init__(self, stall_at: int) -> None:
        self.stall_at = stall_at
        self.calls = 0
        self._lock = threading.Lock()

    def handle(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:  # one lock: a stall blocks every call, like a stalled event loop
            self.calls += 1
            if self.calls == self.stall_at:
                time.sleep(STALL_S)
        return b"ok"


@pytest.fixture
def stall_server() -> Iterator[tuple[StallOnce, int]]:
    servicer = StallOnce(stall_at=10)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.unary_unary_rpc_method_handler(servicer.handle)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Stall", {"Call": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


def _slow(histogram: object, threshold_ms: float) -> int:
    return sum(
        item.count_added_in_this_iter_step
        for item in histogram.get_recorded_iterator()  # type: ignore[attr-defined]
        if item.value_iterated_to >= threshold_ms * 1000
    )


def test_a_stall_shows_in_p99_at_a_low_rate(stall_server: tuple[StallOnce, int]) -> None:
    _, port = stall_server

    async def measure() -> object:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_unary(METHOD)

            async def call() -> object:
                return await method(b"", timeout=5)

            await call()  # connect (this is call 1 on the server)
            return await run_open_loop(call, rate_per_s=50, duration_s=1.0, warmup_s=0.0)

    measurement = asyncio.run(measure())
    histogram = measurement.histogram  # type: ignore[attr-defined]
    assert measurement.calls == 50 and measurement.errors == 0  # type: ignore[attr-defined]
    assert histogram.get_total_count() == 50
    assert histogram.get_value_at_percentile(99.0) >= STALL_S * 1e6
    # Calls scheduled 20, 40, 60 ms into the stall waited ~80, 60, 40 ms: all counted.
    assert _slow(histogram, 35.0) >= 3
    assert histogram.get_value_at_percentile(50.0) < 20_000


def test_a_one_in_flight_loop_sees_the_stall_only_once(
    stall_server: tuple[StallOnce, int],
) -> None:
    _, port = stall_server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        method = channel.unary_unary(METHOD)
        measurement = run_sequential_sync(lambda: method(b"", timeout=5), calls=50, warmup_calls=1)
    assert measurement.histogram.get_max_value() >= STALL_S * 1e6
    assert _slow(measurement.histogram, 35.0) == 1
