"""Serves the server's metrics to Prometheus on their own HTTP port, for one or N workers.

What enters: ``ServerMetrics`` snapshots -- the process's own (one worker), or the snapshot
files every worker writes to a per-run folder (``--workers N``). What leaves: the Prometheus
text format on ``http://<bind_address>:<metrics_port>/metrics``.

With N workers the parent process (which runs no gRPC) serves the endpoint: each worker
rewrites ``<metrics_dir>/worker-<pid>.json`` every ``FLUSH_PERIOD_S`` and once more when it
stops (write to a temporary name, then ``os.replace``: a reader never sees half a file), and a
scrape merges the files -- counters and histograms summed over every file, so the counts of a
worker that exited stay counted; gauges combined by each metric's ``merge`` rule over the live
workers' files only. The folder is emptied when the parent starts and removed when it stops.
This is prometheus_client's multiprocess mode in spirit, without its per-call mmap writes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import orjson
from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from server.errors import StartupError
from server.metrics import CATALOG, LATENCY_BUCKETS_S, SPECS, ServerMetrics, Snapshot

FLUSH_PERIOD_S = 1.0
"""How often each worker of ``--workers N`` rewrites its snapshot file (the counts' lag)."""
_FILE_PREFIX = "worker-"


def metric_families(snapshot: Snapshot) -> Iterator[Metric]:
    """The Prometheus metric families of a snapshot, in ``CATALOG`` order."""
    for spec in CATALOG:
        values = snapshot.get(spec.name, {})
        labels = list(spec.labels)
        family: Metric
        if spec.kind == "counter":
            family = CounterMetricFamily(spec.name.removesuffix("_total"), spec.doc, labels=labels)
            for label_values, value in sorted(values.items()):
                family.add_metric(list(label_values), value)
        elif spec.kind == "gauge":
            family = GaugeMetricFamily(spec.name, spec.doc, labels=labels)
            for label_values, value in sorted(values.items()):
                family.add_metric(list(label_values), value)
        else:
            family = HistogramMetricFamily(spec.name, spec.doc, labels=labels)
            for label_values, (counts, sum_s) in sorted(values.items()):
                cumulative, buckets = 0, []
                for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
                    cumulative += count
                    buckets.append((_bound_text(bound), float(cumulative)))
                family.add_metric(list(label_values), buckets, sum_s)
        yield family


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class SnapshotCollector(Collector):
    """A prometheus_client collector over a snapshot source (called once per scrape)."""

    def __init__(self, source: Callable[[], Snapshot]) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return metric_families(self._source())


def merge(live: Iterable[Snapshot], exited: Iterable[Snapshot] = ()) -> Snapshot:
    """Counters and histograms summed over every snapshot; gauges from ``live`` ones only,
    combined by their ``merge`` rule."""
    merged: Snapshot = {spec.name: {} for spec in CATALOG}
    for snapshot, is_live in [(s, True) for s in live] + [(s, False) for s in exited]:
        for name, values in snapshot.items():
            spec = SPECS.get(name)
            if spec is None or (spec.kind == "gauge" and not is_live):
                continue
            target = merged[name]
            for labels, value in values.items():
                old = target.get(labels)
                if old is None:
                    target[labels] = value
                elif spec.kind == "histogram":
                    counts = [a + b for a, b in zip(old[0], value[0], strict=True)]
                    target[labels] = (counts, old[1] + value[1])
                elif spec.kind == "counter" or spec.merge == "sum":
                    target[labels] = old + value
                else:
                    target[labels] = max(old, value) if spec.merge == "max" else min(old, value)
    return merged


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """JSON: {name: [[label values, value], ...]} (tuples become lists)."""
    return orjson.dumps({name: list(values.items()) for name, values in snapshot.items()})


def decode_snapshot(raw: bytes) -> Snapshot:
    decoded: dict[str, list[list[Any]]] = orjson.loads(raw)
    out: Snapshot = {}
    for name, items in decoded.items():
        spec = SPECS.get(name)
        if spec is None:
            continue
        out[name] = {
            tuple(labels): (tuple(value) if spec.kind == "histogram" else float(value))
            for labels, value in items
        }
    return out


def write_snapshot_file(folder: Path, metrics: ServerMetrics, now_ns: int) -> None:
    """This worker's snapshot at ``now_ns``, replaced atomically."""
    target = folder / f"{_FILE_PREFIX}{os.getpid()}.json"
    scratch = folder / f".{target.name}.tmp"
    scratch.write_bytes(encode_snapshot(metrics.snapshot(now_ns)))
    os.replace(scratch, target)


def read_snapshot_files(folder: Path, live_pids: Iterable[int]) -> Snapshot:
    """The merged snapshot of every worker file in ``folder``."""
    alive = set(live_pids)
    live: list[Snapshot] = []
    exited: list[Snapshot] = []
    for path in sorted(folder.glob(f"{_FILE_PREFIX}*.json")):
        try:
            snapshot = decode_snapshot(path.read_bytes())
            pid = int(path.stem.removeprefix(_FILE_PREFIX))
        except (OSError, ValueError):
            continue  # replaced or removed between glob and read
        (live if pid in alive else exited).append(snapshot)
    return merge(live, exited)


def clean_snapshot_folder(folder: Path) -> None:
    """Remove every snapshot file (and scratch file) of an earlier run."""
    for path in list(folder.glob(f"{_FILE_PREFIX}*.json")) + list(folder.glob(".*.tmp")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class MetricsEndpoint:
    """``/metrics`` over HTTP in a daemon thread (prometheus_client's server)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, url: str) -> None:
        self._server = server
        self._thread = thread
        self.url = url

    @classmethod
    def start(cls, address: str, port: int, source: Callable[[], Snapshot]) -> MetricsEndpoint:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(source))
        try:
            server, thread = start_http_server(port, addr=address, registry=registry)
        except OSError as error:
            raise StartupError(
                f"cannot serve metrics on {address}:{port}: {error.strerror or error}"
            ) from None
        host = f"[{address}]" if ":" in address else address
        return cls(server, thread, f"http://{host}:{server.server_port}/metrics")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
