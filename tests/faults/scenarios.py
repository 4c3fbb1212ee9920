"""The fault scenarios; each returns rows of the table (a figure, and whether its invariant held).

What enters: a running ``FaultStack``. What leaves: ``Row``s. Every scenario starts the server
processes it needs (its own configuration), so one scenario's damage cannot hide in another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from online_store import feast_layout
from server.app import REFUSE_BEFORE_CLOSE_S
from tests.faults.fuzz import fuzz
from tests.faults.load import (
    GET,
    REQUEST,
    Outcome,
    back_to_store_s,
    burst,
    failed,
    open_loop,
    p99_ms,
)
from tests.faults.stack import FaultStack

BAD_CODES = ("INTERNAL", "UNKNOWN")
RATE_PER_S = 200.0
_CLOSE_EDGE_S = 0.15
_REFUSAL_EDGE_S = 0.25
"""How long before the close a call may still meet the server's refusal (its loop's lag)."""
_REFUSAL_TEXT = "shutting down"
"""In the server's refusal (``ShuttingDownError``): a refused call, not a failed one."""
"""Around the port's close, a call the transport cancels is the transport's, not the server's."""


@dataclass(frozen=True)
class Row:
    scenario: str
    figure: str
    value: str
    ok: bool = True
    """False: an invariant broke (the run exits non-zero)."""


def _codes(counts: Counter[str]) -> str:
    return ", ".join(f"{code} {n}" for code, n in counts.most_common())


# --- fuzz ----------------------------------------------------------------------------------


def fuzz_rows(stack: FaultStack, count: int) -> list[Row]:
    server = stack.start_server("fuzz")
    by_method = asyncio.run(fuzz(server.target, count))
    totals: Counter[str] = Counter()
    for (_, code), n in by_method.items():
        totals[code] += n
    bad = {code: totals[code] for code in BAD_CODES}
    # A stream still open at its short deadline is ended by the client: DEADLINE_EXCEEDED.
    # CANCELLED would mean the server dropped a call on its own.
    rows = [
        Row("fuzz", f"{count} fuzzed requests, by status", _codes(totals)),
        Row("fuzz", "INTERNAL / UNKNOWN / CANCELLED", f"{bad['INTERNAL']} / {bad['UNKNOWN']} / "
            f"{totals['CANCELLED']}", ok=sum(bad.values()) + totals["CANCELLED"] == 0),
    ]  # fmt: skip
    for (method, code), n in sorted(by_method.items()):
        if code in BAD_CODES:
            rows.append(Row("fuzz", f"{method} {code}", str(n), ok=False))
    server.stop()
    return rows


# --- Redis SIGSTOP / SIGKILL under an open loop --------------------------------------------


def _loop_with_fault(
    target: str, duration_s: float, fault_at_s: float, fault: Callable[[], float]
) -> tuple[list[Outcome], float, float]:
    """The open loop (in a thread of its own), with ``fault`` run in this thread at
    ``fault_at_s``: it returns when the store is back (monotonic time). A Redis restarted from
    a short-lived thread would die with it (its children die with their parent thread)."""
    results: list[list[Outcome]] = []
    loop_thread = threading.Thread(
        target=lambda: results.append(asyncio.run(open_loop(target, RATE_PER_S, duration_s)))
    )
    loop_thread.start()
    time.sleep(fault_at_s)
    began = time.monotonic()
    back = fault()
    loop_thread.join()
    return results[0], began, back


def redis_fault_rows(stack: FaultStack) -> list[Row]:
    server = stack.start_server("redis-faults", cache_ttl_ms=0)
    rows: list[Row] = []

    def sigstop() -> float:
        os.kill(stack.redis_pid, signal.SIGSTOP)
        time.sleep(4.0)
        os.kill(stack.redis_pid, signal.SIGCONT)
        return time.monotonic()

    outcomes, began, back = _loop_with_fault(server.target, 12.0, 2.0, sigstop)
    rows += _fault_figures("Redis SIGSTOP 4 s", outcomes, began, back)

    def sigkill_restart() -> float:
        os.kill(stack.redis_pid, signal.SIGKILL)
        time.sleep(3.0)
        stack.restart_redis()  # empty, like a real restart without persistence
        stack.rematerialize()  # what the feed's re-materialization writes
        return time.monotonic()

    outcomes, began, back = _loop_with_fault(server.target, 14.0, 2.0, sigkill_restart)
    rows += _fault_figures("Redis SIGKILL + restart", outcomes, began, back)
    server.stop()
    return rows


def _fault_figures(name: str, outcomes: list[Outcome], began: float, back: float) -> list[Row]:
    during = [o for o in outcomes if began <= o.scheduled_s < back]
    returned = back_to_store_s(outcomes, back)
    after = [o for o in outcomes if o.scheduled_s >= back]
    statuses = Counter(o.status for o in outcomes)
    return [
        Row(name, f"calls at {RATE_PER_S:g}/s (open loop)", str(len(outcomes))),
        Row(name, "failed calls", f"{failed(outcomes)} ({_codes(statuses)})",
            ok=failed(outcomes) == 0),
        Row(name, "p99 during the fault, ms", f"{p99_ms(during):.1f} ({len(during)} calls)"),
        Row(name, "served from the fallback during the fault",
            f"{sum(not o.from_store for o in during)} of {len(during)}"),
        Row(name, "time from Redis back to the first answer from the store, s",
            "never" if returned is None else f"{returned:.2f}", ok=returned is not None),
        Row(name, "answers from the store after Redis is back",
            f"{sum(o.from_store for o in after)} of {len(after)}"),
    ]  # fmt: skip


# --- corrupt fields ------------------------------------------------------------------------

_KEY = feast_layout.entity_key("USDCOP", contract.PROJECT)


def _feature(name: str) -> tuple[bytes, int]:
    feature = contract.FEATURES[contract.FEATURE_INDEX[name]]
    view_index = [v.name for v in contract.VIEWS].index(feature.view)
    return feast_layout.feature_field(feature.view, name), view_index


def _ts(view: str) -> tuple[bytes, int]:
    return feast_layout.ts_field(view), [v.name for v in contract.VIEWS].index(view)


_YEAR_2100_NS = 4_102_444_800 * 10**9
_CORRUPTIONS: tuple[tuple[str, tuple[bytes, int], Callable[[], bytes], int], ...] = (
    ("rsi_9 = 1e30 (valid float32)", _feature("rsi_9"),
     lambda: feast_layout.encode_float32(1e30), pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE),
    ("atr_pct = -0.5", _feature("atr_pct"),
     lambda: feast_layout.encode_float32(-0.5), pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE),
    ("position = 3", _feature("position"),
     lambda: feast_layout.encode_float32(3.0), pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE),
    ("vix_z = NaN", _feature("vix_z"),
     lambda: feast_layout.encode_float32(float("nan")), pb.FALLBACK_REASON_VIEW_MISSING),
    ("adx_14 = random bytes", _feature("adx_14"),
     lambda: os.urandom(7), pb.FALLBACK_REASON_VIEW_MISSING),
    ("dxy_z = a string Value", _feature("dxy_z"),
     lambda: b"\x12\x05hello", pb.FALLBACK_REASON_VIEW_MISSING),
    ("_ts:technical in year 2100", _ts("technical_features"),
     lambda: feast_layout.encode_timestamp(_YEAR_2100_NS), pb.FALLBACK_REASON_VIEW_FROM_FUTURE),
    ("_ts:macro = garbage", _ts("macro_features"),
     lambda: b"\xff\xff\xff", pb.FALLBACK_REASON_VIEW_MISSING),
    ("_ts:state 2 h old", _ts("state_features"),
     lambda: feast_layout.encode_timestamp(time.time_ns() - 7200 * 10**9),
     pb.FALLBACK_REASON_VIEW_EXPIRED),
)  # fmt: skip


def corrupt_rows(stack: FaultStack) -> list[Row]:
    # A generous Redis bound: this scenario is about decoding, not timing (a 5 ms timeout on a
    # busy machine would turn a row into STORE_UNAVAILABLE).
    server = stack.start_server("corrupt", cache_ttl_ms=0, redis_timeout_ms=1000.0)
    rows: list[Row] = []
    with (
        grpc.insecure_channel(server.target) as channel,
        contextlib.closing(stack.client()) as client,
    ):
        get = channel.unary_unary(GET, request_serializer=None, response_deserializer=None)
        for label, (field, view_index), value, expected in _CORRUPTIONS:
            stack.rematerialize()
            client.hset(_KEY, field, value())  # type: ignore[arg-type]
            try:
                answer = pb.Observation.FromString(get(REQUEST, timeout=5))
            except grpc.RpcError as error:
                rows.append(Row("corrupt fields", label, f"status {error.code().name}", ok=False))
                continue
            view = answer.views[view_index]
            reason = pb.FallbackReason.Name(view.fallback_reason)
            ok = (
                view.source == pb.VALUE_SOURCE_COMPUTE_FALLBACK and view.fallback_reason == expected
            )
            others = all(
                v.source == pb.VALUE_SOURCE_ONLINE_STORE
                for i, v in enumerate(answer.views)
                if i != view_index
            )
            rows.append(
                Row("corrupt fields", label, f"OK, {view.view} from the fallback: {reason}"
                    + ("" if others else " (other views too)"), ok=ok)
            )  # fmt: skip
        # The whole key of the wrong type: Redis answers WRONGTYPE; the fallback answers.
        client.delete(_KEY)
        client.set(_KEY, b"not a hash")
        try:
            answer = pb.Observation.FromString(get(REQUEST, timeout=5))
            reasons = {pb.FallbackReason.Name(v.fallback_reason) for v in answer.views}
            rows.append(Row("corrupt fields", "key is a string (WRONGTYPE)", f"OK, {reasons}"))
        except grpc.RpcError as error:
            rows.append(Row("corrupt fields", "key is a string", error.code().name, ok=False))
        client.delete(_KEY)
        stack.rematerialize()
    server.stop()
    return rows


# --- 5,000 concurrent calls ----------------------------------------------------------------


def concurrency_rows(stack: FaultStack, calls: int = 5000) -> list[Row]:
    server = stack.start_server("concurrency")
    rows: list[Row] = []
    rss_before = server.rss_mb()
    for channels in (1, 10):
        counts = asyncio.run(burst(server.target, calls, channels))
        other = sum(n for code, n in counts.items() if code not in ("OK", "RESOURCE_EXHAUSTED"))
        rows.append(
            Row("concurrency", f"{calls} concurrent calls on {channels} channel(s)",
                f"OK {counts['OK']}, RESOURCE_EXHAUSTED {counts['RESOURCE_EXHAUSTED']}, "
                f"other {other}" + (f" ({_codes(counts)})" if other else ""), ok=other == 0)
        )  # fmt: skip
    rows.append(
        Row("concurrency", "server RSS before -> after, MB",
            f"{rss_before:.0f} -> {server.rss_mb():.0f}")
    )  # fmt: skip
    server.stop()
    return rows


# --- SIGTERM under load --------------------------------------------------------------------


def sigterm_rows(stack: FaultStack) -> list[Row]:
    drain_s = 1.0
    server = stack.start_server(
        "sigterm", cache_ttl_ms=0, drain_period_s=drain_s, grace_period_s=5.0
    )

    async def run() -> tuple[list[Outcome], float]:
        task = asyncio.ensure_future(open_loop(server.target, RATE_PER_S, 5.0, timeout_s=5.0))
        await asyncio.sleep(2.0)
        sent_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        return await task, sent_at

    outcomes, sigterm_at = asyncio.run(run())
    closed_at = sigterm_at + drain_s
    exit_code = server.wait_exit(timeout_s=30)
    # Calls sent before the drain ended were accepted: each must succeed. Later calls are
    # refused: by the handlers with UNAVAILABLE for REFUSE_BEFORE_CLOSE_S, then by the closed
    # port (UNAVAILABLE), which is what a load balancer that ignored NOT_SERVING sees.
    # By *send* time: a busy client sends late, and the server closes on its own clock (1 s after
    # it handled SIGTERM), so 50 ms around the edge count as neither.
    sent_before_close = [o for o in outcomes if o.sent_s < closed_at - 0.05]
    # A call sent in the last moments before the close can reach the handlers after the
    # refusal began when the server's event loop lags (seen on a loaded CI machine: 1 of 580,
    # UNAVAILABLE). Its answer says so: the server's own refusal ("shutting down"), within
    # _REFUSAL_EDGE_S of the close, is counted as refused; any other failure, or a refusal
    # earlier than that, breaks the invariant.
    refused_at_edge = [
        o
        for o in sent_before_close
        if o.status == "UNAVAILABLE"
        and _REFUSAL_TEXT in o.detail
        and o.sent_s >= closed_at - _REFUSAL_EDGE_S
    ]
    accepted = [o for o in sent_before_close if o not in refused_at_edge]
    refused = [
        o for o in outcomes if o.sent_s >= closed_at - 0.05 and o.status != "OK"
    ] + refused_at_edge
    during_drain = [o for o in accepted if o.sent_s >= sigterm_at]
    # A call that reaches the server in the instant its transport shuts down is cancelled by
    # gRPC itself (RST_STREAM CANCEL -> CANCELLED), before any handler sees it: seen for 1-5 of
    # ~400 late calls per run. Counted apart, and allowed only at that instant.
    port_closed_at = closed_at + REFUSE_BEFORE_CLOSE_S
    at_close = [
        o
        for o in refused
        if o.status == "CANCELLED" and abs(o.sent_s - port_closed_at) <= _CLOSE_EDGE_S
    ]
    elsewhere = [o for o in refused if o not in at_close]
    bad = [o for o in outcomes if o.status in BAD_CODES]
    return [
        Row("SIGTERM under load", f"calls at {RATE_PER_S:g}/s; SIGTERM at 2 s, drain {drain_s:g} s",
            str(len(outcomes))),
        Row("SIGTERM under load", "accepted calls that failed (in flight at shutdown)",
            f"{failed(accepted)} of {len(accepted)}"
            + (f" ({_codes(Counter(o.status for o in accepted))})" if failed(accepted) else ""),
            ok=failed(accepted) == 0),
        Row("SIGTERM under load", "calls during the drain (NOT_SERVING, still accepted)",
            f"{len(during_drain) - failed(during_drain)} OK of {len(during_drain)}"),
        Row("SIGTERM under load",
            f"calls refused after the drain (of them sent within {_REFUSAL_EDGE_S * 1000:g} ms "
            "before it, the server's loop late)",
            f"{len(elsewhere)} ({_codes(Counter(o.status for o in elsewhere))}; "
            f"{len(refused_at_edge)} sent before)",
            ok=all(o.status == "UNAVAILABLE" for o in elsewhere) and not bad),
        Row("SIGTERM under load",
            f"cancelled by the transport as the port closed (within {_CLOSE_EDGE_S * 1000:g} ms)",
            f"{len(at_close)} of {len(refused)} refused"),
        Row("SIGTERM under load", "server exit code", str(exit_code), ok=exit_code == 0),
    ]  # fmt: skip


# --- soak ----------------------------------------------------------------------------------


def soak_rows(stack: FaultStack, duration_s: float) -> list[Row]:
    server = stack.start_server("soak")
    samples: list[tuple[float, float, int]] = []

    async def side_load(stop: asyncio.Event) -> Counter[str]:
        errors: Counter[str] = Counter()
        async with grpc.aio.insecure_channel(server.target) as channel:
            push = channel.unary_unary(
                "/usdcop.observation.v1.ObservationService/PushState",
                request_serializer=pb.PushStateRequest.SerializeToString,
                response_deserializer=pb.PushStateResponse.FromString,
            )
            batch = channel.unary_unary(
                "/usdcop.observation.v1.ObservationService/GetObservations",
                request_serializer=pb.GetObservationsRequest.SerializeToString,
                response_deserializer=pb.GetObservationsResponse.FromString,
            )
            tick = 0
            while not stop.is_set():
                try:
                    await batch(pb.GetObservationsRequest(symbols=["USDCOP"]), timeout=5)
                    if tick % 10 == 0:
                        stamp = Timestamp()
                        stamp.GetCurrentTime()
                        await push(
                            pb.PushStateRequest(symbol="USDCOP", position=0.5, event_time=stamp),
                            timeout=5,
                        )
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] += 1
                tick += 1
                await asyncio.sleep(0.1)
        return errors

    async def sampler(stop: asyncio.Event) -> None:
        start = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - start, server.rss_mb(), server.open_fds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(10.0, duration_s / 10))

    async def run() -> tuple[list[Outcome], Counter[str]]:
        stop = asyncio.Event()
        side = asyncio.ensure_future(side_load(stop))
        sampling = asyncio.ensure_future(sampler(stop))
        outcomes = await open_loop(server.target, RATE_PER_S, duration_s)
        stop.set()
        await sampling
        return outcomes, await side

    outcomes, side_errors = asyncio.run(run())
    samples.append((duration_s, server.rss_mb(), server.open_fds()))
    warm = [s for s in samples if s[0] >= duration_s * 0.1] or samples
    rss_start, rss_end = warm[0][1], samples[-1][1]
    fds_start, fds_end = warm[0][2], samples[-1][2]
    error_codes = Counter(o.status for o in outcomes if o.status != "OK") + side_errors
    errors = sum(error_codes.values())
    server.stop()
    return [
        Row("soak", "duration, calls (GetObservation 200/s + GetObservations 10/s + PushState 1/s)",
            f"{duration_s:g} s, {len(outcomes)} + side load"),
        Row("soak", "errors", f"{errors}" + (f" ({_codes(error_codes)})" if errors else ""),
            ok=errors == 0),
        Row("soak", "RSS after warm-up -> end, MB (drift)",
            f"{rss_start:.1f} -> {rss_end:.1f} ({rss_end - rss_start:+.1f})",
            ok=rss_end - rss_start < 50),
        Row("soak", "open fds after warm-up -> end", f"{fds_start} -> {fds_end}",
            ok=fds_end - fds_start <= 10),
        Row("soak", "p99 over the soak, ms", f"{p99_ms(outcomes):.1f}"),
    ]  # fmt: skip
