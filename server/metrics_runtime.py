"""Where the server's metrics run: in this process, or in the parent of ``--workers N``.

What enters: the ``ServerConfig`` (``metrics_port``, ``workers``, ``metrics_dir``), and what
the counters read when scraped (the store's breaker and tracker, the fallback, the served log).
What leaves:

- in a serving process, ``start_metrics`` -> a ``MetricsRuntime``: the ``ServerMetrics`` the
  service and the store record into, and the ``/metrics`` endpoint when this process serves it
  (one worker); with ``--workers N``, a task rewriting this worker's snapshot file instead, and
  a final snapshot at ``aclose``;
- in the parent of ``--workers N``, ``WorkerMetrics``: the per-run snapshot folder
  (``metrics_dir``, else a fresh temporary one), emptied at start; ``worker_config`` pointing
  the workers at it; the endpoint merging the workers' snapshots (``server.metrics_export``);
  and on exit the folder emptied (and removed when it was temporary). The parent imports no
  gRPC and runs no event loop: the endpoint is a thread started *after* the forks (a fork
  copies only the forking thread), and it lives in the parent so a scrape never takes a
  worker's CPU.

prometheus_client and its HTTP server (``server.metrics_export``) are imported only when
metrics are on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from core.clock import Clock
from core.tasks import stop_tasks
from online_store.store import OnlineStore
from server.config import ServerConfig
from server.fallback import ComputeFallback
from server.metrics import ServerMetrics

if TYPE_CHECKING:
    from server.metrics_export import MetricsEndpoint

logger = logging.getLogger(__name__)
_parent_logger = logging.getLogger("server")


class MetricsRuntime:
    """Metrics in one serving process (module docstring); ``start`` / ``aclose``."""

    def __init__(
        self,
        metrics: ServerMetrics,
        clock: Clock,
        *,
        endpoint: MetricsEndpoint | None = None,
        snapshot_dir: Path | None = None,
    ) -> None:
        self.metrics = metrics
        self.endpoint = endpoint
        """The HTTP endpoint when this process serves it (``--workers 1``)."""
        self._clock = clock
        self._snapshot_dir = snapshot_dir
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str | None:
        """Where this process serves /metrics (None: the parent of ``--workers N`` does)."""
        return None if self.endpoint is None else self.endpoint.url

    def read_from(
        self, store: OnlineStore, fallback: ComputeFallback, serving_log: Any | None
    ) -> None:
        """The gauges read at each scrape: the breaker's state, the fallback's rows, the
        invalidation stream's health and counts, the served log's counts."""
        self.metrics.watch(store.breaker, fallback)
        if store.tracker is not None:
            self.metrics.watch_tracker(store.tracker)
        if serving_log is not None:
            self.metrics.watch_serving_log(serving_log)

    def start(self) -> None:
        """With ``--workers N``: this worker's snapshot file, rewritten until ``aclose``."""
        if self._snapshot_dir is not None and self._task is None:
            self._task = asyncio.create_task(
                _flush_loop(self._snapshot_dir, self.metrics, self._clock), name="metrics-flush"
            )

    async def aclose(self) -> None:
        """Stop the flush task and the endpoint; with N workers, write the final snapshot."""
        task, self._task = self._task, None
        await stop_tasks(task)
        if self._snapshot_dir is not None:
            from server.metrics_export import write_snapshot_file

            with contextlib.suppress(OSError):
                write_snapshot_file(self._snapshot_dir, self.metrics, self._clock.wall_ns())
        if self.endpoint is not None:
            await asyncio.to_thread(self.endpoint.stop)


def start_metrics(config: ServerConfig, clock: Clock) -> MetricsRuntime | None:
    """Metrics for this process, or None when ``metrics_port`` is 0 (off)."""
    if not config.metrics_port:
        return None
    from server.metrics_export import MetricsEndpoint

    metrics = ServerMetrics(cache_enabled=config.cache_ttl_ms > 0)
    if config.workers > 1:
        if not config.metrics_dir:
            raise ValueError("metrics_dir must be set for a worker of --workers N")
        return MetricsRuntime(metrics, clock, snapshot_dir=Path(config.metrics_dir))
    endpoint = MetricsEndpoint.start(
        config.bind_address, config.metrics_port, lambda: metrics.snapshot(clock.wall_ns())
    )
    return MetricsRuntime(metrics, clock, endpoint=endpoint)


async def _flush_loop(folder: Path, metrics: ServerMetrics, clock: Clock) -> None:
    from server.metrics_export import FLUSH_PERIOD_S, write_snapshot_file

    while True:
        try:
            write_snapshot_file(folder, metrics, clock.wall_ns())
        except OSError as error:
            logger.warning("metrics: cannot write a snapshot to %s: %s", folder, error.strerror)
        await asyncio.sleep(FLUSH_PERIOD_S)


class WorkerMetrics:
    """The parent's side of multi-worker metrics (module docstring); a context manager."""

    def __init__(self, config: ServerConfig) -> None:
        from server.metrics_export import clean_snapshot_folder

        self._config = config
        self._temporary = not config.metrics_dir
        self.folder = Path(config.metrics_dir or tempfile.mkdtemp(prefix="usdcop-metrics-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_snapshot_folder(self.folder)
        self.worker_config = config.with_overrides(metrics_dir=str(self.folder))
        self._endpoint: MetricsEndpoint | None = None
        self._children: list[int] = []

    def serve(self, children: list[int]) -> None:
        """Start the endpoint over the workers' snapshots; StartupError if it cannot bind."""
        from server.metrics_export import MetricsEndpoint, read_snapshot_files

        self._children = list(children)
        self._endpoint = MetricsEndpoint.start(
            self._config.bind_address,
            self._config.metrics_port,
            lambda: read_snapshot_files(self.folder, self._live_children()),
        )
        _parent_logger.info(
            "metrics served on %s", self._endpoint.url, extra={"event": "metrics_url"}
        )

    def _live_children(self) -> list[int]:
        alive = []
        for pid in self._children:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(pid)
        return alive

    def __enter__(self) -> WorkerMetrics:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        from server.metrics_export import clean_snapshot_folder

        if self._endpoint is not None:
            self._endpoint.stop()
        if self._temporary:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            clean_snapshot_folder(self.folder)
