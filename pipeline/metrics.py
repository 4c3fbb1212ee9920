"""Pipeline metrics as a node-exporter textfile: what materialization did, when, how long.

What enters: the per-view ``ViewMaterialization``s of a run or a live step, the L1 row count,
the wall time, and whether the step succeeded. What leaves:
``<metrics_textfile_dir>/usdcop_pipeline.prom`` in the Prometheus text format, replaced
atomically (prometheus_client writes a temporary file and renames it), for node-exporter's
textfile collector (``--collector.textfile.directory``) to expose.

Why a textfile and not a Pushgateway or an HTTP port: the pipeline runs as short processes
(an Airflow task's ``python -m pipeline ...`` command, or ``pipeline run``) with nothing
long-lived to scrape; a file needs no extra service, survives restarts, and Prometheus'
documentation recommends node-exporter's textfile collector for batch jobs tied to a machine.
``pipeline up`` writes the same file after its run and after every live step, so the quick
start and the DAGs look alike to Prometheus and to the alerts (``ops/prometheus/alerts.yml``).

A view that did not succeed this time keeps its previous ``last_success`` (read back from the
file), so a failing pipeline ages that timestamp until the alert fires.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from pipeline.materialize import ViewMaterialization

TEXTFILE_NAME = "usdcop_pipeline.prom"
LAST_SUCCESS = "usdcop_materialization_last_success_timestamp_seconds"
METRIC_NAMES: tuple[str, ...] = (
    "usdcop_materialization_duration_seconds",
    "usdcop_materialization_rows_written",
    LAST_SUCCESS,
    "usdcop_materialization_window_end_timestamp_seconds",
    "usdcop_pipeline_l1_rows",
    "usdcop_pipeline_last_run_timestamp_seconds",
    "usdcop_pipeline_last_run_success",
)
"""Every metric the file can hold (the dashboard test checks its queries against them)."""


def textfile_path(folder: Path) -> Path:
    return Path(folder) / TEXTFILE_NAME


def previous_last_success(path: Path) -> dict[str, float]:
    """Per view, the last-success timestamp the file holds now (empty when there is none)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    out: dict[str, float] = {}
    with contextlib.suppress(ValueError):  # a damaged file: start over
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and "view" in sample.labels:
                    out[sample.labels["view"]] = sample.value
    return out


def write_pipeline_metrics(
    folder: Path,
    *,
    finished_at: datetime,
    materialized: Iterable[ViewMaterialization] = (),
    l1_rows: int | None = None,
    success: bool = True,
) -> Path:
    """Rewrite the textfile for a step that ended at ``finished_at``; returns its path.

    ``materialized``: the views this step materialized (a successful step: every view it
    handled, ran or already up to date). A failed step passes ``success=False`` and the views
    keep their previous last-success timestamps.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = textfile_path(folder)
    last_success = previous_last_success(path)
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    duration = gauge(
        "usdcop_materialization_duration_seconds",
        "Wall time of the last materialization of the view, seconds.",
        ("view",),
    )
    rows = gauge(
        "usdcop_materialization_rows_written",
        "Rows the last materialization of the view wrote to the online store.",
        ("view",),
    )
    success_at = gauge(
        LAST_SUCCESS,
        "When the view's materialization last succeeded (Unix seconds).",
        ("view",),
    )
    window_end = gauge(
        "usdcop_materialization_window_end_timestamp_seconds",
        "End of the event-time window last materialized for the view (Unix seconds).",
        ("view",),
    )
    finished_s = finished_at.timestamp()
    for view in materialized:
        duration.labels(view.view).set(view.seconds)
        if view.rows_written is not None:
            rows.labels(view.view).set(view.rows_written)
        window_end.labels(view.view).set(view.end.timestamp())
        if success:
            last_success[view.view] = finished_s
    for view_name, when in sorted(last_success.items()):
        success_at.labels(view_name).set(when)
    if l1_rows is not None:
        gauge("usdcop_pipeline_l1_rows", "Rows per view in the L1 offline tables.").set(l1_rows)
    gauge(
        "usdcop_pipeline_last_run_timestamp_seconds",
        "When the last pipeline step ended, successfully or not (Unix seconds).",
    ).set(finished_s)
    gauge(
        "usdcop_pipeline_last_run_success", "1 when the last pipeline step succeeded, else 0."
    ).set(1.0 if success else 0.0)
    write_to_textfile(str(path), registry)
    return path
