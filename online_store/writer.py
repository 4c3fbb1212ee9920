"""Writes a symbol's live state (state_features) into Redis in Feast's layout, as Feast would.

What enters: a symbol's read plan, the position, time_normalized, event time and the latest
plausible event time (now + the allowed clock skew). What leaves: a :class:`WriteOutcome`:
applied when written; not applied, with the stored event time, when the stored
``_ts:state_features`` is newer or equal (Feast's rule: a row whose event time is not newer than
the stored one is skipped). A stored event time beyond the plausible bound is not a rule to
honour but a corrupt value (the read side serves the fallback for it): the write replaces it, so
a state dated in the future under a wider rule cannot hold back correct pushes.

Feast itself reads ``_ts`` then writes in a second round trip, so two writers can race. This
writer makes the check and the write one optimistic transaction: WATCH the key, HGET ``_ts``,
compare, MULTI/HSET/EXEC; if the key changed in between, EXEC aborts and the check runs again.
With a Redis Cluster the transaction runs on the key's owner (``online_store.cluster``), again after
a MOVED or ASK redirection. Redis at ``maxmemory`` under ``noeviction`` refuses the write:
StoreFullError (RESOURCE_EXHAUSTED), not the generic StoreError (UNAVAILABLE).

Every applied write is also an event (``canonical.state_events``): an entry appended to the
project's stream in the same MULTI as the HSET, so the online row and its record exist together
or not at all. The pipeline drains the stream into the offline store (the offline half of a
push to both stores) before it builds or materializes state rows, so materialization carries the
agent's position instead of the generator's rule. The stream is capped (approximately, at
``stream_max_len`` entries) so a pipeline that never drains it cannot fill Redis; the oldest
undrained entries are the ones dropped. With a Redis Cluster the stream lives on its own slot:
the entry is appended right after the transaction, on the stream's owner, and a failure there is
reported as a store error (the online row is written; a retry of the same push is then refused
as not newer, and the offline record of that one push is missing).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import AskError, OutOfMemoryError, RedisError, WatchError

from canonical import contract
from canonical.state_events import StateEvent
from online_store import feast_layout
from online_store.cluster import ClusterNodeClients
from online_store.errors import StoreError, StoreFullError, StoreTimeoutError
from online_store.read_plan import ReadPlan

_TS_FIELD = feast_layout.ts_field(contract.STATE.name)
_POSITION_FIELD = feast_layout.feature_field(contract.STATE.name, "position")
_TIME_NORMALIZED_FIELD = feast_layout.feature_field(contract.STATE.name, "time_normalized")


@dataclass(frozen=True)
class WriteOutcome:
    """What a PushState write did."""

    applied: bool
    stored_event_time_ns: int | None = None
    """When not applied: the event time the store holds (newer or equal), ns."""


_APPLIED = WriteOutcome(applied=True)


class StateWriter:
    """PushState's write path."""

    def __init__(
        self,
        client: aioredis.Redis,
        cluster: ClusterNodeClients | None = None,
        *,
        stream: bytes,
        stream_max_len: int = 1_000_000,
    ) -> None:
        self._client = client
        self._cluster = cluster
        self._stream = stream
        self._stream_max_len = stream_max_len

    async def write(  # noqa: PLR0913 - one push's fields
        self,
        plan: ReadPlan,
        position: float,
        time_normalized: float,
        event_time_ns: int,
        timeout_s: float,
        *,
        plausible_until_ns: int | None = None,
    ) -> WriteOutcome:
        """Write unless the stored state is as new or newer (and itself no later than
        ``plausible_until_ns``); StoreError on failure."""
        try:
            async with asyncio.timeout(timeout_s):
                event = StateEvent(plan.symbol, event_time_ns, position, time_normalized)
                return await self._write(plan.key, event, plausible_until_ns)
        except TimeoutError:
            raise StoreTimeoutError() from None
        except OutOfMemoryError:
            # Redis answers "OOM command not allowed when used memory > 'maxmemory'": said as
            # such (RESOURCE_EXHAUSTED, and the boundary's log line names it), not UNAVAILABLE.
            raise StoreFullError() from None
        except (RedisError, OSError):
            raise StoreError() from None

    async def _write(
        self,
        key: bytes,
        event: StateEvent,
        plausible_until_ns: int | None,
    ) -> WriteOutcome:
        mapping = {
            _TS_FIELD: feast_layout.encode_timestamp(event.event_time_ns),
            _POSITION_FIELD: feast_layout.encode_float32(event.position),
            _TIME_NORMALIZED_FIELD: feast_layout.encode_float32(event.time_normalized),
        }
        while True:
            client = self._client if self._cluster is None else self._cluster.client_for(key)
            try:
                outcome = await self._transaction(client, key, mapping, event, plausible_until_ns)
                break
            except AskError as error:  # MOVED or ASK: only a cluster sends them
                if self._cluster is None:
                    raise
                await self._cluster.after_redirection(error)
        if outcome.applied and self._cluster is not None:
            await self._append_on_owner(event)
        return outcome

    async def _append_on_owner(self, event: StateEvent) -> None:
        assert self._cluster is not None
        while True:
            client = self._cluster.client_for(self._stream)
            try:
                await client.xadd(
                    self._stream,
                    event.fields(),  # type: ignore[arg-type]
                    maxlen=self._stream_max_len,
                    approximate=True,
                )
                return
            except AskError as error:
                await self._cluster.after_redirection(error)

    async def _transaction(
        self,
        client: aioredis.Redis,
        key: bytes,
        mapping: dict[bytes, bytes],
        event: StateEvent,
        plausible_until_ns: int | None,
    ) -> WriteOutcome:
        event_time_ns = event.event_time_ns
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    stored = await pipe.hget(key, _TS_FIELD)  # type: ignore[arg-type,misc]
                    stored_ns = feast_layout.decode_timestamp_ns(stored)
                    # Feast compares in ns and treats an absent (or zero) stored time as none.
                    plausible = plausible_until_ns is None or (
                        stored_ns is not None and stored_ns <= plausible_until_ns
                    )
                    if stored_ns and event_time_ns <= stored_ns and plausible:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return WriteOutcome(applied=False, stored_event_time_ns=stored_ns)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                    if self._cluster is None:
                        pipe.xadd(
                            self._stream,
                            event.fields(),  # type: ignore[arg-type]
                            maxlen=self._stream_max_len,
                            approximate=True,
                        )
                    await pipe.execute()
                    return _APPLIED
                except WatchError:
                    continue  # another writer changed the key between our check and EXEC
