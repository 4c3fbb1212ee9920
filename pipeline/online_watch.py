"""Has the online store lost what was materialized into it? (Redis restarted empty, flushed.)

What enters: the Redis address, the Feast project and the symbols. What leaves: ``lost()``, one
``EXISTS`` per symbol on the Feast hash key of that symbol, True when any is missing; the live
feed (``pipeline.live``) then re-materializes the last TTL of every view at once, instead of
leaving the server on its fallback until the next materialization window.

The key is built with Feast's own encoder (``serialize_entity_key`` of the contract's entity,
then the project name), so it is the key Feast writes. A Redis that does not answer is not
"lost": nothing can be written to it now, and the next tick asks again.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from canonical import contract
from pipeline.settings import RedisAddress

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


class OnlineStoreWatch:
    """Asks Redis whether every symbol's hash is still there.

    >>> watch = OnlineStoreWatch(address, "usdcop_trading", ("USDCOP",))
    >>> watch.lost()   # True after a FLUSHALL or a restart of an empty Redis
    """

    def __init__(
        self,
        address: RedisAddress,
        project: str,
        symbols: Sequence[str],
        serialization_version: int = 3,
    ) -> None:
        self._keys = [feast_key(s, project, serialization_version) for s in symbols]
        password = address.password or None
        self._client: redis.Redis | redis.RedisCluster
        if address.cluster:
            self._client = redis.RedisCluster(
                host=address.host,
                port=address.port,
                password=password,
                ssl=address.tls,
                socket_timeout=_TIMEOUT_S,
                socket_connect_timeout=_TIMEOUT_S,
            )
        else:
            self._client = redis.Redis(
                host=address.host,
                port=address.port,
                password=password,
                ssl=address.tls,
                socket_timeout=_TIMEOUT_S,
                socket_connect_timeout=_TIMEOUT_S,
            )

    def lost(self) -> bool:
        """True when some symbol's hash is missing; False too when Redis does not answer."""
        try:
            return any(not self._client.exists(key) for key in self._keys)
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._client.close()
