"""Settings of the USD/COP DAGs: a frozen dataclass; the only DAG-side reader of the env.

What enters: the environment of the Airflow process that parses the DAG files. What leaves:
:data:`SETTINGS`, which says where the project lives, which Python runs its steps, the
schedule, the L1 sensor's timeout and the retry policy.

Airflow and the project never share an interpreter: every task runs
``<USDCOP_PROJECT_PYTHON> -m pipeline <step>`` in the project's own virtualenv, which reads its
own variables (FEAST_REDIS_*, USDCOP_DATA_DIR, ... see ``python -m pipeline --help``) from the
environment the task inherits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[3]
"""The project checkout these DAG files belong to (airflow/dags/_usdcop/ -> root)."""

FALLBACK_CRON = "*/15 13-18 * * 1-5"
"""Every 15 minutes of the trading session, Mon-Fri (UTC): the guide's fallback schedule."""


@dataclass(frozen=True)
class DagSettings:
    """What the DAG files need; read once when Airflow parses them."""

    project_dir: Path
    """Project checkout the steps run in; USDCOP_PROJECT_DIR [this checkout]."""
    project_python: Path
    """The project virtualenv's interpreter; USDCOP_PROJECT_PYTHON [<project>/.venv/bin/python]."""
    feature_repo: Path | None
    """Feast repository folder (data/ beside it); USDCOP_FEATURE_REPO [<project>/feature_repo]."""
    schedule_cron: str
    """Cron of all three DAGs (same data intervals); USDCOP_SCHEDULE_CRON [FALLBACK_CRON]."""
    sensor_timeout_s: float
    """Seconds a sensor waits for its upstream run, then fails; USDCOP_L1_SENSOR_TIMEOUT_S."""
    sensor_poke_s: float
    """Seconds between the sensor's checks; USDCOP_SENSOR_POKE_S [30]."""
    retries: int
    """Retries of a failed step; USDCOP_TASK_RETRIES [3]."""
    retry_delay_s: float
    """First retry delay, doubled each retry (exponential backoff); USDCOP_RETRY_DELAY_S [60]."""
    max_retry_delay_s: float
    """Upper bound of the retry delay; USDCOP_MAX_RETRY_DELAY_S [900]."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> DagSettings:
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        project = Path(get("USDCOP_PROJECT_DIR", str(_CHECKOUT))).resolve()
        repo = env.get("USDCOP_FEATURE_REPO", "").strip()
        return cls(
            project_dir=project,
            project_python=Path(get("USDCOP_PROJECT_PYTHON", str(project / ".venv/bin/python"))),
            feature_repo=Path(repo).resolve() if repo else None,
            schedule_cron=get("USDCOP_SCHEDULE_CRON", FALLBACK_CRON),
            sensor_timeout_s=float(get("USDCOP_L1_SENSOR_TIMEOUT_S", "1800")),
            sensor_poke_s=float(get("USDCOP_SENSOR_POKE_S", "30")),
            retries=int(get("USDCOP_TASK_RETRIES", "3")),
            retry_delay_s=float(get("USDCOP_RETRY_DELAY_S", "60")),
            max_retry_delay_s=float(get("USDCOP_MAX_RETRY_DELAY_S", "900")),
        )


SETTINGS = DagSettings.from_env()
