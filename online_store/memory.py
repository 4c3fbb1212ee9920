"""Samples Redis' memory use in the background, for the metrics (never on a request path).

What enters: the server's ``redis.asyncio`` client and a period. What leaves: every period,
``INFO memory``'s ``used_memory`` and ``maxmemory`` (bytes; maxmemory 0 = no limit) handed to
``MemoryMetrics.redis_memory_sampled``, or ``redis_memory_failed`` when Redis did not answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_SAMPLE_TIMEOUT_S = 1.0


class MemoryMetrics(Protocol):
    """Where the samples go (the server's metrics implement it)."""

    def redis_memory_sampled(self, used_bytes: float, max_bytes: float) -> None: ...

    def redis_memory_failed(self) -> None: ...


async def sample_once(client: aioredis.Redis, metrics: MemoryMetrics) -> bool:
    """One ``INFO memory``; True when it answered."""
    try:
        async with asyncio.timeout(_SAMPLE_TIMEOUT_S):
            info = await client.info("memory")
        used, limit = float(info["used_memory"]), float(info.get("maxmemory", 0))
    except (TimeoutError, RedisError, OSError, KeyError, ValueError):
        metrics.redis_memory_failed()
        return False
    metrics.redis_memory_sampled(used, limit)
    return True


async def run_sampler(client: aioredis.Redis, metrics: MemoryMetrics, period_s: float) -> None:
    """Sample now, then every ``period_s`` until cancelled."""
    while True:
        await sample_once(client, metrics)
        await asyncio.sleep(period_s)
