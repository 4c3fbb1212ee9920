"""DAG ``v3.l1b_feast_materialize``: materialize each session interval into Redis.

As in the integration guide: triggered after L1 (a sensor waits for ``v3.l1_features`` of the
same data interval, with a timeout), on the fallback cron ``*/15 13-18 * * 1-5``, and by hand
(``airflow dags trigger v3.l1b_feast_materialize``).

1. ``wait_for_l1``: the L1 run of this interval succeeded; fails after the timeout, writing
   nothing. A manual run without a logical date (what ``airflow dags trigger`` creates) skips
   it: it has no interval, and no L1 run would ever match it.
2. ``check_contract``: the contract hash in the Feast registry is the code's; no retries -- a
   registry applied from another version fails the run loudly instead of materializing.
3. ``materialize``: ``materialize(start, end)`` of exactly the data interval, so a re-run or a
   backfill is idempotent (Feast skips rows not newer than Redis holds); retried with backoff
   (Redis may be restarting). A manual run without a logical date materializes every view up
   to the time it was triggered instead (``--up-to <run_after>``: from where each view's last
   materialization ended, like ``feast materialize-incremental``).
"""

from __future__ import annotations

from _usdcop.steps import DEFAULT_ARGS, START_DATE, IntervalSensor, pipeline_task, timetable
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
    wait_for_l1 = IntervalSensor(
        task_id="wait_for_l1",
        external_dag_id="v3.l1_features",
        external_task_id="offline_tables",
    )
    check_contract = pipeline_task(
        "check_contract",
        "check-contract",
        interval=False,
        retries=0,
        trigger_rule="none_failed",  # after wait_for_l1's success, or its skip (manual run)
    )
    wait_for_l1 >> check_contract >> pipeline_task("materialize", "materialize", up_to_trigger=True)
