"""Fault rows for the second reliability probe: watch saturation, a second instance on the port,
the refill after FLUSHALL + an immediate PushState, and the skewed-push sequence.

What enters: a running ``FaultStack``. What leaves: ``Row``s. Each scenario starts its own
server processes; the refill scenario puts the materialized rows back when it ends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from usdcop.observation.v1 import observation_pb2 as pb
from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

from devstack.server_process import ServerProcess
from server.config import ServerConfig
from tests.faults.load import open_loop, p99_ms
from tests.faults.scenarios import RATE_PER_S, Row
from tests.faults.stack import FaultStack

WATCHERS = 1000
_WATCH_CHANNELS = 20


def _codes(counts: Counter[str]) -> str:
    return ", ".join(f"{code} {n}" for code, n in counts.most_common())


# --- watch saturation ----------------------------------------------------------------------


def watch_saturation_rows(stack: FaultStack) -> list[Row]:
    """1,000 open WatchObservations streams (the default watch bound), then unary calls at a
    fixed rate and health checks: none may be refused; the 1,001st watcher gets the watch
    bound's own message."""
    server = stack.start_server("watch-saturation", cache_ttl_ms=0)

    async def run() -> dict[str, object]:
        baseline = await open_loop(server.target, RATE_PER_S, 3.0, timeout_s=5.0)
        channels = [
            grpc.aio.insecure_channel(server.target, options=[("grpc.channel_id", i)])
            for i in range(_WATCH_CHANNELS)
        ]
        request = pb.WatchObservationsRequest(symbols=["USDCOP"])
        stubs = [pb_grpc.ObservationServiceStub(c) for c in channels]
        calls = [stubs[i % _WATCH_CHANNELS].WatchObservations(request) for i in range(WATCHERS)]
        first = await asyncio.gather(*(c.read() for c in calls), return_exceptions=True)
        opened = sum(1 for m in first if isinstance(m, pb.WatchObservationsResponse))
        extra = stubs[0].WatchObservations(request)
        try:
            await extra.read()
            extra_status = "OK (not refused)"
        except grpc.aio.AioRpcError as error:
            extra_status = f"{error.code().name}: {error.details()}"
        health = health_pb2_grpc.HealthStub(channels[0])

        async def checks() -> Counter[str]:
            seen: Counter[str] = Counter()
            for _ in range(50):
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                    seen[health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)] += 1
                except grpc.aio.AioRpcError as error:
                    seen[error.code().name] += 1
                await asyncio.sleep(0.1)
            return seen

        loaded, health_seen = await asyncio.gather(
            open_loop(server.target, RATE_PER_S, 5.0, timeout_s=5.0), checks()
        )
        for call in calls:
            call.cancel()
        for channel in channels:
            await channel.close(grace=None)
        return {
            "baseline": baseline,
            "loaded": loaded,
            "opened": opened,
            "extra": extra_status,
            "health": health_seen,
        }

    result = asyncio.run(run())
    server.stop()
    baseline, loaded = result["baseline"], result["loaded"]
    assert isinstance(baseline, list) and isinstance(loaded, list)
    loaded_codes = Counter(o.status for o in loaded)
    health_seen = result["health"]
    assert isinstance(health_seen, Counter)
    extra = str(result["extra"])
    return [
        Row("watch saturation", "watch streams opened (bound 1000)", f"{result['opened']}",
            ok=result["opened"] == WATCHERS),
        Row("watch saturation", "the 1,001st watcher", extra,
            ok=extra.startswith("RESOURCE_EXHAUSTED: this server already serves its maximum")),
        Row("watch saturation", f"GetObservation at {RATE_PER_S:g}/s for 5 s during: codes",
            _codes(loaded_codes), ok=set(loaded_codes) == {"OK"}),
        Row("watch saturation", "GetObservation p99 without -> with 1,000 watchers, ms",
            f"{p99_ms(baseline):.2f} -> {p99_ms(loaded):.2f}"),
        Row("watch saturation", "health checks during (50)", _codes(health_seen),
            ok=set(health_seen) == {"SERVING"}),
    ]  # fmt: skip


# --- a second instance on the port ---------------------------------------------------------


def second_instance_rows(stack: FaultStack) -> list[Row]:
    """A second ``python -m server --workers 2`` on the port of a running ``--workers 2``."""
    first = stack.start_server("port-owner", workers=2)
    config = ServerConfig(
        redis_host=stack.redis.host,
        redis_port=stack.redis.port,
        data_dir=stack.data_dir,
        port=first.port,
        workers=2,
        symbols=("USDCOP", "USDMXN"),
    )
    began = time.monotonic()
    second = ServerProcess(config, name="second", echo_stderr=False).start()
    returncode = second.wait_exit(timeout_s=60)
    took_s = time.monotonic() - began
    second.stop()
    lines = [line for line in second.stderr_lines() if line.strip()]
    first_alive = first.returncode is None
    first.stop()
    said = lines[-1].split(": ", 1)[-1] if lines else "(nothing)"
    return [
        Row("second instance on the port", "exit code, lines on stderr, time to refuse",
            f"{returncode}, {len(lines)} line(s), {took_s:.2f} s",
            ok=returncode == 1 and len(lines) == 1),
        Row("second instance on the port", "its line", said,
            ok="already served by another observation server instance" in said),
        Row("second instance on the port", "first instance still running", str(first_alive),
            ok=first_alive),
    ]  # fmt: skip


# --- flush then push: the refill -------------------------------------------------------------


def refill_rows(stack: FaultStack, tick_s: float = 1.0) -> list[Row]:
    """The live loop of ``pipeline up`` (feed + online-store watch, one tick a second) on the
    stack's data; FLUSHALL, then at once a PushState: how long until every view is served from
    the online store again."""
    from canonical import contract
    from online_store.address import RedisAddress
    from pipeline.feast_repo import open_feature_store
    from pipeline.live import LiveFeed
    from pipeline.online_watch import OnlineStoreWatch

    address = RedisAddress(host=stack.redis.host, port=stack.redis.port)
    store = open_feature_store(stack.data_dir.parent / "feature_repo", address)
    watch = OnlineStoreWatch(address, contract.PROJECT, ("USDCOP",))
    feed = LiveFeed(stack.data_dir, store, store_lost=watch.lost)
    server = stack.start_server("refill", cache_ttl_ms=0)
    stop = threading.Event()
    refills: list[float] = []

    def on_step(step: object) -> None:
        if getattr(step, "refilled", False):
            refills.append(time.monotonic())

    loop = threading.Thread(target=feed.run, args=(stop, tick_s, on_step), daemon=True)
    loop.start()
    try:
        time.sleep(2 * tick_s)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.ObservationServiceStub(channel)
            with stack.client() as client:
                client.flushall()
            flushed = time.monotonic()
            now = datetime.now(UTC)
            pushed = stub.PushState(
                pb.PushStateRequest(
                    symbol="USDCOP",
                    position=0.0,
                    event_time=Timestamp(seconds=int(now.timestamp())),
                ),
                timeout=5,
            )
            back_s: float | None = None
            while time.monotonic() - flushed < 60:
                answer = stub.GetObservation(pb.GetObservationRequest(symbol="USDCOP"), timeout=5)
                if all(v.source == pb.VALUE_SOURCE_ONLINE_STORE for v in answer.views):
                    back_s = time.monotonic() - flushed
                    break
                time.sleep(0.05)
    finally:
        stop.set()
        loop.join(timeout=60)
        watch.close()
        server.stop()
        stack.rematerialize()
    return [
        Row("flush then push", "PushState right after FLUSHALL applied", str(pushed.applied)),
        Row("flush then push", f"every view from the online store again after (tick {tick_s:g} s)",
            "never (60 s)" if back_s is None else f"{back_s:.2f} s",
            ok=back_s is not None and back_s < 30),
        Row("flush then push", "refills by the feed", str(len(refills)), ok=len(refills) >= 1),
    ]  # fmt: skip


# --- the skewed-push sequence --------------------------------------------------------------


def skewed_push_rows(stack: FaultStack) -> list[Row]:
    """PushState(now + 300 s), then within-skew and correct pushes: refused with the rule's
    message; a push 3 s ahead holds correct ones back 3 s at most, and says what it holds."""
    server = stack.start_server("skewed-push", cache_ttl_ms=0)

    def push(stub: pb_grpc.ObservationServiceStub, at: datetime, position: float) -> object:
        stamp = Timestamp()
        stamp.FromDatetime(at)
        try:
            return stub.PushState(
                pb.PushStateRequest(symbol="USDCOP", position=position, event_time=stamp),
                timeout=5,
            )
        except grpc.RpcError as error:
            return error

    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.ObservationServiceStub(channel)
        far = push(stub, datetime.now(UTC) + timedelta(seconds=300), 1.0)
        ahead_at = datetime.now(UTC) + timedelta(seconds=3)
        ahead = push(stub, ahead_at, 1.0)
        held = push(stub, datetime.now(UTC), -1.0)
        began = time.monotonic()
        recovered_s: float | None = None
        while time.monotonic() - began < 30:
            answer = push(stub, datetime.now(UTC), -1.0)
            if isinstance(answer, pb.PushStateResponse) and answer.applied:
                recovered_s = time.monotonic() - began
                break
            time.sleep(0.05)
    server.stop()
    far_text = (
        f"{far.code().name}: {far.details()}"  # type: ignore[attr-defined]
        if isinstance(far, grpc.RpcError)
        else "accepted"
    )
    held_text = "error"
    held_ok = False
    if isinstance(held, pb.PushStateResponse):
        stored = held.stored_event_time.ToDatetime(tzinfo=UTC)
        held_text = f"applied={held.applied}, stored_event_time = the +3 s push's: " + str(
            abs((stored - ahead_at).total_seconds()) < 1e-3
        )
        held_ok = not held.applied and abs((stored - ahead_at).total_seconds()) < 1e-3
    return [
        Row("skewed push", "PushState(now + 300 s)", far_text,
            ok=far_text.startswith("INVALID_ARGUMENT: event_time is")),
        Row("skewed push", "PushState(now + 3 s) applied",
            str(isinstance(ahead, pb.PushStateResponse) and ahead.applied)),
        Row("skewed push", "then PushState(now)", held_text, ok=held_ok),
        Row("skewed push", "correct pushes apply again after",
            "never (30 s)" if recovered_s is None else f"{recovered_s:.2f} s",
            ok=recovered_s is not None and recovered_s <= 5.5),
    ]  # fmt: skip
