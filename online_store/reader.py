"""Reads a symbol's observation from the Feast online store: one HMGET, decoded, TTLs enforced.

What enters: a ``ReadPlan`` (key + 18 fields computed at start-up) and a time bound. What
leaves: a ``StoreRead``: per view, either its float32 values and event time, or the reason it
cannot be used (entity missing, view missing/undecodable, view expired). Redis errors and
timeouts raise ``StoreError``/``StoreTimeoutError``; the caller decides about the fallback.

Feast's Python SDK does not enforce a view's TTL on online reads; this reader does, against an
injectable clock: a view whose ``_ts`` is older than its TTL is ``VIEW_EXPIRED``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from core.clock import Clock
from online_store import feast_layout
from online_store.address import RedisAddress
from online_store.cluster import ClusterNodeClients, ClusterRouter
from online_store.connections import NodeConnections
from online_store.errors import StoreError, StoreTimeoutError
from online_store.read_plan import VIEW_LAYOUTS, ReadPlan

_NO_REASON = pb.FALLBACK_REASON_NONE
DEFAULT_MAX_SKEW_NS = 5_000_000_000
"""The allowed clock skew when none is given (the server's ``USDCOP_MAX_CLOCK_SKEW_S`` default)."""


def new_cluster_clients(address: RedisAddress, timeout_s: float) -> ClusterNodeClients | None:
    """A cluster: per-master clients for PushState's transaction; None for one Redis."""
    if not address.cluster:
        return None
    connection_class, connection_kwargs = address.connection_options(timeout_s)
    router = ClusterRouter(
        address.cluster_nodes,
        connection_class,
        **{k: v for k, v in connection_kwargs.items() if k not in ("host", "port", "db")},
    )
    return ClusterNodeClients(router, **address.async_client_options(timeout_s))


@dataclass(frozen=True)
class ViewRead:
    """One feature view as read from the store."""

    values: tuple[float, ...] | None
    """The view's features (float32-representable), or None when not usable."""
    event_time_ns: int | None
    """The view's ``_ts`` (Unix ns) when present and valid."""
    reason: pb.FallbackReason.ValueType
    """``FallbackReason``: NONE when ``values`` can be served, else why not."""


@dataclass(frozen=True)
class StoreRead:
    """One symbol's views as read from the store, in contract view order."""

    views: tuple[ViewRead, ...]


def decode_reply(
    reply: list[bytes | None], now_ns: int, max_skew_ns: int = DEFAULT_MAX_SKEW_NS
) -> StoreRead:
    """Turn an HMGET reply (plan field order) into per-view reads, enforcing TTLs at ``now_ns``
    and the plausibility rules (``view_corruption``) (future ``_ts``, validity ranges)."""
    if all(raw is None for raw in reply):
        return _ENTITY_MISSING
    decode_value = feast_layout.decode_value
    decode_timestamp_ns = feast_layout.decode_timestamp_ns
    views: list[ViewRead] = []
    for layout in VIEW_LAYOUTS:
        event_time_ns = decode_timestamp_ns(reply[layout.ts_slot])
        values = [decode_value(raw) for raw in reply[layout.feature_slots]]
        if event_time_ns is None or None in values:
            views.append(ViewRead(None, event_time_ns, pb.FALLBACK_REASON_VIEW_MISSING))
        elif now_ns - event_time_ns > layout.ttl_ns:
            views.append(ViewRead(None, event_time_ns, pb.FALLBACK_REASON_VIEW_EXPIRED))
        else:
            checked = tuple(values)
            reason = view_corruption(
                layout.name,
                checked,  # type: ignore[arg-type]
                event_time_ns,
                now_ns=now_ns,
                max_skew_ns=max_skew_ns,
            )
            if reason == _NO_REASON:
                views.append(ViewRead(checked, event_time_ns, _NO_REASON))  # type: ignore[arg-type]
            else:
                views.append(ViewRead(None, event_time_ns, reason))
    return StoreRead(views=tuple(views))


_ENTITY_MISSING = StoreRead(
    views=tuple(ViewRead(None, None, pb.FALLBACK_REASON_ENTITY_MISSING) for _ in VIEW_LAYOUTS)
)


def resp_command(*args: bytes) -> bytes:
    """A Redis command in RESP, as ``redis-py``'s ``pack_command`` would send it."""
    parts = [b"*%d\r\n" % len(args)]
    parts.extend(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)
    return b"".join(parts)


class StoreReader:
    """Reads observations from Redis with one round trip per call.

    The request path skips redis-py's command layer and connection pool (their packing,
    retries, locks and metrics hooks cost ~100 us a call here; see server/README.md):
    each symbol's ``HMGET`` is packed to RESP bytes at start-up, and a free list of
    ``redis.asyncio`` connections (hiredis parser) sends them. A connection that fails or is
    cancelled mid-reply is disconnected and dropped, never reused.
    """

    def __init__(
        self,
        address: RedisAddress,
        plans: Mapping[str, ReadPlan],
        clock: Clock,
        *,
        timeout_s: float,
        max_skew_ns: int = DEFAULT_MAX_SKEW_NS,
    ) -> None:
        self._clock = clock
        self._max_skew_ns = max_skew_ns
        self._connection_class, self._connection_kwargs = address.connection_options(timeout_s)
        self._commands = {
            symbol: resp_command(b"HMGET", plan.key, *plan.fields) for symbol, plan in plans.items()
        }
        self._ping = resp_command(b"PING")
        self._node = NodeConnections(self._connection_class, **self._connection_kwargs)
        self._cluster: ClusterRouter | None = None
        if address.cluster:
            # db is always 0 in a cluster (the address rejects another).
            kwargs = {k: v for k, v in self._connection_kwargs.items() if k not in ("host", "port")}
            self._cluster = ClusterRouter(address.cluster_nodes, self._connection_class, **kwargs)

    async def read(self, plan: ReadPlan, timeout_s: float) -> StoreRead:
        """HMGET the plan's 18 fields within ``timeout_s``; StoreError (or a timeout) if not."""
        try:
            async with asyncio.timeout(timeout_s):
                command = self._commands[plan.symbol]
                if self._cluster is None:
                    (reply,) = await self._node.round_trip(command)
                else:
                    reply = await self._cluster.execute(plan.key, command)
        except TimeoutError:
            raise StoreTimeoutError() from None
        except (RedisError, OSError):
            raise StoreError() from None
        if not isinstance(reply, list) or len(reply) != len(plan.fields):
            raise StoreError()
        return decode_reply(reply, self._clock.wall_ns(), self._max_skew_ns)

    async def read_many(self, plans: list[ReadPlan], timeout_s: float) -> list[StoreRead]:
        """Several plans' HMGETs pipelined in one round trip within ``timeout_s`` (a cluster:
        one pipelined round trip per master, concurrently)."""
        try:
            async with asyncio.timeout(timeout_s):
                if self._cluster is None:
                    replies = await self._node.round_trip(
                        *(self._commands[plan.symbol] for plan in plans)
                    )
                else:  # one pipelined round trip per master, concurrently
                    replies = await self._cluster.execute_many(
                        [(p.key, self._commands[p.symbol]) for p in plans]
                    )
        except TimeoutError:
            raise StoreTimeoutError() from None
        except (RedisError, OSError):
            raise StoreError() from None
        now_ns = self._clock.wall_ns()
        reads = []
        for plan, reply in zip(plans, replies, strict=True):
            if not isinstance(reply, list) or len(reply) != len(plan.fields):
                raise StoreError()
            reads.append(decode_reply(reply, now_ns, self._max_skew_ns))
        return reads

    async def ping(self, timeout_s: float) -> bool:
        """True when Redis answers PING within ``timeout_s`` (also warms a connection)."""
        try:
            async with asyncio.timeout(timeout_s):
                if self._cluster is not None:
                    return await self._cluster.ping()
                (reply,) = await self._node.round_trip(self._ping)
                return reply in (b"PONG", "PONG", True)
        except (TimeoutError, RedisError, OSError):
            return False

    async def aclose(self) -> None:
        """Disconnect the idle connections (calls in flight have finished by now)."""
        await self._node.aclose()
        if self._cluster is not None:
            await self._cluster.aclose()


_VIEW_FEATURES: dict[str, tuple[str, ...]] = {v.name: v.features for v in contract.VIEWS}


def view_corruption(
    view: str, values: tuple[float, ...], event_time_ns: int, *, now_ns: int, max_skew_ns: int
) -> pb.FallbackReason.ValueType:
    """NONE when a stored view is plausible; else why it must not be served."""
    if event_time_ns > now_ns + max_skew_ns:
        return pb.FALLBACK_REASON_VIEW_FROM_FUTURE
    if contract.out_of_range(_VIEW_FEATURES[view], values) is not None:
        return pb.FALLBACK_REASON_VIEW_OUT_OF_RANGE
    return pb.FALLBACK_REASON_NONE
