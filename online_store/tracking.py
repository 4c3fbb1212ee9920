"""Push invalidation from Redis: server-assisted client-side caching (``CLIENT TRACKING``).

What enters: the Redis address and the Feast keys of the served symbols. What leaves: calls to
the registered listeners: ``on_invalidate(symbol)`` when Redis reports a write to a symbol's
hash, ``on_invalidate(None)`` when it reports a flush (``FLUSHALL``/``FLUSHDB``: every key),
and ``on_tracking(healthy)`` when the stream comes up or is lost.

How: one dedicated RESP2 connection takes its own ``CLIENT ID``, turns on
``CLIENT TRACKING ON REDIRECT <own id> BCAST PREFIX <key of symbol 1> PREFIX <key 2> ...``
and subscribes to ``__redis__:invalidate``. BCAST with each served key as a prefix is exact
for our keys whoever writes them (materialization, PushState on any worker, anyone), and it
does not depend on which connection read a key (the request path's connections stay
untouched). Feast keys are binary (a length-prefixed entity key, then the project), so no
served key is a prefix of another; a reported key that is not exactly one of ours (another
project whose name extends ours) is ignored.

Health: the stream is healthy from the moment the subscription is confirmed. It is lost when
the connection fails or closes (``CLIENT KILL``, a Redis restart) or a PING sent every
``_PING_PERIOD_S`` is not answered within ``_PING_TIMEOUT_S`` (a silent network). On loss the
listeners hear ``on_tracking(False)`` at once (the cache goes back to TTL mode), a warning is
logged, ``lost_total`` counts it, and the tracker reconnects with exponential backoff
(50 ms doubling to 2 s). ``state``/``lost_total``/``invalidations_total`` are plain
attributes a metrics exporter can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from online_store.address import RedisAddress

logger = logging.getLogger(__name__)

CHANNEL = b"__redis__:invalidate"
_PING_PERIOD_S = 1.0
_PING_TIMEOUT_S = 1.0
_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0
_CONNECT_TIMEOUT_S = 1.0


class InvalidationListener(Protocol):
    """What the tracker tells: a symbol written (None: everything), and its own health."""

    def on_invalidate(self, symbol: str | None) -> None: ...

    def on_tracking(self, healthy: bool) -> None: ...


class TrackingLostError(Exception):
    """The invalidation stream ended or stopped answering."""


class InvalidationTracker:
    """One tracking connection per server process; see the module docstring."""

    def __init__(self, address: RedisAddress, symbol_by_key: Mapping[bytes, str]) -> None:
        # The same connection class and TLS files as the request path's connections.
        self._connection_class, self._connection_kwargs = address.connection_options(
            _CONNECT_TIMEOUT_S
        )
        self._connection_kwargs["socket_connect_timeout"] = _CONNECT_TIMEOUT_S
        self._symbol_by_key = dict(symbol_by_key)
        self._listeners: list[InvalidationListener] = []
        self._connection: aioredis.Connection | None = None
        self._pong: asyncio.Event = asyncio.Event()
        self.healthy = False
        """True while every write to a served key is reported."""
        self.lost_total = 0
        """Times a healthy stream was lost (metric hook)."""
        self.invalidations_total = 0
        """Invalidation messages received for served keys (flushes included)."""
        self.connects_total = 0
        """Times the stream came up."""

    @property
    def state(self) -> str:
        """``tracking`` (entries exact, may live long) or ``ttl`` (TTL fallback)."""
        return "tracking" if self.healthy else "ttl"

    def add_listener(self, listener: InvalidationListener) -> None:
        self._listeners.append(listener)

    async def connect_once(self) -> bool:
        """Try to bring the stream up once (start-up); True when it is up."""
        try:
            await self._connect()
        except (RedisError, OSError, TimeoutError, TrackingLostError) as exc:
            logger.warning("cache invalidation tracking unavailable (%s): TTL mode", exc)
            await self._drop_connection()
            return False
        return True

    async def run(self) -> None:
        """Serve the stream forever: read, and reconnect with backoff whenever it is lost."""
        backoff_s = _BACKOFF_MIN_S
        while True:
            if self._connection is None:
                try:
                    await self._connect()
                except (RedisError, OSError, TimeoutError, TrackingLostError):
                    await self._drop_connection()
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)
                    continue
            backoff_s = _BACKOFF_MIN_S
            try:
                await self._serve()
            except asyncio.CancelledError:
                await self._drop_connection()
                raise
            except (RedisError, OSError, TimeoutError, TrackingLostError) as exc:
                self._lost(exc)
            await self._drop_connection()
            await asyncio.sleep(_BACKOFF_MIN_S)

    async def aclose(self) -> None:
        await self._drop_connection()

    # --- internals -----------------------------------------------------------------------

    async def _connect(self) -> None:
        connection = self._connection_class(**self._connection_kwargs)
        self._connection = connection
        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            await connection.connect()  # type: ignore[no-untyped-call]
            await connection.send_command("CLIENT", "ID")
            client_id = int(await connection.read_response())
            prefixes: list[bytes] = []
            for key in self._symbol_by_key:
                prefixes += [b"PREFIX", key]
            await connection.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefixes
            )
            reply = await connection.read_response()
            if reply not in (b"OK", "OK", True):
                raise TrackingLostError(f"CLIENT TRACKING refused: {reply!r}")
            await connection.send_command("SUBSCRIBE", CHANNEL)
            confirmation = await connection.read_response()
            if not (
                isinstance(confirmation, list) and confirmation[0] in (b"subscribe", "subscribe")
            ):
                raise TrackingLostError(f"SUBSCRIBE not confirmed: {confirmation!r}")
        self.connects_total += 1
        self.healthy = True
        logger.info("cache invalidation tracking up: entries held until Redis reports a write")
        for listener in self._listeners:
            listener.on_tracking(True)

    async def _serve(self) -> None:
        connection = self._connection
        assert connection is not None
        pinger = asyncio.create_task(self._ping_loop(connection), name="invalidation-ping")
        try:
            while True:
                message = await connection.read_response(disconnect_on_error=False)
                if message is None:
                    raise TrackingLostError("connection closed")
                self._dispatch(message)
                if pinger.done():
                    pinger.result()  # raises TrackingLostError when a PING went unanswered
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, TrackingLostError, Exception):
                await pinger

    async def _ping_loop(self, connection: aioredis.Connection) -> None:
        while True:
            await asyncio.sleep(_PING_PERIOD_S)
            self._pong.clear()
            await connection.send_command("PING", check_health=False)
            try:
                async with asyncio.timeout(_PING_TIMEOUT_S):
                    await self._pong.wait()
            except TimeoutError:
                # The reader may be blocked on a silent socket: close it so the read fails.
                await connection.disconnect(nowait=True)
                raise TrackingLostError("PING unanswered") from None

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, list) or not message:
            return
        kind = message[0]
        if kind in (b"pong", "pong"):
            self._pong.set()
            return
        if kind not in (b"message", "message") or len(message) < 3:
            return
        keys = message[2]
        if keys is None:  # a flush: every key is gone
            self.invalidations_total += 1
            for listener in self._listeners:
                listener.on_invalidate(None)
            return
        for key in keys:
            symbol = self._symbol_by_key.get(bytes(key) if not isinstance(key, bytes) else key)
            if symbol is None:
                continue
            self.invalidations_total += 1
            for listener in self._listeners:
                listener.on_invalidate(symbol)

    def _lost(self, exc: BaseException) -> None:
        if not self.healthy:
            return
        self.healthy = False
        self.lost_total += 1
        logger.warning(
            "cache invalidation tracking lost (%s): cache back to TTL mode; reconnecting",
            exc or type(exc).__name__,
        )
        for listener in self._listeners:
            listener.on_tracking(False)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)


class CacheInvalidator:
    """The cache's listener: drop what Redis reports written, follow the stream's health."""

    def __init__(self, cache: _InvalidatedCache) -> None:
        self._cache = cache

    def on_invalidate(self, symbol: str | None) -> None:
        if symbol is None:
            self._cache.invalidate_all()
        else:
            self._cache.invalidate(symbol)

    def on_tracking(self, healthy: bool) -> None:
        if healthy:
            self._cache.tracking_up()
        else:
            self._cache.tracking_down()


class _InvalidatedCache(Protocol):
    def invalidate(self, key: str) -> None: ...

    def invalidate_all(self) -> None: ...

    def tracking_up(self) -> None: ...

    def tracking_down(self) -> None: ...
