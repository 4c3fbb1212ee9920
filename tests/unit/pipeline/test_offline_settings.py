"""FEAST_OFFLINE_STORE_TYPE and POSTGRES_* parsing; the password never shows in repr, str or
--help."""

from __future__ import annotations

import contextlib
import io

import pytest

from core.settings import SettingsError
from pipeline.__main__ import build_parser
from pipeline.settings import PipelineSettings
from server.__main__ import build_parser as server_parser
from server.config import ServerConfig

SECRET = "s3cr3t-Pa55"


def test_file_is_the_default_and_postgres_reads_the_seed_variables() -> None:
    assert PipelineSettings.from_env({}).offline_store == "file"
    assert PipelineSettings.from_env({}).postgres is None
    settings = PipelineSettings.from_env(
        {
            "FEAST_OFFLINE_STORE_TYPE": "postgres",
            "POSTGRES_HOST": "db.internal",
            "POSTGRES_PORT": "6543",
            "POSTGRES_DB": "features",
            "POSTGRES_USER": "feast",
            "POSTGRES_PASSWORD": SECRET,
        }
    )
    assert settings.offline_store == "postgres"
    assert settings.postgres is not None
    assert (settings.postgres.host, settings.postgres.port) == ("db.internal", 6543)
    assert (settings.postgres.database, settings.postgres.user) == ("features", "feast")
    assert settings.postgres.password == SECRET
    assert settings.postgres.sslmode == "prefer"
    assert SECRET not in repr(settings) and SECRET not in str(settings.postgres)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FEAST_OFFLINE_STORE_TYPE": "bigquery"}, "FEAST_OFFLINE_STORE_TYPE"),
        ({"POSTGRES_HOST": "h", "POSTGRES_PORT": "x"}, "POSTGRES_PORT"),
        ({"POSTGRES_HOST": "h", "POSTGRES_PORT": "70000"}, "POSTGRES_PORT"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        PipelineSettings.from_env(env)


def test_the_password_is_not_in_any_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", SECRET)
    texts = [build_parser().format_help(), server_parser().format_help()]
    for command in ("run", "up", "training-set"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        texts.append(out.getvalue())
    assert "training-set" in texts[0] and "POSTGRES_HOST" in texts[0]
    assert all(SECRET not in text for text in texts)
    config = ServerConfig.from_env(
        {"POSTGRES_PASSWORD": SECRET, "USDCOP_FALLBACK_SOURCE": "postgres"}
    )
    assert config.fallback_postgres() is not None
    assert SECRET not in repr(config)
