"""Settings of the USD/COP DAGs: a frozen dataclass; the only DAG-side reader of the env.

What enters: the environment of the Airflow process that parses the DAG files. What leaves:
:data:`SETTINGS`, which says where the project lives, which Python runs its steps, the
schedule, the L1 sensor's timeout and the retry policy; a bad value stops the DAG files' import
with one ``SettingsError`` line naming the variable.

Built from the project's shared settings parts (``core/settings.py``: the field metadata, the
parsers, ``from_env``), loaded by its path from the checkout these files belong to: Airflow and
the project never share an interpreter (the DAG folder is ``airflow/dags/`` of a checkout, README
"Production"), and that module needs only the standard library. Every task runs
``<USDCOP_PROJECT_PYTHON> -m pipeline <step>`` in the project's own virtualenv, which reads its
own variables (FEAST_REDIS_*, USDCOP_DATA_DIR, ... see ``python -m pipeline --help``) from the
environment the task inherits.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import ModuleType

_CHECKOUT = Path(__file__).resolve().parents[3]
"""The project checkout these DAG files belong to (airflow/dags/_usdcop/ -> root)."""


def _shared_parts() -> ModuleType:
    """``core/settings.py`` of the checkout, under a private name (no ``core`` on sys.path)."""
    name = "_usdcop_core_settings"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _CHECKOUT / "core" / "settings.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


_core = _shared_parts()
SettingsError = _core.SettingsError
about = _core.about

FALLBACK_CRON = "*/15 13-18 * * 1-5"
"""Every 15 minutes of the trading session, Mon-Fri (UTC): the guide's fallback schedule."""


@dataclass(frozen=True)
class DagSettings:
    """What the DAG files need; read once when Airflow parses them."""

    project_dir: Path = field(
        default=_CHECKOUT,
        metadata=about(
            "USDCOP_PROJECT_DIR",
            "project checkout the steps run in [this checkout]",
            parse=_core.parse_resolved_path,
        ),
    )
    project_python: Path | None = field(
        default=None,
        metadata=about(
            "USDCOP_PROJECT_PYTHON",
            "the project virtualenv's interpreter [<project>/.venv/bin/python]",
        ),
    )
    feature_repo: Path | None = field(
        default=None,
        metadata=_core.shared(
            _core.FEATURE_REPO_VARIABLE,
            doc="Feast repository folder (data/ beside it) [<project>/feature_repo]",
        ),
    )
    schedule_cron: str = field(
        default=FALLBACK_CRON,
        metadata=about("USDCOP_SCHEDULE_CRON", "cron of all three DAGs (same data intervals)"),
    )
    sensor_timeout_s: float = field(
        default=1800.0,
        metadata=about(
            "USDCOP_L1_SENSOR_TIMEOUT_S", "seconds a sensor waits for its upstream run, then fails"
        ),
    )
    sensor_poke_s: float = field(
        default=30.0,
        metadata=about("USDCOP_SENSOR_POKE_S", "seconds between the sensor's checks"),
    )
    retries: int = field(
        default=3, metadata=about("USDCOP_TASK_RETRIES", "retries of a failed step")
    )
    retry_delay_s: float = field(
        default=60.0,
        metadata=about(
            "USDCOP_RETRY_DELAY_S", "first retry delay, doubled each retry (exponential backoff)"
        ),
    )
    max_retry_delay_s: float = field(
        default=900.0,
        metadata=about("USDCOP_MAX_RETRY_DELAY_S", "upper bound of the retry delay"),
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type == "float" and not getattr(self, f.name) > 0:
                raise SettingsError(f"{f.metadata['env']} must be > 0: got {getattr(self, f.name)}")
        if self.retries < 0:
            raise SettingsError(f"USDCOP_TASK_RETRIES must be >= 0: got {self.retries}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DagSettings:
        """Defaults overridden by whichever variables are set (empty counts as unset)."""
        settings = cls(**_core.env_values(cls, os.environ if environ is None else environ))
        if settings.project_python is None:
            settings = replace(
                settings, project_python=settings.project_dir / ".venv" / "bin" / "python"
            )
        return settings


SETTINGS = DagSettings.from_env()
