"""Pipeline metrics as a node-exporter textfile: what materialization did, when, how long.

What enters: the per-view ``ViewMaterialization``s of a run or a live step, the L1 row count,
the wall time, and whether the step succeeded. What leaves:
``<metrics_textfile_dir>/usdcop_pipeline.prom`` in the Prometheus text format, replaced
atomically (prometheus_client writes a temporary file and renames it), for node-exporter's
textfile collector (``--collector.textfile.directory``) to expose.

Why a textfile and not a Pushgateway or an HTTP port: the pipeline runs as short processes
(the Airflow DAGs' command tasks ``python -m pipeline l1|materialize --start --end``, or
``pipeline run``) with nothing long-lived to scrape; a file needs no extra service, survives
restarts, and Prometheus' documentation recommends node-exporter's textfile collector for
batch jobs tied to a machine.
``pipeline up`` writes the same file after its run and after every live step, so the quick
start and the DAGs look alike to Prometheus and to the alerts (``ops/prometheus/alerts.yml``).

Every value a step does not report is kept from the file as it was (read back first): a failed
step leaves each view's ``last_success`` to age until the alert fires, and an L1-only step
(Airflow's ``l1`` task) keeps the materialization values of the last ``materialize`` task.
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
    "usdcop_skew_values_compared",
    "usdcop_skew_values_mismatched",
    "usdcop_skew_last_check_timestamp_seconds",
)
"""Every metric the file can hold (the dashboard test checks its queries against them)."""
_PER_VIEW = frozenset(METRIC_NAMES[:4])
_DOCS = {
    "usdcop_materialization_duration_seconds": "Wall time of the last materialization of the "
    "view, seconds.",
    "usdcop_materialization_rows_written": "Rows the last materialization of the view wrote to "
    "the online store.",
    LAST_SUCCESS: "When the view's materialization last succeeded (Unix seconds).",
    "usdcop_materialization_window_end_timestamp_seconds": "End of the event-time window last "
    "materialized for the view (Unix seconds).",
    "usdcop_pipeline_l1_rows": "Rows per view in the L1 offline tables.",
    "usdcop_pipeline_last_run_timestamp_seconds": "When the last pipeline step ended, "
    "successfully or not (Unix seconds).",
    "usdcop_pipeline_last_run_success": "1 when the last pipeline step succeeded, else 0.",
    "usdcop_skew_values_compared": "Served values the last skew check compared with the "
    "offline store (pipeline skew).",
    "usdcop_skew_values_mismatched": "Served values the last skew check found different from "
    "the offline row or the builder's recomputation (0 expected).",
    "usdcop_skew_last_check_timestamp_seconds": "When the last skew check ended (Unix seconds).",
}


def textfile_path(folder: Path) -> Path:
    return Path(folder) / TEXTFILE_NAME


Values = dict[tuple[str, str | None], float]
"""(metric name, view or None) -> value."""


def previous_values(path: Path) -> Values:
    """What the file holds now (empty when there is none, or it is damaged)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    out: Values = {}
    with contextlib.suppress(ValueError):  # a damaged file: start over
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in METRIC_NAMES:
                    out[(sample.name, sample.labels.get("view"))] = sample.value
    return out


def write_pipeline_metrics(  # noqa: PLR0913 - the textfile's optional figures, keyword-only
    folder: Path,
    *,
    finished_at: datetime,
    materialized: Iterable[ViewMaterialization] = (),
    l1_rows: int | None = None,
    success: bool = True,
    skew: tuple[int, int] | None = None,
) -> Path:
    """Rewrite the textfile for a step that ended at ``finished_at``; returns its path.

    ``materialized``: the views this step materialized (a successful step: every view it
    handled, ran or already up to date). A failed step passes ``success=False`` and the views
    keep their previous last-success timestamps.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = textfile_path(folder)
    values = previous_values(path)
    finished_s = finished_at.timestamp()
    for view in materialized:
        values[("usdcop_materialization_duration_seconds", view.view)] = view.seconds
        if view.rows_written is not None:
            values[("usdcop_materialization_rows_written", view.view)] = view.rows_written
        values[("usdcop_materialization_window_end_timestamp_seconds", view.view)] = (
            view.end.timestamp()
        )
        if success:
            values[(LAST_SUCCESS, view.view)] = finished_s
    if l1_rows is not None:
        values[("usdcop_pipeline_l1_rows", None)] = l1_rows
    if skew is not None:  # a skew check, not a pipeline step
        values[("usdcop_skew_values_compared", None)] = skew[0]
        values[("usdcop_skew_values_mismatched", None)] = skew[1]
        values[("usdcop_skew_last_check_timestamp_seconds", None)] = finished_s
    else:
        values[("usdcop_pipeline_last_run_timestamp_seconds", None)] = finished_s
        values[("usdcop_pipeline_last_run_success", None)] = 1.0 if success else 0.0

    registry = CollectorRegistry(auto_describe=True)
    for name in METRIC_NAMES:
        samples = {label: value for (metric, label), value in values.items() if metric == name}
        if not samples:
            continue
        labels = ("view",) if name in _PER_VIEW else ()
        gauge = Gauge(name, _DOCS[name], labels, registry=registry)
        for label, value in sorted(samples.items(), key=lambda item: item[0] or ""):
            (gauge.labels(label) if labels and label is not None else gauge).set(value)
    write_to_textfile(str(path), registry)
    return path
