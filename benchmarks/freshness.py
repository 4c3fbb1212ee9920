"""How fresh is a cached answer, and what does freshness cost? Staleness, hit ratio, and watch
delivery, each against a real redis-server and ``python -m server`` processes.

What enters: nothing (it starts its own Redis and servers; the observation hash is written in
Feast's layout with event times of now, so every view is fresh). What leaves: a printed
markdown report and ``benchmarks/results/freshness-<UTC>.json``.

Scenarios (each once; the machine is shared, so read them as one run's figures):

- ``staleness``: a writer changes the stored ``position`` (HSET, as materialization or a
  PushState would) and records t0 just before the write; readers, one per channel (each its own
  TCP connection, spread by SO_REUSEPORT over the workers), call GetObservation back to back
  until they see the new value. Staleness = their time of seeing it minus t0, pooled over
  every (write, channel); the ``all`` columns take, per write, the last channel to see it.
  The readers poll back to back, so a figure includes up to one GetObservation round trip
  (more with several channels sharing the client process's cores). 1,000 writes with 1 and
  with 4 workers, tracking on; TTL mode (tracking off, 1 s TTL) as the reference with 100
  writes (each takes up to a second; the readers keep the entry warm, so a write lands just
  after a reload and waits about the whole TTL: TTL mode's worst case, which is its p99).
- ``hit_ratio``: GetObservation at 1,000 calls/s (open loop) while a writer changes the hash.
  Production writes every 5 minutes; running that for real needs an hour per few samples, so
  time is compressed for the writes only: one write every ``compressed_write_s`` (100x:
  3 s), reads at the real rate. The measured ratio therefore counts 100x more invalidation
  misses than production would; the projection scales only those back:
  misses per real 5 min = (invalidation misses per write) + (300 s / tracked lifetime, the
  entries' own expiry, uncompressed) -> hit ratio = 1 - misses / 300,000 reads. TTL mode is
  measured in the same way (its misses are one per TTL, independent of writes).
- ``watch``: N WatchObservations subscribers (1, 100, 1,000) over ceil(N/100) channels in one
  client process; per write, each subscriber's receipt time of the new value minus t0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from online_store import feast_layout
from online_store.address import RedisAddress
from server.config import ServerConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
POSITION = contract.FEATURE_INDEX["position"]
_KEY = feast_layout.entity_key("USDCOP", contract.PROJECT)
_POSITION_FIELD = feast_layout.feature_field("state_features", "position")
_REQUEST = pb.GetObservationRequest(symbol="USDCOP")


def write_fresh_observation(client: redis.Redis) -> None:
    """USDCOP's 15 features and 3 ``_ts`` fields, event time = now - 1 min."""
    now_ns = time.time_ns() - 60 * 10**9
    mapping: dict[bytes, bytes] = {
        feast_layout.feature_field(f.view, f.name): feast_layout.encode_float32(0.0)
        for f in contract.FEATURES
    }
    for view in contract.VIEWS:
        mapping[feast_layout.ts_field(view.name)] = feast_layout.encode_timestamp(now_ns)
    client.hset(_KEY, mapping=mapping)  # type: ignore[arg-type]


def set_position(client: redis.Redis, value: float) -> None:
    """One write of the stored position (HSET of one field, as a PushState would)."""
    client.hset(_KEY, _POSITION_FIELD, feast_layout.encode_float32(value))  # type: ignore[arg-type]


def position_value(n: int) -> float:
    """The n-th written position: distinct, float32-exact, within [-1, 1]."""
    return ((n % 2000) - 1000) / 1024.0


@contextmanager
def serving(workers: int, **overrides: Any) -> Iterator[tuple[ServerProcess, redis.Redis]]:
    with EmbeddedRedis() as redis_server, tempfile.TemporaryDirectory() as scratch:
        client = RedisAddress(redis_server.host, redis_server.port).connect()
        write_fresh_observation(client)
        config = ServerConfig(
            redis_host=redis_server.host,
            redis_port=redis_server.port,
            port=0,
            data_dir=Path(scratch),
            workers=workers,
            redis_timeout_ms=1000.0,  # a loaded machine must not turn a slow read into an error
        ).with_overrides(**overrides)
        with ServerProcess(config) as server:
            server.wait_serving()
            time.sleep(1.0)  # every worker's tracking connection is up (start-up bound: 1 s)
            yield server, client
        client.close()


def _percentiles_ms(samples_s: list[float]) -> dict[str, float | int]:
    if not samples_s:
        return {"count": 0}
    ms = np.asarray(samples_s) * 1000.0
    return {
        "count": len(ms),
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p99": round(float(np.percentile(ms, 99)), 3),
        "max": round(float(ms.max()), 3),
    }


# --- staleness -------------------------------------------------------------------------


async def _staleness_run(
    target: str, client: redis.Redis, writes: int, channels: int, gap_s: float
) -> dict[str, Any]:
    chans = [grpc.aio.insecure_channel(target, options=[("bench.c", i)]) for i in range(channels)]
    stubs = [pb_grpc.ObservationServiceStub(c) for c in chans]
    for stub in stubs:
        await stub.GetObservation(_REQUEST, timeout=5)
    per_channel: list[float] = []
    all_channels: list[float] = []
    for n in range(1, writes + 1):
        value = position_value(n)

        async def reader(stub: Any, value: float = value) -> float:
            while True:
                answer = await stub.GetObservation(_REQUEST, timeout=5)
                if answer.values[POSITION] == value:
                    return time.perf_counter()

        t0 = time.perf_counter()
        set_position(client, value)
        seen = await asyncio.gather(*(reader(s) for s in stubs))
        per_channel.extend(t - t0 for t in seen)
        all_channels.append(max(seen) - t0)
        await asyncio.sleep(gap_s)
    for c in chans:
        await c.close(grace=None)
    return {
        "per_channel": _percentiles_ms(per_channel),
        "all_channels": _percentiles_ms(all_channels),
    }


def staleness(workers: int, writes: int, tracking: bool) -> dict[str, Any]:
    channels = 1 if workers == 1 else 2 * workers
    with serving(workers, cache_tracking=tracking) as (server, client):
        result = asyncio.run(_staleness_run(server.target, client, writes, channels, 0.005))
    return {"workers": workers, "tracking": tracking, "writes": writes, "channels": channels,
            **result}  # fmt: skip


# --- hit ratio -------------------------------------------------------------------------


async def _hit_ratio_run(
    target: str, client: redis.Redis, duration_s: float, rate: float, write_every_s: float
) -> dict[str, Any]:
    channel = grpc.aio.insecure_channel(target)
    stub = pb_grpc.ObservationServiceStub(channel)
    await stub.GetObservation(_REQUEST, timeout=5)
    hits = misses = errors = 0
    stale = 0
    latest = [position_value(0)]
    pending: set[asyncio.Task[None]] = set()

    async def one(expected_at_send: float) -> None:
        nonlocal hits, misses, errors, stale
        try:
            answer = await stub.GetObservation(_REQUEST, timeout=5)
        except grpc.aio.AioRpcError:
            errors += 1
            return
        if answer.from_cache:
            hits += 1
        else:
            misses += 1
        if answer.values[POSITION] != expected_at_send and answer.values[POSITION] != latest[0]:
            stale += 1

    async def writer() -> int:
        n = 0
        next_write = time.perf_counter() + write_every_s
        end = time.perf_counter() + duration_s
        while next_write < end:
            await asyncio.sleep(max(0.0, next_write - time.perf_counter()))
            n += 1
            latest[0] = position_value(n)
            set_position(client, latest[0])
            next_write += write_every_s
        return n

    set_position(client, latest[0])
    await asyncio.sleep(0.1)
    writes_task = asyncio.ensure_future(writer())
    start = time.perf_counter()
    sent = 0
    while True:
        due = start + sent / rate
        now = time.perf_counter()
        if due - start >= duration_s:
            break
        if due > now:
            await asyncio.sleep(due - now)
        task = asyncio.ensure_future(one(latest[0]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    await asyncio.gather(*pending)
    writes = await writes_task
    elapsed = time.perf_counter() - start
    await channel.close(grace=None)
    return {"reads": hits + misses, "hits": hits, "misses": misses, "errors": errors,
            "writes": writes, "achieved_rate": round((hits + misses) / elapsed, 1),
            "answers_older_than_the_write_before_their_send": stale}  # fmt: skip


def hit_ratio(tracking: bool, duration_s: float, compressed_write_s: float) -> dict[str, Any]:
    config = ServerConfig()
    with serving(1, cache_tracking=tracking) as (server, client):
        result = asyncio.run(
            _hit_ratio_run(server.target, client, duration_s, 1000.0, compressed_write_s)
        )
    result["tracking"] = tracking
    result["measured_hit_ratio"] = round(result["hits"] / max(result["reads"], 1), 6)
    real_write_s, reads_per_interval = 300.0, 300.0 * 1000.0
    if tracking:
        per_write = result["misses"] / max(result["writes"], 1)
        expiries = real_write_s / (config.cache_tracked_ttl_ms / 1000.0)
        projected_misses = per_write + expiries
        result["misses_per_write_incl_expiries_in_run"] = round(per_write, 2)
    else:
        projected_misses = real_write_s / (config.cache_ttl_ms / 1000.0)
    result["projected_hit_ratio_write_every_5_min"] = round(
        1 - projected_misses / reads_per_interval, 6
    )
    result["time_compression"] = real_write_s / compressed_write_s
    return result


# --- watch -----------------------------------------------------------------------------


async def _watch_run(
    target: str, client: redis.Redis, subscribers: int, writes: int
) -> dict[str, Any]:
    n_channels = max(1, math.ceil(subscribers / 100))
    chans = [grpc.aio.insecure_channel(target, options=[("bench.c", i)]) for i in range(n_channels)]
    stubs = [pb_grpc.ObservationServiceStub(c) for c in chans]
    received: dict[float, list[float]] = {}
    first_seen = asyncio.Event()
    counts: dict[float, int] = {}
    all_in: dict[float, asyncio.Event] = {}
    ready = 0
    all_ready = asyncio.Event()

    async def subscriber(stub: Any) -> None:
        nonlocal ready
        call = stub.WatchObservations(pb.WatchObservationsRequest(symbols=["USDCOP"]))
        async for message in call:
            if message.WhichOneof("event") != "observation":
                continue
            now = time.perf_counter()
            value = message.observation.values[POSITION]
            if value not in received:
                ready += 1
                if ready == subscribers:
                    all_ready.set()
                continue
            received[value].append(now)
            counts[value] += 1
            if counts[value] == subscribers:
                all_in[value].set()
        first_seen.set()

    tasks = [asyncio.ensure_future(subscriber(stubs[i % n_channels])) for i in range(subscribers)]
    await asyncio.wait_for(all_ready.wait(), 60)
    latencies: list[float] = []
    missed = 0
    for n in range(1, writes + 1):
        value = position_value(n)
        received[value] = []
        counts[value] = 0
        all_in[value] = asyncio.Event()
        t0 = time.perf_counter()
        set_position(client, value)
        try:
            await asyncio.wait_for(all_in[value].wait(), 10)
        except TimeoutError:
            missed += subscribers - counts[value]
        latencies.extend(t - t0 for t in received[value])
        await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in chans:
        await c.close(grace=None)
    return {"subscribers": subscribers, "channels": n_channels, "writes": writes,
            "not_delivered_within_10s": missed, **_percentiles_ms(latencies)}  # fmt: skip


def watch(subscribers: int, writes: int) -> dict[str, Any]:
    with serving(1) as (server, client):
        return asyncio.run(_watch_run(server.target, client, subscribers, writes))


# --- report ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.freshness", description=__doc__)
    parser.add_argument("--writes", type=int, default=1000, help="staleness writes per config")
    parser.add_argument("--ttl-writes", type=int, default=100, help="TTL-mode reference writes")
    parser.add_argument("--hit-seconds", type=float, default=30.0)
    parser.add_argument("--compressed-write-s", type=float, default=3.0)
    parser.add_argument("--watch-writes", type=int, default=100)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    out["staleness"] = [
        staleness(1, args.writes, tracking=True),
        staleness(4, args.writes, tracking=True),
        staleness(1, args.ttl_writes, tracking=False),
    ]
    out["hit_ratio"] = [
        hit_ratio(True, args.hit_seconds, args.compressed_write_s),
        hit_ratio(False, args.hit_seconds, args.compressed_write_s),
    ]
    out["watch"] = [
        watch(n, max(10, args.watch_writes // max(1, n // 100))) for n in (1, 100, 1000)
    ]
    out["duration_s"] = round(time.perf_counter() - started, 1)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"freshness-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(out, indent=2))
    print(render(out))
    print(f"results: {path}")
    return 0


def render(out: dict[str, Any]) -> str:
    lines = ["## Staleness: write to Redis -> GetObservation returns it (ms)", "",
             "| workers | mode | writes | channels | per channel p50 | p99 | all p50 | p99 | max |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in out["staleness"]:
        pc, ac = row["per_channel"], row["all_channels"]
        mode = "tracking" if row["tracking"] else "TTL 1 s"
        lines.append(
            f"| {row['workers']} | {mode} | {row['writes']} | {row['channels']} | {pc['p50']} | "
            f"{pc['p99']} | {ac['p50']} | {ac['p99']} | {ac['max']} |"
        )
    lines += ["", "## Cache hit ratio: 1,000 reads/s, writes time-compressed", "",
              "| mode | reads | writes | hits | misses | measured | projected, 5 min writes |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in out["hit_ratio"]:
        mode = "tracking" if row["tracking"] else "TTL 1 s"
        lines.append(
            f"| {mode} | {row['reads']} | {row['writes']} | {row['hits']} | {row['misses']} | "
            f"{row['measured_hit_ratio']} | {row['projected_hit_ratio_write_every_5_min']} |"
        )
    lines += ["", "## Watch delivery: write to Redis -> subscriber receipt (ms)", "",
              "| subscribers | channels | writes | deliveries | p50 | p99 | max | not delivered |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in out["watch"]:
        lines.append(
            f"| {row['subscribers']} | {row['channels']} | {row['writes']} | {row['count']} | "
            f"{row.get('p50')} | {row.get('p99')} | {row.get('max')} | "
            f"{row['not_delivered_within_10s']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
