"""``--workers N`` with metrics: the parent serves one ``/metrics`` for all its workers.

What enters: the ``ServerConfig`` (``metrics_port``, ``metrics_dir``) and, once the workers are
forked, their pids. What leaves: the per-run snapshot folder (``metrics_dir``, else a fresh
temporary one), emptied at start; ``worker_config`` pointing the workers at it; the endpoint
merging the workers' snapshots (``server.metrics_export``); and on exit the folder emptied
(and removed when it was temporary).

The parent imports no gRPC and runs no event loop: the endpoint is a thread started *after*
the forks (a fork copies only the forking thread), and it lives in the parent so a scrape
never takes a worker's CPU.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from server.config import ServerConfig
from server.metrics_export import MetricsEndpoint, clean_snapshot_folder, read_snapshot_files

logger = logging.getLogger("server")


class WorkerMetrics:
    """The parent's side of multi-worker metrics (module docstring); a context manager."""

    def __init__(self, config: ServerConfig) -> None:
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
        self._children = list(children)
        self._endpoint = MetricsEndpoint.start(
            self._config.bind_address,
            self._config.metrics_port,
            lambda: read_snapshot_files(self.folder, self._live_children()),
        )
        logger.info("metrics served on %s", self._endpoint.url, extra={"event": "metrics_url"})

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
        if self._endpoint is not None:
            self._endpoint.stop()
        if self._temporary:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            clean_snapshot_folder(self.folder)
