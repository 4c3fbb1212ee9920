"""The one connection layer: a free list of ``redis.asyncio`` connections to one Redis node.

What enters: the connection class (TLS or not) and its options (``RedisAddress.
connection_options``), and packed RESP commands. What leaves: their replies, in order, from one
connection; a Redis error reply comes back as a ``ResponseError`` object (the caller decides),
a transport failure or cancellation raises and the connection is dropped, never reused (a
half-read reply would poison the next call on it).

Why not redis-py's pool and command layer: their packing, retries, locks and metrics hooks cost
~100 us a call here (server/README.md); the request path sends bytes packed at start-up. A
single Redis is one node of this layer (``StoreReader``); a cluster is one per master
(``ClusterRouter``).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError


class NodeConnections:
    """A free list of connections to one node; a connection that fails mid-reply is dropped."""

    _MAX_IDLE = 32

    def __init__(self, connection_class: type[aioredis.Connection], **kwargs: Any) -> None:
        self._connection_class = connection_class
        self._kwargs = kwargs
        self._idle: list[aioredis.Connection] = []

    async def round_trip(self, *commands: bytes) -> list[Any]:
        """Send the packed commands on one connection; their replies, in order. A Redis error
        reply is returned as a ``ResponseError`` object, not raised."""
        connection = self._idle.pop() if self._idle else self._connection_class(**self._kwargs)
        try:
            await connection.send_packed_command(b"".join(commands), check_health=False)
            replies = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as error:
                    replies.append(error)
        except BaseException:
            # A half-read reply would poison the next call on this connection.
            await connection.disconnect(nowait=True)
            raise
        if len(self._idle) < self._MAX_IDLE:
            self._idle.append(connection)
        else:
            await connection.disconnect()
        return replies

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()
