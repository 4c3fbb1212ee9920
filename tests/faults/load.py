"""Load shapes for the fault scenarios: an open loop at a fixed rate, a burst of concurrent
calls; every outcome is a status code name and a latency.

What enters: a ``grpc.aio`` channel (or several), a rate or a count. What leaves: ``Outcome``s
(scheduled send time, latency from the *scheduled* time, status name, where the technical view
came from) that the scenarios cut into windows.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from usdcop.observation.v1 import observation_pb2 as pb

GET = "/usdcop.observation.v1.ObservationService/GetObservation"
REQUEST = pb.GetObservationRequest(symbol="USDCOP").SerializeToString()
STORE = pb.VALUE_SOURCE_ONLINE_STORE


@dataclass(frozen=True)
class Outcome:
    scheduled_s: float
    """When the call was due (monotonic)."""
    latency_s: float
    """From the scheduled time to the answer (no coordinated omission)."""
    status: str
    """``OK`` or the gRPC status code name."""
    from_store: bool
    """Every view came from the online store."""
    sent_s: float = 0.0
    """When the call actually left (monotonic); later than scheduled when the client lags."""
    detail: str = ""
    """The status message of a failed call (empty for OK)."""


def get_method(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(GET, request_serializer=None, response_deserializer=None)


async def one_call(
    method: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes], scheduled_s: float, timeout_s: float
) -> Outcome:
    sent_s = time.monotonic()
    try:
        raw = await method(REQUEST, timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        latency_s = time.monotonic() - scheduled_s
        return Outcome(
            scheduled_s, latency_s, error.code().name, False, sent_s, error.details() or ""
        )
    answer = pb.Observation.FromString(raw)
    from_store = all(view.source == STORE for view in answer.views)
    return Outcome(scheduled_s, time.monotonic() - scheduled_s, "OK", from_store, sent_s)


async def open_loop(
    target: str, rate_per_s: float, duration_s: float, timeout_s: float = 2.0
) -> list[Outcome]:
    """Calls due every 1/rate s for ``duration_s`` whatever the server does."""
    async with grpc.aio.insecure_channel(target) as channel:
        method = get_method(channel)
        await method(REQUEST, timeout=10)  # connected
        start = time.monotonic()
        period = 1.0 / rate_per_s
        tasks: list[asyncio.Task[Outcome]] = []
        n = 0
        while (due := start + n * period) < start + duration_s:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one_call(method, due, timeout_s)))
            n += 1
        return list(await asyncio.gather(*tasks))


async def burst(target: str, calls: int, channels: int, timeout_s: float = 30.0) -> Counter[str]:
    """``calls`` GetObservation calls started at once over ``channels`` connections."""
    opened = [
        grpc.aio.insecure_channel(target, options=[("grpc.channel_id", i)]) for i in range(channels)
    ]
    try:
        methods = [get_method(channel) for channel in opened]
        for method in methods:
            await method(REQUEST, timeout=10)
        now = time.monotonic()
        outcomes = await asyncio.gather(
            *(one_call(methods[i % channels], now, timeout_s) for i in range(calls))
        )
    finally:
        for channel in opened:
            await channel.close(grace=None)
    return Counter(outcome.status for outcome in outcomes)


def p99_ms(outcomes: Sequence[Outcome]) -> float:
    latencies = sorted(o.latency_s for o in outcomes)
    if not latencies:
        return 0.0
    return 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]


def failed(outcomes: Sequence[Outcome]) -> int:
    return sum(o.status != "OK" for o in outcomes)


def back_to_store_s(outcomes: Sequence[Outcome], since_s: float) -> float | None:
    """Seconds from ``since_s`` to the first call (by schedule) answered from the store."""
    after = sorted((o for o in outcomes if o.scheduled_s >= since_s), key=lambda o: o.scheduled_s)
    for outcome in after:
        if outcome.from_store:
            return outcome.scheduled_s - since_s
    return None
