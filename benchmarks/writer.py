"""Writes to the online store while the benchmark measures: the realistic write rate the
invalidated cache serves under, and copies of a symbol for the batch scenario.

What enters: the run's Redis and the Feast project. What leaves: a background thread that
rewrites USDCOP's ``state_features`` position with its current value every ``period_s``
(each write is a real HSET, so Redis sends an invalidation and every tracking server drops
its entry; values stay the same, so every probe and answer stays checkable), and
``copy_symbol`` (the whole hash under another symbol's key, for GetObservations).

Rate: production writes a symbol's hash about twice per 5 minutes (a bar materialized, a
state pushed); the benchmark writes once per second, ~150x more often: an upper bound on the
invalidation misses the cache pays in production.
"""

from __future__ import annotations

import threading

import redis

from online_store import feast_layout

WRITE_PERIOD_S = 1.0


def copy_symbol(client: redis.Redis, project: str, source: str, target: str) -> None:
    """Copy ``source``'s Feast hash to ``target``'s key (same fields, same values)."""
    fields = client.hgetall(feast_layout.entity_key(source, project))  # type: ignore[arg-type]
    if not fields:
        raise RuntimeError(f"no online-store entry for {source} to copy")
    client.hset(feast_layout.entity_key(target, project), mapping=fields)  # type: ignore[arg-type]


class PeriodicWriter:
    """Rewrites one field of a symbol's hash every ``period_s`` until stopped."""

    def __init__(
        self, client: redis.Redis, project: str, symbol: str, period_s: float = WRITE_PERIOD_S
    ) -> None:
        self._client = client
        self._key = feast_layout.entity_key(symbol, project)
        self._field = feast_layout.feature_field("state_features", "position")
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-writer")
        self.writes = 0

    def start(self) -> PeriodicWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            value = self._client.hget(self._key, self._field)  # type: ignore[arg-type]
            if value is not None:
                self._client.hset(self._key, self._field, value)  # type: ignore[arg-type]
                self.writes += 1
