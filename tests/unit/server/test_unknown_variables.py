"""Misspelt project variables are named at start with the closest known one; no secret flags."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pipeline.settings import PipelineSettings
from server.__main__ import config_from
from server.config import OTHER_PROJECT_VARIABLES, ServerConfig, unknown_variables

ROOT = Path(__file__).resolve().parents[3]


def test_a_misspelt_variable_is_named_with_the_closest_known_one() -> None:
    environ = {
        "USDCOP_MAX_CONCURENT_RPCS": "10",
        "USDCOP_MAX_CONCURRENT_RPCS": "10",
        "POSTGRES_HOTS": "db",
        "USDCOP_ZZZ": "1",
        "FEAST_USAGE": "False",  # Feast's own variable: not ours to judge
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [
        ("POSTGRES_HOTS", "POSTGRES_HOST"),
        ("USDCOP_MAX_CONCURENT_RPCS", "USDCOP_MAX_CONCURRENT_RPCS"),
        ("USDCOP_ZZZ", None),
    ]


def test_every_variable_the_project_reads_is_known() -> None:
    pipeline_env = {
        f.metadata["env"] for f in dataclasses.fields(PipelineSettings) if f.metadata.get("env")
    }
    dag_settings = (ROOT / "airflow" / "dags" / "_usdcop" / "settings.py").read_text()
    dag_env = set(re.findall(r'"(USDCOP_[A-Z_]+|FEAST_[A-Z_]+|POSTGRES_[A-Z_]+)"', dag_settings))
    server_env = {f.metadata["env"] for f in dataclasses.fields(ServerConfig)}
    known = server_env | OTHER_PROJECT_VARIABLES
    assert pipeline_env - known == set()
    assert dag_env - known == set()
    assert unknown_variables(dict.fromkeys(known, "x")) == []


def test_the_postgres_password_has_no_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config_from(["--postgres-password", "secret"], {})
    assert "unrecognized arguments: --postgres-password" in capsys.readouterr().err
    assert config_from([], {"POSTGRES_PASSWORD": "s3"}).postgres_password == "s3"
