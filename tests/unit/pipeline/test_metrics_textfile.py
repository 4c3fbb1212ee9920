"""The pipeline's node-exporter textfile: values per view, atomic replacement, and a failed
step that keeps the previous last-success times (so they age until the alert fires)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipeline.materialize import ViewMaterialization
from pipeline.metrics import METRIC_NAMES, write_pipeline_metrics

END = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)


def read(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def materialized(view: str, rows: int | None, seconds: float) -> ViewMaterialization:
    return ViewMaterialization(
        view=view, start=END - timedelta(minutes=5), end=END, ran=True,
        seconds=seconds, rows_written=rows,
    )  # fmt: skip


def test_a_successful_step_writes_every_metric(tmp_path: Path) -> None:
    finished = END + timedelta(seconds=3)
    path = write_pipeline_metrics(
        tmp_path / "metrics",
        finished_at=finished,
        materialized=[materialized("technical_features", 1, 0.25), materialized("state", 2, 0.5)],
        l1_rows=1234,
    )
    assert path == tmp_path / "metrics" / "usdcop_pipeline.prom"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    samples = read(path)
    tech = (("view", "technical_features"),)
    assert samples[("usdcop_materialization_duration_seconds", tech)] == 0.25
    assert samples[("usdcop_materialization_rows_written", (("view", "state"),))] == 2
    assert samples[("usdcop_materialization_last_success_timestamp_seconds", tech)] == (
        finished.timestamp()
    )
    assert samples[("usdcop_materialization_window_end_timestamp_seconds", tech)] == (
        END.timestamp()
    )
    assert samples[("usdcop_pipeline_l1_rows", ())] == 1234
    assert samples[("usdcop_pipeline_last_run_success", ())] == 1
    skew = {name for name in METRIC_NAMES if name.startswith("usdcop_skew_")}
    assert {name for name, _ in samples} == set(METRIC_NAMES) - skew


def test_a_skew_check_adds_its_figures_and_keeps_the_steps(tmp_path: Path) -> None:
    step = END + timedelta(seconds=3)
    write_pipeline_metrics(tmp_path, finished_at=step, l1_rows=10)
    checked = step + timedelta(minutes=1)
    samples = read(write_pipeline_metrics(tmp_path, finished_at=checked, skew=(45, 2)))
    assert samples[("usdcop_skew_values_compared", ())] == 45
    assert samples[("usdcop_skew_values_mismatched", ())] == 2
    assert samples[("usdcop_skew_last_check_timestamp_seconds", ())] == checked.timestamp()
    # a check is not a pipeline step: the step's figures stay as they were
    assert samples[("usdcop_pipeline_last_run_timestamp_seconds", ())] == step.timestamp()
    assert samples[("usdcop_pipeline_l1_rows", ())] == 10


def test_a_failed_step_keeps_the_previous_success_times(tmp_path: Path) -> None:
    first = END + timedelta(seconds=3)
    write_pipeline_metrics(
        tmp_path, finished_at=first, materialized=[materialized("macro_features", 1, 0.1)]
    )
    later = first + timedelta(minutes=30)
    path = write_pipeline_metrics(tmp_path, finished_at=later, success=False)
    samples = read(path)
    macro = (("view", "macro_features"),)
    assert samples[("usdcop_materialization_last_success_timestamp_seconds", macro)] == (
        first.timestamp()
    )
    assert samples[("usdcop_pipeline_last_run_success", ())] == 0
    assert samples[("usdcop_pipeline_last_run_timestamp_seconds", ())] == later.timestamp()


def test_an_l1_step_keeps_the_last_materialization_values(tmp_path: Path) -> None:
    first = END + timedelta(seconds=3)
    write_pipeline_metrics(
        tmp_path, finished_at=first, materialized=[materialized("state_features", 1, 0.3)]
    )
    path = write_pipeline_metrics(tmp_path, finished_at=first + timedelta(minutes=5), l1_rows=99)
    samples = read(path)
    state = (("view", "state_features"),)
    assert samples[("usdcop_materialization_duration_seconds", state)] == 0.3
    assert samples[("usdcop_materialization_rows_written", state)] == 1
    assert samples[("usdcop_materialization_last_success_timestamp_seconds", state)] == (
        first.timestamp()
    )
    assert samples[("usdcop_pipeline_l1_rows", ())] == 99
