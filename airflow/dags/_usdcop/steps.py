"""The pieces every USD/COP DAG is built from.

What enters: :data:`_usdcop.settings.SETTINGS`. What leaves: the shared ``default_args``
(retries with exponential backoff), the data-interval timetable, :func:`pipeline_task`, a
command task running ``python -m pipeline <step> --start <interval start> --end <interval end>``
in the project's virtualenv (Airflow renders the run's data interval into the command), and
:class:`IntervalSensor`, the wait for an upstream DAG's run of the same interval.

A run triggered by hand without a logical date (``airflow dags trigger DAG_ID``: Airflow 3 gives
it no logical date and no data interval, only the time it was triggered, ``run_after``) has no
interval: :func:`is_untimed_manual` says so, its :class:`IntervalSensor` skips (no upstream run
has a null logical date to wait for) and a task built with ``up_to_trigger=True`` runs
``<step> --up-to <run_after>`` instead. Scheduled and backfill runs, and manual runs given a
logical date (``airflow dags test DAG_ID DATE``, ``airflow dags trigger --logical-date``), have
an interval and wait for it.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.interval import CronDataIntervalTimetable

from _usdcop.settings import SETTINGS

START_DATE = datetime(2025, 1, 1, tzinfo=UTC)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "usdcop",
    "retries": SETTINGS.retries,
    "retry_delay": timedelta(seconds=SETTINGS.retry_delay_s),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(seconds=SETTINGS.max_retry_delay_s),
}

UNTIMED_MANUAL_JINJA = "dag_run.run_type == 'manual' and dag_run.logical_date is none"
""":func:`is_untimed_manual` as a Jinja test of the template context's ``dag_run``."""

_INTERVAL_ARGS = (
    " --start '{{ data_interval_start.isoformat() }}' --end '{{ data_interval_end.isoformat() }}'"
)
_UP_TO_TRIGGER_ARGS = (
    "{% if " + UNTIMED_MANUAL_JINJA + " %}"
    " --up-to '{{ dag_run.run_after.isoformat() }}'"
    "{% else %}" + _INTERVAL_ARGS + "{% endif %}"
)


def timetable() -> CronDataIntervalTimetable:
    """Runs on the session cron; each run covers [previous tick, this tick)."""
    return CronDataIntervalTimetable(SETTINGS.schedule_cron, timezone="UTC")


def is_untimed_manual(dag_run: Any) -> bool:
    """A run triggered by hand without a logical date: no data interval, only ``run_after``."""
    # run_type is a str enum ("manual"); comparing its value keeps this independent of the class.
    return getattr(dag_run.run_type, "value", dag_run.run_type) == "manual" and (
        dag_run.logical_date is None
    )


def pipeline_command(step: str, *, interval: bool = True, up_to_trigger: bool = False) -> str:
    """The shell command of one step, with the run's data interval as Jinja placeholders.

    ``up_to_trigger``: an untimed manual run passes ``--up-to <run_after>`` instead of the
    interval it does not have (the step must accept it: ``materialize`` does).
    """
    words = [str(SETTINGS.project_python), "-m", "pipeline", step]
    if SETTINGS.feature_repo is not None:
        words += ["--repo-dir", str(SETTINGS.feature_repo)]
    command = " ".join(shlex.quote(w) for w in words)
    if interval:
        command += _UP_TO_TRIGGER_ARGS if up_to_trigger else _INTERVAL_ARGS
    return f"cd {shlex.quote(str(SETTINGS.project_dir))} && exec {command}"


def pipeline_task(task_id: str, step: str, **kwargs: Any) -> BashOperator:
    """A task running one pipeline step in the project's environment (inherits the env)."""
    command = pipeline_command(
        step,
        interval=kwargs.pop("interval", True),
        up_to_trigger=kwargs.pop("up_to_trigger", False),
    )
    return BashOperator(task_id=task_id, bash_command=command, **kwargs)


class IntervalSensor(ExternalTaskSensor):
    """Waits for ``external_task_id`` of ``external_dag_id``'s run of the same logical date
    (poke mode; fails after ``USDCOP_L1_SENSOR_TIMEOUT_S``, or as soon as that task failed).

    An untimed manual run skips it: no upstream run has a null logical date, so the wait could
    only time out. The task after it needs ``trigger_rule="none_failed"`` to run after a skip
    (and still not after a failure).
    """

    def __init__(self, *, external_dag_id: str, external_task_id: str, **kwargs: Any) -> None:
        super().__init__(
            external_dag_id=external_dag_id,
            external_task_id=external_task_id,
            allowed_states=["success"],
            failed_states=["failed", "upstream_failed"],
            timeout=SETTINGS.sensor_timeout_s,
            poke_interval=SETTINGS.sensor_poke_s,
            mode="poke",
            retries=0,
            **kwargs,
        )

    def execute(self, context: Any) -> None:
        dag_run = context["dag_run"]
        if is_untimed_manual(dag_run):
            raise AirflowSkipException(
                f"manual run without a logical date (triggered {dag_run.run_after.isoformat()}): "
                f"no {self.external_dag_id} run to wait for"
            )
        super().execute(context)
