"""DAG ``v3.l1b_feast_materialize``: materialize each session interval into Redis.

As in the integration guide: triggered after L1 (a sensor waits for ``v3.l1_features`` of the
same data interval, with a timeout), on the fallback cron ``*/15 13-18 * * 1-5``, and by hand
(``airflow dags trigger v3.l1b_feast_materialize``).

1. ``wait_for_l1``: the L1 run of this interval succeeded; fails after the timeout, writing
   nothing.
2. ``check_contract``: the contract hash in the Feast registry is the code's; no retries -- a
   registry applied from another version fails the run loudly instead of materializing.
3. ``materialize``: ``materialize(start, end)`` of exactly the data interval, so a re-run or a
   backfill is idempotent (Feast skips rows not newer than Redis holds); retried with backoff
   (Redis may be restarting).
"""

from __future__ import annotations

from _usdcop.settings import SETTINGS
from _usdcop.steps import DEFAULT_ARGS, START_DATE, pipeline_task, timetable
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG

with DAG(
    dag_id="v3.l1b_feast_materialize",
    description="L1b: Feast materialize of the data interval into the Redis online store",
    schedule=timetable(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["usdcop", "L1b", "feast"],
):
    wait_for_l1 = ExternalTaskSensor(
        task_id="wait_for_l1",
        external_dag_id="v3.l1_features",
        external_task_id="offline_tables",
        allowed_states=["success"],
        failed_states=["failed", "upstream_failed"],
        timeout=SETTINGS.sensor_timeout_s,
        poke_interval=SETTINGS.sensor_poke_s,
        mode="poke",
        retries=0,
    )
    check_contract = pipeline_task("check_contract", "check-contract", interval=False, retries=0)
    wait_for_l1 >> check_contract >> pipeline_task("materialize", "materialize")
