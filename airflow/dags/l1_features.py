"""DAG ``v3.l1_features``: L1 offline feature tables for each session interval.

Waits for L0 of the same data interval, then adds the offline rows of every new raw bar
(``python -m pipeline l1 --start --end``). Its success is what L1b's sensor waits for.
"""

from __future__ import annotations

from _usdcop.settings import SETTINGS
from _usdcop.steps import DEFAULT_ARGS, START_DATE, pipeline_task, timetable
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG

with DAG(
    dag_id="v3.l1_features",
    description="L1: offline feature tables (what Feast materializes) for the data interval",
    schedule=timetable(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["usdcop", "L1"],
):
    wait_for_l0 = ExternalTaskSensor(
        task_id="wait_for_l0",
        external_dag_id="v3.l0_ingest",
        external_task_id="raw_data",
        allowed_states=["success"],
        failed_states=["failed", "upstream_failed"],
        timeout=SETTINGS.sensor_timeout_s,
        poke_interval=SETTINGS.sensor_poke_s,
        mode="poke",
        retries=0,
    )
    wait_for_l0 >> pipeline_task("offline_tables", "l1")
