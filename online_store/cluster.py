"""Redis Cluster routing: which master owns a key, and one round trip to it, through resharding.

What enters: the cluster's startup nodes (``host:port``), connection settings, and a key with
its precomputed RESP command. What leaves: the command's reply from the key's owner, after
following ``MOVED`` (the slot has a new owner: refresh the slot map, retry) and ``ASK`` (the
slot is being migrated and this key already left: ``ASKING`` + the command on the importing
node, once). Redis errors other than redirections raise ``RedisError``; a node that cannot be
reached raises ``ConnectionError``/``OSError`` (the caller's fallback decides).

Slots follow the cluster spec: ``CRC16-XMODEM(key) mod 16384``, or of the key's hash tag
(the bytes between the first ``{`` and the next ``}``, when not empty): redis-py's ``key_slot``
(``redis.crc``, over ``binascii.crc_hqx``); Feast's keys are binary (a
serialized entity key + project name) and it takes bytes; it is pinned against
``CLUSTER KEYSLOT`` of a real server in the tests.

Each node keeps a free list of ``redis.asyncio`` connections sending precomputed RESP bytes
(``online_store.connections``, the free list ``StoreReader`` uses for a single Redis too):
redis-py's cluster client would add its command layer, locks and retries to every call, the
cost the single-node path already removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import crc
from redis.exceptions import AskError, MovedError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from online_store.connections import NodeConnections

logger = logging.getLogger(__name__)

SLOTS = crc.REDIS_CLUSTER_HASH_SLOTS
"""Hash slots of a Redis Cluster."""
_MAX_REDIRECTIONS = 3
"""A call follows at most this many MOVED/ASK replies (a slot map in flux), then fails."""


def key_slot(key: bytes) -> int:
    """The hash slot of ``key`` (its hash tag's, when it has a non-empty one)."""
    return crc.key_slot(key)


def parse_node(address: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); ValueError when malformed."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {address!r}")
    return host, int(port)


def redirection(error: ResponseError) -> tuple[bool, int, tuple[str, int]] | None:
    """A ``MOVED``/``ASK`` reply (redis-py's parser made it a MovedError/AskError) ->
    (moved, slot, node); None for any other error."""
    if not isinstance(error, AskError):  # MovedError is an AskError
        return None
    return isinstance(error, MovedError), int(error.slot_id), (str(error.host), int(error.port))


_ASKING = b"*1\r\n$6\r\nASKING\r\n"
_CLUSTER_SLOTS = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n"


def _consume_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed background refresh is not an unhandled error


class ClusterRouter:
    """Sends a key's command to the master owning its slot; follows MOVED and ASK.

    The slot map (slot -> master) is loaded from ``CLUSTER SLOTS`` of any reachable node on
    first use and again after a ``MOVED`` (the map is stale: a reshard finished or a failover
    happened). Until it is loaded, a call goes to the first startup node, whose redirection
    then teaches the owner. Refreshes are single-flight: concurrent MOVED replies share one.
    """

    def __init__(
        self,
        startup_nodes: Sequence[tuple[str, int]],
        connection_class: type[aioredis.Connection],
        **connection_kwargs: Any,
    ) -> None:
        if not startup_nodes:
            raise ValueError("a cluster needs at least one startup node")
        self._startup_nodes = tuple(startup_nodes)
        self._connection_class = connection_class
        self._connection_kwargs = connection_kwargs
        self._nodes: dict[tuple[str, int], NodeConnections] = {}
        self._owners: list[tuple[str, int] | None] = [None] * SLOTS
        self._refresh: asyncio.Task[None] | None = None
        self._slots: dict[bytes, int] = {}

    def node(self, address: tuple[str, int]) -> NodeConnections:
        """The connection free list of one node (created on first use)."""
        pool = self._nodes.get(address)
        if pool is None:
            host, port = address
            pool = NodeConnections(
                self._connection_class, host=host, port=port, **self._connection_kwargs
            )
            self._nodes[address] = pool
        return pool

    def owner(self, key: bytes) -> tuple[str, int]:
        """The master believed to own ``key``'s slot (the first startup node if unknown)."""
        slot = self._slots.get(key)
        if slot is None:  # the served keys are few and fixed: the CRC runs once per key
            slot = self._slots[key] = key_slot(key)
        return self._owners[slot] or self._startup_nodes[0]

    async def execute(self, key: bytes, command: bytes) -> Any:
        """``command`` (about ``key``) on the key's owner; its reply, or RedisError."""
        address = self.owner(key)
        asking = False
        for _ in range(_MAX_REDIRECTIONS + 1):
            pool = self.node(address)
            try:
                if asking:
                    reply = (await pool.round_trip(_ASKING, command))[1]
                else:
                    (reply,) = await pool.round_trip(command)
            except (RedisConnectionError, OSError):
                # The owner may have failed over: learn the new map in the background (this
                # call fails now and takes the fallback; the next one may find the new owner).
                self._refresh_in_background()
                raise
            if not isinstance(reply, ResponseError):
                return reply
            redirected = redirection(reply)
            if redirected is None:
                raise reply
            moved, slot, address = redirected
            if moved:
                self._owners[slot] = address
                await self.refresh_slots()
                asking = False
            else:  # ASK: this one key, this one time; the slot map stays as it is
                asking = True
        raise RedisError(f"too many cluster redirections for slot {key_slot(key)}")

    async def execute_many(self, items: Sequence[tuple[bytes, bytes]]) -> list[Any]:
        """Each ``(key, command)``'s reply, in order: the commands grouped by the master
        believed to own their key, one pipelined round trip per master, concurrently; a reply
        that is a redirection is followed for its key alone (``execute``)."""
        groups: dict[tuple[str, int], list[int]] = {}
        for index, (key, _) in enumerate(items):
            groups.setdefault(self.owner(key), []).append(index)
        try:
            per_node = await asyncio.gather(
                *(
                    self.node(address).round_trip(*(items[i][1] for i in indexes))
                    for address, indexes in groups.items()
                )
            )
        except (RedisConnectionError, OSError):
            self._refresh_in_background()
            raise
        replies: list[Any] = [None] * len(items)
        for indexes, node_replies in zip(groups.values(), per_node, strict=True):
            for index, reply in zip(indexes, node_replies, strict=True):
                replies[index] = reply
        for index, reply in enumerate(replies):
            if isinstance(reply, ResponseError):
                if redirection(reply) is None:
                    raise reply
                replies[index] = await self.execute(*items[index])
        return replies

    async def refresh_slots(self) -> None:
        """Reload the slot map from the first node that answers ``CLUSTER SLOTS``."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._load_slots())
        await asyncio.shield(self._refresh)

    def _refresh_in_background(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._load_slots())
            self._refresh.add_done_callback(_consume_error)

    async def _load_slots(self) -> None:
        known = [a for a in dict.fromkeys(self._owners) if a is not None]
        for address in dict.fromkeys([*self._startup_nodes, *known]):
            try:
                (reply,) = await self.node(address).round_trip(_CLUSTER_SLOTS)
            except (RedisError, OSError):
                continue
            if isinstance(reply, ResponseError) or not isinstance(reply, list):
                continue
            owners: list[tuple[str, int] | None] = [None] * SLOTS
            for start, end, master, *_replicas in reply:
                host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
                owner = (host or address[0], int(master[1]))
                owners[int(start) : int(end) + 1] = [owner] * (int(end) - int(start) + 1)
            self._owners = owners
            return
        raise RedisConnectionError("no cluster node answered CLUSTER SLOTS")

    async def ping(self) -> bool:
        """True when a node answers PING; loads the slot map when it is not loaded yet."""
        for address in self._startup_nodes:
            try:
                (reply,) = await self.node(address).round_trip(b"*1\r\n$4\r\nPING\r\n")
            except (RedisError, OSError):
                continue
            if reply in (b"PONG", "PONG", True):
                if all(owner is None for owner in self._owners):
                    await self.refresh_slots()
                return True
        return False

    async def aclose(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
        for pool in self._nodes.values():
            await pool.aclose()


class ClusterNodeClients:
    """A ``redis.asyncio.Redis`` client per master, chosen by slot: PushState's WATCH/MULTI/EXEC
    runs on the key's owner (a transaction cannot span nodes, and one key never needs to).

    After a ``MOVED`` the slot map is refreshed and the transaction starts again on the new
    owner. After an ``ASK`` (the key already left a slot still being migrated) it waits
    ``_ASK_RETRY_S`` and starts again: the transaction is not replayed on the importing node
    with ``ASKING`` (it would need ``ASKING`` before each of WATCH, HGET and MULTI); the
    caller's timeout bounds the wait, and a migration of one small hash takes milliseconds.
    """

    _ASK_RETRY_S = 0.002

    def __init__(self, router: ClusterRouter, **redis_kwargs: Any) -> None:
        self._router = router
        self._redis_kwargs = redis_kwargs
        self._clients: dict[tuple[str, int], aioredis.Redis] = {}

    def client_for(self, key: bytes) -> aioredis.Redis:
        """The client of the master believed to own ``key``."""
        address = self._router.owner(key)
        client = self._clients.get(address)
        if client is None:
            host, port = address
            client = aioredis.Redis(host=host, port=port, **self._redis_kwargs)
            self._clients[address] = client
        return client

    async def after_redirection(self, error: AskError) -> None:
        """Learn from a MOVED (refresh the slot map) or wait out an ASK."""
        redirected = redirection(error)
        if redirected is not None and redirected[0]:
            await self._router.refresh_slots()
        else:
            await asyncio.sleep(self._ASK_RETRY_S)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        await self._router.aclose()
