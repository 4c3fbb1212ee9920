"""Fuzzed requests to every RPC: random bytes, mutated valid requests, and well-formed requests
with extreme field values.

What enters: a target and a count. What leaves: the count of answers per status code name
(a stream that is still open at its short deadline counts as DEADLINE_EXCEEDED: the client ended
it). The server must answer each with a precise status: INTERNAL or UNKNOWN is a bug.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

SERVICE = "/usdcop.observation.v1.ObservationService/"
UNARY = ("GetObservation", "DescribeObservation", "PushState", "GetObservations")
STREAM = "WatchObservations"
_UNARY_TIMEOUT_S = 5.0
_STREAM_TIMEOUT_S = 0.3
_CONCURRENCY = 64

_SYMBOLS = (
    "USDCOP",
    "USDMXN",
    "",
    "usdcop",
    "A" * 17,
    "A" * 5000,
    "USD COP",
    "\u00e9\u4e2d",
    "\x00",
)
_INT64 = (0, 1, -1, 2**31, 2**40, 2**62, 2**63 - 1, -(2**63), 253_402_300_800, -62_135_596_801)
_FLOATS = (0.0, -0.0, 0.5, -1.0, 1.0, 1.0000001, -1.0000001, 1e30, -1e308, math.nan, math.inf)


def _symbol(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(0, 20)))
    return rng.choice(_SYMBOLS)


def _timestamp(rng: random.Random) -> Timestamp:
    now = int(time.time())
    seconds = rng.choice((*_INT64, now, now - 10, now + 10, now - 7200, now + 3600))
    nanos = rng.choice((0, 1, 999_999_999, 1_000_000_000, -1, 2**31 - 1, -(2**31)))
    return Timestamp(seconds=seconds, nanos=nanos)


def _well_formed(method: str, rng: random.Random) -> bytes:
    if method == "GetObservation":
        return pb.GetObservationRequest(symbol=_symbol(rng)).SerializeToString()
    if method == "DescribeObservation":
        return pb.DescribeObservationRequest().SerializeToString()
    if method == "PushState":
        request = pb.PushStateRequest(symbol=_symbol(rng), position=rng.choice(_FLOATS))
        if rng.random() < 0.9:
            request.event_time.CopyFrom(_timestamp(rng))
        return request.SerializeToString()
    symbols = [_symbol(rng) for _ in range(rng.choice((0, 1, 2, 5, 65, 300)))]
    if method == "GetObservations":
        return pb.GetObservationsRequest(symbols=symbols).SerializeToString()
    return pb.WatchObservationsRequest(symbols=symbols).SerializeToString()


def _mutated(valid: bytes, rng: random.Random) -> bytes:
    data = bytearray(valid or b"\x0a\x06USDCOP")
    for _ in range(rng.randrange(1, 6)):
        action = rng.randrange(4)
        if action == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif action == 1 and data:
            del data[rng.randrange(len(data)) :]
        elif action == 2:
            data[rng.randrange(len(data) + 1) : 0] = rng.randbytes(rng.randrange(1, 12))
        else:
            data += rng.choice((b"\xff" * 10, b"\x0a\xff\xff\xff\xff\x0f", b"\x08\x80" * 6))
    return bytes(data)


def fuzz_request(method: str, rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return rng.randbytes(rng.randrange(0, 300))
    if kind < 0.6:
        return _mutated(_well_formed(method, rng), rng)
    return _well_formed(method, rng)


async def _call(channel: grpc.aio.Channel, method: str, body: bytes) -> str:
    try:
        if method == STREAM:
            stream = channel.unary_stream(
                SERVICE + method, request_serializer=None, response_deserializer=None
            )
            async for _ in stream(body, timeout=_STREAM_TIMEOUT_S):
                pass
        else:
            unary = channel.unary_unary(
                SERVICE + method, request_serializer=None, response_deserializer=None
            )
            await unary(body, timeout=_UNARY_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    return "OK"


async def fuzz(target: str, count: int, seed: int = 12) -> Counter[tuple[str, str]]:
    """``count`` fuzzed calls spread over the five RPCs, ``_CONCURRENCY`` at a time; the
    answers counted per (method, status code name)."""
    rng = random.Random(seed)
    methods = (*UNARY, STREAM)
    statuses: Counter[tuple[str, str]] = Counter()
    async with grpc.aio.insecure_channel(target) as channel:
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        for i in range(count):
            method = methods[i % len(methods)]
            queue.put_nowait((method, fuzz_request(method, rng)))

        async def worker() -> None:
            while not queue.empty():
                method, body = queue.get_nowait()
                statuses[(method, await _call(channel, method, body))] += 1

        await asyncio.gather(*(worker() for _ in range(_CONCURRENCY)))
    return statuses
