"""Writes a symbol's live state (state_features) into Redis in Feast's layout, as Feast would.

What enters: a symbol's read plan, the position, time_normalized and event time. What leaves:
``True`` when written; ``False`` when the stored ``_ts:state_features`` is newer or equal (Feast's
rule: a row whose event time is not newer than the stored one is skipped).

Feast itself reads ``_ts`` then writes in a second round trip, so two writers can race. This
writer makes the check and the write one optimistic transaction: WATCH the key, HGET ``_ts``,
compare, MULTI/HSET/EXEC; if the key changed in between, EXEC aborts and the check runs again.
With a Redis Cluster the transaction runs on the key's owner (``server.cluster``), again after
a MOVED or ASK redirection.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import AskError, RedisError, WatchError

from canonical import contract
from server import feast_layout
from server.cluster import ClusterNodeClients
from server.errors import StoreError, StoreTimeoutError
from server.read_plan import ReadPlan

_TS_FIELD = feast_layout.ts_field(contract.STATE.name)
_POSITION_FIELD = feast_layout.feature_field(contract.STATE.name, "position")
_TIME_NORMALIZED_FIELD = feast_layout.feature_field(contract.STATE.name, "time_normalized")


class StateWriter:
    """PushState's write path."""

    def __init__(self, client: aioredis.Redis, cluster: ClusterNodeClients | None = None) -> None:
        self._client = client
        self._cluster = cluster

    async def write(
        self,
        plan: ReadPlan,
        position: float,
        time_normalized: float,
        event_time_ns: int,
        timeout_s: float,
    ) -> bool:
        """Write unless the stored state is as new or newer; StoreError on failure."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self._write(plan.key, position, time_normalized, event_time_ns)
        except TimeoutError:
            raise StoreTimeoutError() from None
        except (RedisError, OSError):
            raise StoreError() from None

    async def _write(
        self, key: bytes, position: float, time_normalized: float, event_time_ns: int
    ) -> bool:
        mapping = {
            _TS_FIELD: feast_layout.encode_timestamp(event_time_ns),
            _POSITION_FIELD: feast_layout.encode_float32(position),
            _TIME_NORMALIZED_FIELD: feast_layout.encode_float32(time_normalized),
        }
        while True:
            client = self._client if self._cluster is None else self._cluster.client_for(key)
            try:
                return await self._transaction(client, key, mapping, event_time_ns)
            except AskError as error:  # MOVED or ASK: only a cluster sends them
                if self._cluster is None:
                    raise
                await self._cluster.after_redirection(error)

    async def _transaction(
        self, client: aioredis.Redis, key: bytes, mapping: dict[bytes, bytes], event_time_ns: int
    ) -> bool:
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    stored = await pipe.hget(key, _TS_FIELD)  # type: ignore[arg-type,misc]
                    stored_ns = feast_layout.decode_timestamp_ns(stored)
                    # Feast compares in ns and treats an absent (or zero) stored time as none.
                    if stored_ns and event_time_ns <= stored_ns:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return False
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                    await pipe.execute()
                    return True
                except WatchError:
                    continue  # another writer changed the key between our check and EXEC
