"""DAG ``v3.l0_ingest``: L0 raw market data for each session interval.

Each run makes ``data/raw`` cover the bars that closed by the end of its data interval
(``python -m pipeline l0 --start --end`` in the project's environment). Idempotent: a re-run
appends nothing.
"""

from __future__ import annotations

from _usdcop.steps import DEFAULT_ARGS, START_DATE, pipeline_task, timetable
from airflow.sdk import DAG

with DAG(
    dag_id="v3.l0_ingest",
    description="L0: raw USD/COP bars and macro prints covering the data interval",
    schedule=timetable(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["usdcop", "L0"],
):
    pipeline_task("raw_data", "l0")
