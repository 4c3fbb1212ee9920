"""Turns the server's metrics on for one process: counters, background tasks, the endpoint.

What enters: the ``ServerConfig`` (``metrics_port``, ``workers``, ``metrics_dir``), the
service's breaker, fallback and Redis client. What leaves: a ``MetricsRuntime`` with the
``ServerMetrics`` the service records into, the background tasks to run (Redis memory sample;
with ``--workers N`` the snapshot flush) and the ``/metrics`` endpoint when this process
serves it (one worker; with N workers the parent serves it, see ``server.metrics_export``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from core.clock import Clock
from online_store.breaker import CircuitBreaker
from online_store.memory import run_sampler
from server.config import ServerConfig
from server.fallback import ComputeFallback
from server.metrics import ServerMetrics

if TYPE_CHECKING:
    # prometheus_client and its HTTP server: imported only when metrics are on (start_metrics)
    from server.metrics_export import MetricsEndpoint

logger = logging.getLogger(__name__)


@dataclass
class MetricsRuntime:
    """What ``create_server`` needs to run metrics in this process."""

    metrics: ServerMetrics
    endpoint: MetricsEndpoint | None
    """The HTTP endpoint when this process serves it (``--workers 1``)."""
    jobs: list[Coroutine[Any, Any, None]]
    """Background coroutines to run as tasks until shutdown."""
    clock: Clock
    snapshot_dir: Path | None = None

    async def close(self) -> None:
        """Stop the endpoint; with N workers, write the final snapshot for the parent."""
        if self.snapshot_dir is not None:
            from server.metrics_export import write_snapshot_file

            with contextlib.suppress(OSError):
                write_snapshot_file(self.snapshot_dir, self.metrics, self.clock.wall_ns())
        if self.endpoint is not None:
            await asyncio.to_thread(self.endpoint.stop)


def start_metrics(
    config: ServerConfig,
    *,
    breaker: CircuitBreaker,
    fallback: ComputeFallback,
    redis_client: aioredis.Redis,
    clock: Clock,
) -> MetricsRuntime | None:
    """Metrics for this process, or None when ``metrics_port`` is 0 (off)."""
    if not config.metrics_port:
        return None
    from server.metrics_export import MetricsEndpoint

    metrics = ServerMetrics(cache_enabled=config.cache_ttl_ms > 0)
    metrics.watch(breaker, fallback)
    jobs = [run_sampler(redis_client, metrics, config.redis_memory_sample_s)]
    if config.workers > 1:
        if not config.metrics_dir:
            raise ValueError("metrics_dir must be set for a worker of --workers N")
        folder = Path(config.metrics_dir)
        jobs.append(_flush_loop(folder, metrics, clock))
        return MetricsRuntime(metrics, None, jobs, clock, folder)
    endpoint = MetricsEndpoint.start(
        config.bind_address, config.metrics_port, lambda: metrics.snapshot(clock.wall_ns())
    )
    return MetricsRuntime(metrics, endpoint, jobs, clock)


async def _flush_loop(folder: Path, metrics: ServerMetrics, clock: Clock) -> None:
    from server.metrics_export import FLUSH_PERIOD_S, write_snapshot_file

    while True:
        try:
            write_snapshot_file(folder, metrics, clock.wall_ns())
        except OSError as error:
            logger.warning("metrics: cannot write a snapshot to %s: %s", folder, error.strerror)
        await asyncio.sleep(FLUSH_PERIOD_S)
