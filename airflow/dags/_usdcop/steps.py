"""The pieces every USD/COP DAG is built from.

What enters: :data:`_usdcop.settings.SETTINGS`. What leaves: the shared ``default_args``
(retries with exponential backoff), the data-interval timetable, and :func:`pipeline_task`, a
command task running ``python -m pipeline <step> --start <interval start> --end <interval end>``
in the project's virtualenv (Airflow renders the run's data interval into the command).
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
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


def timetable() -> CronDataIntervalTimetable:
    """Runs on the session cron; each run covers [previous tick, this tick)."""
    return CronDataIntervalTimetable(SETTINGS.schedule_cron, timezone="UTC")


def pipeline_command(step: str, *, interval: bool = True) -> str:
    """The shell command of one step, with the run's data interval as Jinja placeholders."""
    words = [str(SETTINGS.project_python), "-m", "pipeline", step]
    if SETTINGS.feature_repo is not None:
        words += ["--repo-dir", str(SETTINGS.feature_repo)]
    command = " ".join(shlex.quote(w) for w in words)
    if interval:
        command += " --start '{{ data_interval_start.isoformat() }}'"
        command += " --end '{{ data_interval_end.isoformat() }}'"
    return f"cd {shlex.quote(str(SETTINGS.project_dir))} && exec {command}"


def pipeline_task(task_id: str, step: str, **kwargs: Any) -> BashOperator:
    """A task running one pipeline step in the project's environment (inherits the env)."""
    return BashOperator(
        task_id=task_id,
        bash_command=pipeline_command(step, interval=kwargs.pop("interval", True)),
        **kwargs,
    )
