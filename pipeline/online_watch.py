"""Has the online store lost what was materialized into it? (Redis restarted empty, flushed.)

What enters: the Redis address, the Feast project, the symbols and ``now``. What leaves:
``lost(now)``, True when some symbol's hash lacks some view's event time (``_ts:<view>``) or holds
one older than the view's TTL; the live feed (``pipeline.live``) then re-materializes the last
TTL of every view at once, instead of leaving the server on its fallback until the next
materialization window.

Every view is checked, not the key's existence: after a FLUSHALL an agent's PushState writes
the state view alone under the same key, and the technical and macro views are still gone.
An expired view is reported once per stored event time: if a refill cannot make it younger (the
offline store has nothing newer), the next ticks do not materialize the same window again.

The key is built with Feast's own encoder (``serialize_entity_key`` of the contract's entity,
then the project name), so it is the key Feast writes. A Redis that does not answer is not
"lost": nothing can be written to it now, and the next tick asks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from canonical import contract
from online_store.address import RedisAddress

_TS_FIELDS: tuple[bytes, ...] = tuple(b"_ts:" + v.name.encode() for v in contract.VIEWS)

_TIMEOUT_S = 2.0


def feast_key(symbol: str, project: str, serialization_version: int = 3) -> bytes:
    """The Redis key of ``symbol``'s hash, as Feast's Redis online store writes it."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    entity = EntityKey(join_keys=[contract.ENTITY], entity_values=[Value(string_val=symbol)])
    key: bytes = serialize_entity_key(
        entity, entity_key_serialization_version=serialization_version
    )
    return key + project.encode()


@dataclass(frozen=True)
class ViewGap:
    """One view of one symbol that the online store does not hold fresh."""

    symbol: str
    view: str
    event_time_ns: int | None
    """The stored event time (ns since the epoch); None when the view is absent."""


def _event_time_ns(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    stamp = Timestamp()
    try:
        stamp.ParseFromString(raw)
    except DecodeError:  # an undecodable _ts is as good as absent
        return None
    return stamp.seconds * 1_000_000_000 + stamp.nanos


class OnlineStoreWatch:
    """Asks Redis whether every view of every symbol is still there, within its TTL.

    >>> watch = OnlineStoreWatch(address, "usdcop_trading", ("USDCOP",))
    >>> watch.lost(now)   # True after a FLUSHALL (even once a push wrote the state view back)
    """

    def __init__(
        self,
        address: RedisAddress,
        project: str,
        symbols: Sequence[str],
        serialization_version: int = 3,
    ) -> None:
        self._symbols = tuple(symbols)
        self._keys = [feast_key(s, project, serialization_version) for s in symbols]
        self._reported_expired: set[ViewGap] = set()
        self._client: redis.Redis | redis.RedisCluster = address.connect(_TIMEOUT_S)

    def gaps(self, now: datetime) -> list[ViewGap]:
        """Every (symbol, view) absent or older than the view's TTL at ``now``; raises
        redis.RedisError when Redis does not answer."""
        now_ns = int(now.timestamp() * 1_000_000_000)
        found: list[ViewGap] = []
        for symbol, key in zip(self._symbols, self._keys, strict=True):
            stamps: list[bytes | None] = self._client.hmget(key, list(_TS_FIELDS))  # type: ignore[arg-type,assignment]
            for view, raw in zip(contract.VIEWS, stamps, strict=True):
                event_ns = _event_time_ns(raw)
                ttl_ns = int(view.ttl.total_seconds() * 1_000_000_000)
                if event_ns is None or now_ns - event_ns > ttl_ns:
                    found.append(ViewGap(symbol, view.name, event_ns))
        return found

    def lost(self, now: datetime) -> bool:
        """True when some view is absent, or expired at a stored event time not reported
        before; False too when Redis does not answer (nothing can be written to it now)."""
        try:
            found = self.gaps(now)
        except redis.RedisError:
            return False
        absent = any(gap.event_time_ns is None for gap in found)
        expired = {gap for gap in found if gap.event_time_ns is not None}
        new_expired = expired - self._reported_expired
        self._reported_expired = expired
        return absent or bool(new_expired)

    def close(self) -> None:
        self._client.close()
