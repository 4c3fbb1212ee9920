"""The cluster read path: the project's slot router against redis-py's asyncio cluster client.

What enters: the number of rounds and calls per round (``python -m benchmarks.cluster_client``).
What leaves: a table, one row per call shape (one symbol's HMGET; eight symbols' HMGETs, as
GetObservations reads them): p50 and p99 per client, and the per-round ratio of redis-py's
p99 (and p50) to ours with its median and 95% interval (``benchmarks.intervals``).
Exit status 0.

Setup: a real 3-master Redis Cluster (``devstack.embedded_cluster``), one Feast row per symbol
written in Feast's layout, both clients warmed. Each round runs the same calls through each
client in turn, sequentially (one call in flight, as the server's read path awaits its one
read), so both figures of a round's ratio come from the same seconds. Both clients return the
same bytes; ours also decodes them (``decode_reply``), redis-py's reply is decoded too, so the
figures compare the whole read a request pays for.

Why it exists: the server keeps a hand-written cluster router (``online_store.cluster``) only
while it is measurably cheaper than the library's client on this path; this is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
from redis.asyncio.cluster import ClusterNode as LibraryNode
from redis.asyncio.cluster import RedisCluster

from canonical import contract
from core.clock import SystemClock
from devstack.embedded_cluster import EmbeddedCluster
from online_store import feast_layout
from online_store.address import RedisAddress
from online_store.read_plan import ReadPlan, read_plans
from online_store.reader import StoreReader, decode_reply

from .intervals import format_estimate, median_interval

SYMBOLS = tuple(f"SYM{i:02d}" for i in range(8))
"""Eight symbols spread over the cluster's masters."""


@dataclass(frozen=True)
class Row:
    """One call shape's figures over every round."""

    shape: str
    ours_p50_us: float
    ours_p99_us: float
    library_p50_us: float
    library_p99_us: float
    p99_ratio: str
    p50_ratio: str


def _write_rows(cluster: EmbeddedCluster, plans: dict[str, ReadPlan]) -> None:
    now_ns = time.time_ns()
    for plan in plans.values():
        mapping: dict[bytes, bytes] = {}
        for feature in contract.FEATURES:
            field = feast_layout.feature_field(feature.view, feature.name)
            mapping[field] = feast_layout.encode_float32(0.5)
        for view in contract.VIEWS:
            mapping[feast_layout.ts_field(view.name)] = feast_layout.encode_timestamp(now_ns)
        client = cluster.owner_of(plan.key).client()
        try:
            client.hset(plan.key, mapping=mapping)  # type: ignore[arg-type]
        finally:
            client.close()


async def _timed(call: Callable[[], Awaitable[object]], calls: int) -> np.ndarray:
    out = np.empty(calls, dtype=np.int64)
    for i in range(calls):
        started = time.perf_counter_ns()
        await call()
        out[i] = time.perf_counter_ns() - started
    return out


async def _measure(cluster: EmbeddedCluster, rounds: int, calls: int) -> list[Row]:
    plans = read_plans(SYMBOLS, contract.PROJECT)
    _write_rows(cluster, plans)
    first = cluster.nodes[0]
    address = RedisAddress(
        "127.0.0.1",
        first.port,
        cluster=True,
        startup_nodes=tuple(("127.0.0.1", node.port) for node in cluster.nodes),
    )
    reader = StoreReader(address, plans, SystemClock(), timeout_s=1.0)
    library = RedisCluster(
        startup_nodes=[LibraryNode("127.0.0.1", node.port) for node in cluster.nodes],
        decode_responses=False,
    )
    clock = SystemClock()
    one = plans[SYMBOLS[0]]
    many = list(plans.values())

    async def ours_one() -> object:
        return await reader.read(one, 1.0)

    async def library_one() -> object:
        reply: list[bytes | None] = await library.hmget(one.key, list(one.fields))  # type: ignore[arg-type, misc]
        return decode_reply(reply, clock.wall_ns())

    async def ours_many() -> object:
        return await reader.read_many(many, 1.0)

    async def library_many() -> object:
        # One pipeline: redis-py groups the commands by node and sends them concurrently.
        async with library.pipeline(transaction=False) as pipe:
            for plan in many:
                pipe.hmget(plan.key, list(plan.fields))  # type: ignore[arg-type]
            replies = await pipe.execute()
        now_ns = clock.wall_ns()
        return [decode_reply(reply, now_ns) for reply in replies]

    shapes = {
        "one symbol": (ours_one, library_one),
        f"{len(many)} symbols": (ours_many, library_many),
    }
    try:
        for ours, theirs in shapes.values():  # warm both: connections, slot maps
            await _timed(ours, 200)
            await _timed(theirs, 200)
        return [
            await _shape_row(name, ours, theirs, rounds, calls)
            for name, (ours, theirs) in shapes.items()
        ]
    finally:
        await reader.aclose()
        await library.aclose()


async def _shape_row(
    name: str,
    ours: Callable[[], Awaitable[object]],
    theirs: Callable[[], Awaitable[object]],
    rounds: int,
    calls: int,
) -> Row:
    ours_all: list[np.ndarray] = []
    theirs_all: list[np.ndarray] = []
    p99_ratios: list[float] = []
    p50_ratios: list[float] = []
    for index in range(rounds):
        # Alternate which client goes first, so neither always meets a fresher machine.
        if index % 2 == 0:
            a = await _timed(ours, calls)
            b = await _timed(theirs, calls)
        else:
            b = await _timed(theirs, calls)
            a = await _timed(ours, calls)
        ours_all.append(a)
        theirs_all.append(b)
        p99_ratios.append(float(np.percentile(b, 99) / np.percentile(a, 99)))
        p50_ratios.append(float(np.percentile(b, 50) / np.percentile(a, 50)))
    a_all = np.concatenate(ours_all) / 1000.0
    b_all = np.concatenate(theirs_all) / 1000.0
    return Row(
        shape=name,
        ours_p50_us=float(np.percentile(a_all, 50)),
        ours_p99_us=float(np.percentile(a_all, 99)),
        library_p50_us=float(np.percentile(b_all, 50)),
        library_p99_us=float(np.percentile(b_all, 99)),
        p99_ratio=format_estimate(median_interval(p99_ratios)),
        p50_ratio=format_estimate(median_interval(p50_ratios)),
    )


def render(rows: Sequence[Row], rounds: int, calls: int) -> str:
    lines = [
        f"cluster read path, 3 masters, {rounds} interleaved rounds x {calls} sequential calls",
        "ratio = redis-py RedisCluster / online_store router, per round: median [95% interval]",
        "",
        "| call | ours p50 us | ours p99 us | redis-py p50 us | redis-py p99 us "
        "| p50 ratio | p99 ratio |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    lines += [
        f"| {r.shape} | {r.ours_p50_us:.0f} | {r.ours_p99_us:.0f} | {r.library_p50_us:.0f} "
        f"| {r.library_p99_us:.0f} | {r.p50_ratio} | {r.p99_ratio} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cluster_client", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--calls", type=int, default=1000, help="calls per client per round")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 100:
        parser.error("--rounds must be >= 1 and --calls >= 100 (a p99 needs 100 calls)")
    with EmbeddedCluster() as cluster:
        rows = asyncio.run(_measure(cluster, args.rounds, args.calls))
    print(render(rows, args.rounds, args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
