"""ObservationService handlers and the one boundary that maps errors to gRPC status codes.

What enters: raw request bytes (the service is registered with identity (de)serializers, so a
malformed request is ours to reject with INVALID_ARGUMENT, and a cache hit returns prebuilt
bytes). What leaves: serialized responses, or an aborted call with a status and a safe message.

GetObservation, in order:
1. cache hit: the request bytes of each served symbol are known at start-up, so a hit is two
   dict lookups and a clock read, then the prebuilt ``from_cache = true`` bytes;
2. otherwise parse + validate, then one (single-flight) load: breaker -> one HMGET bounded by
   ``redis_timeout_ms`` (and, with the cache off, by the caller's deadline) -> per-view
   assembly with the fallback -> serialized twice and cached.

Every store read goes through the online store's one guarded read (``OnlineStore.read``).
Every RPC's errors go through ``_error_boundary`` (``_abort``): the unary calls whole, a
WatchObservations stream's setup (parse, validate, subscribe, first observations) and its end
at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from core.clock import Clock
from online_store.errors import StoreError, StoreFullError
from online_store.feast_layout import varint
from online_store.read_plan import ReadPlan
from online_store.store import OnlineStore
from server.batch import BatchObserver
from server.config import SYMBOL_PATTERN, ServerConfig
from server.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    OnlineStoreFullError,
    OnlineStoreUnavailableError,
    RequestError,
    ResourceExhaustedError,
    ServerError,
    ShuttingDownError,
    SymbolNotFoundError,
)
from server.fallback import ComputeFallback
from server.metrics import ServerMetrics
from server.observation import Provenance, SerializedObservation, assemble_observation
from server.security import ALLOW_EVERY_CALLER, PushAuthorizer
from server.serving_log import ServingLog
from server.ttl_cache import TtlCache
from server.validation import push_event_time_ns
from server.watch import Subscription, WatchHub, heartbeat_period_s

logger = logging.getLogger(__name__)

_Context = grpc.aio.ServicerContext[bytes, bytes]
T = TypeVar("T")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ObservationService"].full_name

_DEADLINE_RESERVE_MIN_S = 0.001
_DEADLINE_RESERVE_SHARE = 0.1
"""Kept back from the caller's remaining time (10%, at least 1 ms) to assemble and send the
fallback's answer when Redis is slower than the deadline allows."""
_PUSH_TIMEOUT_S = 1.0
"""Bound on PushState's write transaction when the caller set no shorter deadline."""
_STATE_TTL_NS = int(contract.STATE.ttl.total_seconds()) * 1_000_000_000
"""A pushed state older than its view's TTL would be expired at once: refused."""


def describe_contract() -> pb.ObservationContract:
    """The contract as DescribeObservation reports it (built from canonical.contract)."""
    return pb.ObservationContract(
        contract_id=contract.CONTRACT_ID,
        contract_hash=contract.CONTRACT_HASH,
        features=[
            pb.FeatureSpec(index=f.index, name=f.name, view=f.view, dtype=f.dtype)
            for f in contract.FEATURES
        ],
        views=[
            pb.ViewSpec(
                name=v.name, ttl_seconds=int(v.ttl.total_seconds()), features=list(v.features)
            )
            for v in contract.VIEWS
        ],
        feast_project=contract.PROJECT,
        feature_service=contract.FEATURE_SERVICE,
    )


def validate_symbol(symbol: str, served: Mapping[str, ReadPlan]) -> ReadPlan:
    """The plan of ``symbol``; InvalidArgumentError if malformed, SymbolNotFoundError if unknown."""
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise InvalidArgumentError("symbol must be 1-16 characters of [A-Z0-9_]")
    plan = served.get(symbol)
    if plan is None:
        raise SymbolNotFoundError(symbol)
    return plan


def _parse(message_type: Any, request: bytes) -> Any:
    try:
        return message_type.FromString(request)
    except (DecodeError, ValueError):
        raise InvalidArgumentError(f"malformed {message_type.DESCRIPTOR.name}") from None


def time_normalized_of(event_time_ns: int) -> float:
    """canonical.builder.time_normalized for one event time, as a float32-exact float."""
    # numpy and the builder (no pandas): not imported before SERVING; the fallback's first
    # refresh imports them in its thread right after (ComputeFallback.refresh), so a push
    # rarely finds them missing, and then waits for that import (~0.1 s), once.
    import numpy as np

    from canonical.builder import time_normalized

    return float(time_normalized(np.array([event_time_ns], dtype=np.int64))[0])


def float32_of(value: float) -> float:
    """``value`` rounded to float32 (as numpy's ``float32`` rounds it), as a float."""
    import numpy as np

    return float(np.float32(value))


@dataclass(frozen=True)
class ServiceSettings:
    """The service's bounds, from the ``ServerConfig`` (``of``)."""

    redis_timeout_s: float
    """Bound on a shared (cached) load's store read (``redis_timeout_ms``)."""
    max_clock_skew_ns: int
    """How far in the future a pushed event time may be."""
    batch_max_symbols: int = 64
    """Symbols per GetObservations call or WatchObservations stream."""
    max_concurrent_calls: int = 0
    """Unary calls in progress beyond which new ones get RESOURCE_EXHAUSTED (0: no bound)."""
    watch_max_subscribers: int = 1000
    """WatchObservations streams open at once, per process."""
    watch_heartbeat_ms: float = 5000.0
    """A stream's heartbeat when the caller asked for none."""
    watch_poll_s: float = 1.0
    """How often watched symbols are reloaded while the invalidation stream is down."""

    @classmethod
    def of(cls, config: ServerConfig) -> ServiceSettings:
        return cls(
            redis_timeout_s=config.redis_timeout_s,
            max_clock_skew_ns=int(config.max_clock_skew_s * 1_000_000_000),
            batch_max_symbols=config.batch_max_symbols,
            max_concurrent_calls=config.max_concurrent_rpcs,
            watch_max_subscribers=config.watch_max_subscribers,
            watch_heartbeat_ms=config.watch_heartbeat_ms,
            watch_poll_s=max(config.cache_ttl_ms, 100.0) / 1000.0,
        )


class ObservationService:
    """The RPCs over raw bytes; ``app.py`` registers them with identity serializers.

    Its parts: the online store (its one guarded read, PushState's write), the fallback, the
    cache, and optionally the metrics and the served log. It owns the watch hub (``start``
    runs its poll loop, ``aclose`` stops it and its reloads)."""

    def __init__(  # noqa: PLR0913 - the service's parts; options keyword-only
        self,
        store: OnlineStore,
        fallback: ComputeFallback,
        cache: TtlCache[str, SerializedObservation],
        clock: Clock,
        settings: ServiceSettings,
        *,
        metrics: ServerMetrics | None = None,
        serving_log: ServingLog | None = None,
        push_authorizer: PushAuthorizer = ALLOW_EVERY_CALLER,
    ) -> None:
        plans = store.plans
        self._store = store
        self._serving_log = serving_log
        self._plans = plans
        self._fallback = fallback
        self._cache = cache
        self._clock = clock
        self._redis_timeout_s = settings.redis_timeout_s
        self._metrics = metrics
        self._last_provenance: dict[str, Provenance] = {}
        self._max_clock_skew_ns = settings.max_clock_skew_ns
        self._push_authorizer = push_authorizer
        self._refusing = False
        # The bound on unary calls in progress, kept here rather than by gRPC core (which
        # counts watch streams and health checks too, and whose refusals no metric counts).
        self._max_calls = settings.max_concurrent_calls
        self._calls_in_flight = 0
        # Canonical request bytes of each served symbol -> symbol, for the parse-free hit path.
        self._symbol_by_request = {
            pb.GetObservationRequest(symbol=s).SerializeToString(): s for s in plans
        }
        self._describe_bytes = describe_contract().SerializeToString()
        self._batch_max_symbols = settings.batch_max_symbols
        self._batch = BatchObserver(
            validate=lambda symbol: validate_symbol(symbol, plans),
            store=store,
            fallback=fallback,
            cache=cache,
            clock=clock,
            redis_timeout_s=settings.redis_timeout_s,
            on_answer=None if serving_log is None else serving_log.record,
        )
        self._watch_heartbeat_ms = settings.watch_heartbeat_ms
        self._watch_hub = WatchHub(
            self.shared_observation,
            max_subscribers=settings.watch_max_subscribers,
            poll_period_s=settings.watch_poll_s,
        )

    @property
    def watch_hub(self) -> WatchHub:
        """Fan-out of WatchObservations; also an invalidation listener (``OnlineStore.track``)."""
        return self._watch_hub

    def start(self) -> None:
        """The watch hub's poll loop, as a task until ``aclose``."""
        self._watch_hub.start()

    async def aclose(self) -> None:
        """Stop the watch hub's poll loop and reloads."""
        await self._watch_hub.aclose()

    def refuse_new_calls(self) -> None:
        """From now on every new call gets UNAVAILABLE (retryable), so the calls gRPC has
        received but not yet started when the port closes are refused with a code clients
        retry, not cancelled by the transport. Open watch streams end now too (UNAVAILABLE),
        instead of holding the process for its whole grace period."""
        self._refusing = True
        self._watch_hub.end_all()

    # --- RPC handlers -------------------------------------------------------------------

    async def get_observation(self, request: bytes, context: _Context) -> bytes:
        if self._refusing:
            return await _error_boundary(_refuse(), context)
        symbol = self._symbol_by_request.get(request)
        if symbol is not None:
            hit = self._cache.get_fresh(symbol)
            if hit is not None:
                if self._metrics is not None:
                    self._metrics.cache_hit(hit)
                if self._serving_log is not None:
                    self._serving_log.record(hit, True)
                return hit.cached_bytes
        return await self._bounded(self._observe(request, context), context)

    async def describe_observation(self, request: bytes, context: _Context) -> bytes:
        return await self._bounded(
            _refuse() if self._refusing else self._describe(request), context
        )

    async def push_state(self, request: bytes, context: _Context) -> bytes:
        return await self._bounded(
            _refuse() if self._refusing else self._push(request, context), context
        )

    async def get_observations(self, request: bytes, context: _Context) -> bytes:
        return await self._bounded(
            _refuse() if self._refusing else self._observe_many(request, context), context
        )

    async def _bounded(self, work: Coroutine[Any, Any, bytes], context: _Context) -> bytes:
        """``work`` through the error boundary, unless ``max_concurrent_calls`` unary calls
        are already in progress: then RESOURCE_EXHAUSTED (retryable), counted like any code."""
        if self._max_calls and self._calls_in_flight >= self._max_calls:
            work.close()
            return await _error_boundary(_exhausted(self._max_calls), context)
        self._calls_in_flight += 1
        try:
            return await _error_boundary(work, context)
        finally:
            self._calls_in_flight -= 1

    async def watch_observations(self, request: bytes, context: _Context) -> AsyncIterator[bytes]:
        """Server-streaming: the stream's setup goes through the error boundary (an error
        before the first message ends the call with its status); so does its end at shutdown."""
        subscription, period_s = await _error_boundary(self._open_watch(request), context)
        try:
            while True:
                try:
                    batch = await subscription.next_batch(period_s)
                except ServerError as exc:
                    await _abort(exc, context)
                if not batch:
                    yield _heartbeat(self._clock.wall_ns())
                for observation in batch:
                    if self._serving_log is not None:
                        self._serving_log.record(observation, False)
                    yield (
                        _WATCH_OBSERVATION_TAG
                        + varint(len(observation.fresh_bytes))
                        + (observation.fresh_bytes)
                    )
        finally:
            subscription.close()

    async def _open_watch(self, request: bytes) -> tuple[Subscription, float]:
        """A new stream's subscription, already offered each symbol's current observation,
        and its heartbeat period."""
        if self._refusing:
            raise ShuttingDownError()
        parsed = _parse(pb.WatchObservationsRequest, request)
        symbols = self._watch_symbols(list(parsed.symbols))
        period_s = heartbeat_period_s(parsed.heartbeat_interval_ms, self._watch_heartbeat_ms)
        subscription = self._watch_hub.subscribe(symbols)
        try:
            await self._watch_hub.current(subscription)
        except BaseException:
            subscription.close()
            raise
        return subscription, period_s

    async def shared_observation(self, symbol: str) -> SerializedObservation:
        """The symbol's observation through the cache (a valid entry, or one shared load)."""
        plan = self._plans[symbol]
        answer, _ = await self._cache.get_or_load(
            symbol, lambda: self._load(plan, self._redis_timeout_s, False)
        )
        return answer

    # --- GetObservation -----------------------------------------------------------------

    async def _observe(self, request: bytes, context: _Context) -> bytes:
        parsed = _parse(pb.GetObservationRequest, request)
        plan = validate_symbol(parsed.symbol, self._plans)
        remaining_s = context.time_remaining()
        if remaining_s is not None and remaining_s <= 0:
            raise DeadlineExceededError()
        if self._cache.enabled:
            # Shared by every caller waiting on this symbol: bounded by Redis' own timeout only,
            # so one impatient caller cannot fill the cache with a fallback answer.
            answer, from_cache = await self._cache.get_or_load(
                plan.symbol, lambda: self._load(plan, self._redis_timeout_s, False)
            )
            self._note_answer(answer, from_cache)
            return answer.cached_bytes if from_cache else answer.fresh_bytes
        budget_s = (
            None
            if remaining_s is None
            else remaining_s - max(_DEADLINE_RESERVE_MIN_S, _DEADLINE_RESERVE_SHARE * remaining_s)
        )
        if budget_s is None or budget_s >= self._redis_timeout_s:
            answer = await self._load(plan, self._redis_timeout_s, False)
        else:
            answer = await self._load(plan, budget_s, True)
        self._note_answer(answer, False)
        return answer.fresh_bytes

    def _note_answer(self, answer: SerializedObservation, from_cache: bool) -> None:
        """Metrics of an answer past the cache fast path; a log line when a view's source or
        fallback reason changed since the symbol's previous answer; the served log's entry."""
        if self._serving_log is not None:
            self._serving_log.record(answer, from_cache)
        if self._metrics is not None:
            self._metrics.answered(answer, from_cache)
        provenance = answer.provenance
        if provenance is None:
            return
        previous = self._last_provenance.get(provenance.symbol)
        if previous is provenance:
            return
        self._last_provenance[provenance.symbol] = provenance
        before = dict.fromkeys((view for view, _, _ in provenance.views), ("online_store", "none"))
        if previous is not None:
            before = {view: (source, reason) for view, source, reason in previous.views}
        for view, source, reason in provenance.views:
            if before.get(view) == (source, reason):
                continue
            fields = {"event": "view_source", "symbol": provenance.symbol, "view": view}
            if source == "fallback":
                logger.warning(
                    "%s %s: serving the compute fallback (%s)",
                    provenance.symbol,
                    view,
                    reason,
                    extra={**fields, "source": source, "reason": reason},
                )
            else:
                logger.info(
                    "%s %s: serving the online store again",
                    provenance.symbol,
                    view,
                    extra={**fields, "source": source, "reason": reason},
                )

    async def _load(
        self, plan: ReadPlan, timeout_s: float, deadline_bound: bool
    ) -> SerializedObservation:
        (store,) = await self._store.read([plan], timeout_s, deadline_bound=deadline_bound)
        return assemble_observation(
            plan.symbol,
            store,
            self._fallback.row(plan.symbol),
            self._clock.wall_ns(),
            fallback_loading=not self._fallback.attempted,
        )

    # --- GetObservations / WatchObservations ----------------------------------------------

    async def _observe_many(self, request: bytes, context: _Context) -> bytes:
        parsed = _parse(pb.GetObservationsRequest, request)
        symbols = list(parsed.symbols)
        if not symbols:
            raise InvalidArgumentError("symbols must name at least one symbol")
        if len(symbols) > self._batch_max_symbols:
            raise InvalidArgumentError(
                f"at most {self._batch_max_symbols} symbols per call, got {len(symbols)}"
            )
        remaining_s = context.time_remaining()
        if remaining_s is not None and remaining_s <= 0:
            raise DeadlineExceededError()
        return await self._batch.observe(symbols)

    def _watch_symbols(self, symbols: list[str]) -> tuple[str, ...]:
        if not symbols:
            raise InvalidArgumentError("symbols must name at least one symbol")
        if len(symbols) > self._batch_max_symbols:
            raise InvalidArgumentError(
                f"at most {self._batch_max_symbols} symbols per stream, got {len(symbols)}"
            )
        for symbol in symbols:
            validate_symbol(symbol, self._plans)
        return tuple(dict.fromkeys(symbols))

    # --- DescribeObservation ------------------------------------------------------------

    async def _describe(self, request: bytes) -> bytes:
        _parse(pb.DescribeObservationRequest, request)
        return self._describe_bytes

    # --- PushState ----------------------------------------------------------------------

    async def _push(self, request: bytes, context: _Context) -> bytes:
        self._push_authorizer.check(context)
        parsed = _parse(pb.PushStateRequest, request)
        plan = validate_symbol(parsed.symbol, self._plans)
        position = parsed.position
        if not (math.isfinite(position) and -1.0 <= position <= 1.0):
            raise InvalidArgumentError("position must be a finite number in [-1, 1]")
        if not parsed.HasField("event_time"):
            raise InvalidArgumentError("event_time is required")
        now_ns = self._clock.wall_ns()
        event_time_ns = push_event_time_ns(
            parsed.event_time.seconds,
            parsed.event_time.nanos,
            now_ns=now_ns,
            max_age_ns=_STATE_TTL_NS,
            max_skew_ns=self._max_clock_skew_ns,
        )
        position32 = float32_of(position)
        time_normalized = time_normalized_of(event_time_ns)
        remaining_s = context.time_remaining()
        timeout_s = _PUSH_TIMEOUT_S if remaining_s is None else min(_PUSH_TIMEOUT_S, remaining_s)
        if timeout_s <= 0:
            raise DeadlineExceededError()
        try:
            outcome = await self._store.write(
                plan,
                position32,
                time_normalized,
                event_time_ns,
                timeout_s,
                plausible_until_ns=now_ns + self._max_clock_skew_ns,
            )
        except StoreFullError:
            raise OnlineStoreFullError() from None
        except StoreError as exc:
            raise OnlineStoreUnavailableError(
                "the online store could not be written; nothing was changed"
            ) from exc
        answer = pb.PushStateResponse(applied=outcome.applied, time_normalized=time_normalized)
        if outcome.applied:
            self._cache.invalidate(plan.symbol)
            self._fallback.note_push(plan.symbol, position32, time_normalized, event_time_ns)
        elif outcome.stored_event_time_ns is not None:
            seconds, nanos = divmod(outcome.stored_event_time_ns, 1_000_000_000)
            answer.stored_event_time.seconds = seconds
            answer.stored_event_time.nanos = nanos
        return answer.SerializeToString()


_WATCH_OBSERVATION_TAG = bytes((1 << 3 | 2,))  # WatchObservationsResponse.observation


async def _refuse() -> bytes:
    raise ShuttingDownError()


async def _exhausted(max_calls: int) -> bytes:
    raise ResourceExhaustedError(
        f"this server is at its bound of {max_calls} concurrent calls; retry shortly"
    )


def _heartbeat(now_ns: int) -> bytes:
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    return pb.WatchObservationsResponse(
        heartbeat=pb.Heartbeat(sent_at=Timestamp(seconds=seconds, nanos=nanos))
    ).SerializeToString()


async def _error_boundary(work: Awaitable[T], context: _Context) -> T:
    """The one place errors become status codes (every RPC, a stream's setup included);
    clients never see internals."""
    try:
        return await work
    except (asyncio.CancelledError, grpc.aio.AbortError):
        raise
    except Exception as exc:
        await _abort(exc, context)
    raise AssertionError("unreachable")  # pragma: no cover - _abort always raises


async def _abort(error: Exception, context: _Context) -> NoReturn:
    """End the call with ``error``'s status and public message (INTERNAL for anything that is
    not a ``ServerError``), logged: the caller's own mistakes and a shutdown's refusals at
    DEBUG, the server's failures at WARNING, the unexpected with their traceback."""
    if isinstance(error, ServerError):
        code, message = error.status_code, error.public_message
        # The caller's own mistakes are theirs to log, and the refusals of a shutdown (every
        # call after the drain, every open watch stream) are expected; the server's failures
        # are ours.
        expected = isinstance(error, (RequestError, ShuttingDownError))
        level = logging.DEBUG if expected else logging.WARNING
        if logger.isEnabledFor(level):
            logger.log(
                level, "call failed: %s %s", code.name, message, extra=_call_fields(context, code)
            )
    else:
        code, message = grpc.StatusCode.INTERNAL, "internal server error"
        logger.error(
            "unexpected error while serving a call",
            exc_info=error,
            extra=_call_fields(context, code),
        )
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


REQUEST_ID_HEADER = "x-request-id"
"""Metadata key whose value error logs carry as ``request_id`` (when the caller sent one)."""


def _call_fields(context: _Context, code: grpc.StatusCode) -> dict[str, str]:
    """Log fields of a failed call: status, peer and the caller's request id (if any)."""
    request_id = ""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER:
            request_id = value if isinstance(value, str) else value.decode(errors="replace")
            break
    return {
        "event": "rpc_error",
        "grpc_code": code.name,
        "peer": context.peer(),
        "request_id": request_id[:128],
    }
