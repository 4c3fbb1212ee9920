"""GetObservations: several symbols in one call, the uncached ones in one Redis round trip.

What enters: the requested symbols (already bounded in number by the service). What leaves:
the serialized ``GetObservationsResponse``: one ``SymbolResult`` per requested symbol, in
request order: its observation, or its own error (INVALID_ARGUMENT for a malformed symbol,
NOT_FOUND for one not served, UNAVAILABLE when neither the store nor the fallback can answer
it), so one bad symbol never fails the others.

Per distinct valid symbol: a valid cache entry answers it (``from_cache = true``); all the
others are read together, one pipeline of HMGETs on one connection (``StoreReader.read_many``)
through the same guarded read as GetObservation (``OnlineStore.read``: breaker, bound,
metrics, log), assembled with the fallback per view, and stored in the cache under tickets
taken before the read (an invalidation during the read keeps them out of the cache, as for
single reads). Wire assembly concatenates the already-serialized observations into the
response (no message is parsed or rebuilt).
"""

from __future__ import annotations

from collections.abc import Callable

from usdcop.observation.v1 import observation_pb2 as pb

from core.clock import Clock
from online_store.feast_layout import varint
from online_store.read_plan import ReadPlan
from online_store.store import OnlineStore
from server.errors import ServerError
from server.fallback import ComputeFallback
from server.observation import SerializedObservation, assemble_observation
from server.ttl_cache import TtlCache

_RESULTS_TAG = bytes((1 << 3 | 2,))  # GetObservationsResponse.results (field 1)
_OBSERVATION_TAG = bytes((2 << 3 | 2,))  # SymbolResult.observation (field 2)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _error_result(symbol: str, error: ServerError) -> bytes:
    return pb.SymbolResult(
        symbol=symbol,
        error=pb.SymbolError(code=error.status_code.value[0], message=error.public_message),
    ).SerializeToString()


def _observation_result(symbol: str, observation: bytes) -> bytes:
    return pb.SymbolResult(symbol=symbol).SerializeToString() + _length_delimited(
        _OBSERVATION_TAG, observation
    )


class BatchObserver:
    """Answers GetObservations; shares the service's cache, store (its guarded read) and
    fallback."""

    def __init__(  # noqa: PLR0913 - the service's shared parts, keyword-only
        self,
        *,
        validate: Callable[[str], ReadPlan],
        store: OnlineStore,
        fallback: ComputeFallback,
        cache: TtlCache[str, SerializedObservation],
        clock: Clock,
        redis_timeout_s: float,
        on_answer: Callable[[SerializedObservation, bool], None] | None = None,
    ) -> None:
        self._on_answer = on_answer
        self._validate = validate
        self._store = store
        self._fallback = fallback
        self._cache = cache
        self._clock = clock
        self._redis_timeout_s = redis_timeout_s

    async def observe(self, symbols: list[str]) -> bytes:
        """The serialized GetObservationsResponse for ``symbols`` (in request order)."""
        answers: dict[str, bytes | ServerError] = {}
        to_read: list[ReadPlan] = []
        seen: set[str] = set()
        for symbol in symbols:
            if symbol in seen:
                continue
            seen.add(symbol)
            try:
                plan = self._validate(symbol)
            except ServerError as exc:
                answers[symbol] = exc
                continue
            hit = self._cache.get_fresh(symbol) if self._cache.enabled else None
            if hit is not None:
                answers[symbol] = hit.cached_bytes
                if self._on_answer is not None:
                    self._on_answer(hit, True)
            else:
                to_read.append(plan)
        if to_read:
            tickets = [self._cache.ticket(plan.symbol) for plan in to_read]
            reads = await self._store.read(to_read, self._redis_timeout_s)
            now_ns = self._clock.wall_ns()
            for plan, ticket, store in zip(to_read, tickets, reads, strict=True):
                try:
                    answer = assemble_observation(
                        plan.symbol,
                        store,
                        self._fallback.row(plan.symbol),
                        now_ns,
                        fallback_loading=not self._fallback.attempted,
                    )
                except ServerError as exc:
                    answers[plan.symbol] = exc
                    continue
                self._cache.put(plan.symbol, ticket, answer)
                answers[plan.symbol] = answer.fresh_bytes
                if self._on_answer is not None:
                    self._on_answer(answer, False)
        results = []
        for symbol in symbols:
            outcome = answers[symbol]
            result = (
                _error_result(symbol, outcome)
                if isinstance(outcome, ServerError)
                else _observation_result(symbol, outcome)
            )
            results.append(_length_delimited(_RESULTS_TAG, result))
        return b"".join(results)
