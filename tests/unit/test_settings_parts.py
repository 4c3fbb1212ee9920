"""core.settings: the shared parsers (one table for booleans, "" included), secrets without
flags, and the metadata machinery every settings model derives from."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.settings import (
    SettingsError,
    about,
    add_flags,
    env_of,
    env_values,
    flag_values,
    parse_bool,
    parse_choice,
    parse_float,
    parse_int,
    parse_symbols,
    replaced,
    secret,
    secret_variables,
    settings_fields,
    unknown_variables,
)
from pipeline.__main__ import build_parser as pipeline_parser
from pipeline.settings import SECRET_VARIABLES, PipelineSettings
from server.__main__ import build_parser as server_parser
from server.config import ServerConfig
from server.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("on", True),
        ("0", False), ("false", False), ("No", False), ("off", False),
        ("", False), ("   ", False),  # empty means unset: the default (False unless given)
    ],
)  # fmt: skip
def test_the_boolean_table(raw: str, expected: bool) -> None:
    assert parse_bool("X", raw) is expected


def test_empty_is_the_default_and_anything_else_is_an_error() -> None:
    assert parse_bool("X", "", default=True) is True
    for raw in ("maybe", "2", "t", "y"):
        with pytest.raises(SettingsError, match=f"X={raw!r} is not true or false"):
            parse_bool("X", raw)


def test_number_and_choice_parsers_name_the_variable() -> None:
    assert parse_int("N", " 42 ") == 42
    assert parse_float("F", "2.5") == 2.5
    with pytest.raises(SettingsError, match=r"N='4\.2' is not an integer"):
        parse_int("N", "4.2")
    with pytest.raises(SettingsError, match="F='x' is not a number"):
        parse_float("F", "x")
    with pytest.raises(SettingsError, match="F='inf' is not a finite number"):
        parse_float("F", "inf")
    assert parse_choice("C", "Postgres", ("file", "postgres")) == "postgres"
    assert parse_choice("C", "files", ("file", "postgres"), {"files": "file"}) == "file"
    with pytest.raises(SettingsError, match="C='s3' must be one of file, postgres"):
        parse_choice("C", "s3", ("file", "postgres"))
    assert parse_symbols("S", "USDCOP, USDMXN,") == ("USDCOP", "USDMXN")
    with pytest.raises(SettingsError, match="S='usdcop' has 'usdcop'"):
        parse_symbols("S", "usdcop")


@dataclass(frozen=True)
class _Model:
    host: str = field(default="h", metadata=about("T_HOST", "host"))
    tls: bool = field(default=True, metadata=about("T_TLS", "tls (true/false)"))
    folder: Path = field(default=Path("d"), metadata=about("T_DIR", "folder", flag="--dir"))
    names: tuple[str, ...] = field(default=("A",), metadata=about("T_NAMES", "names"))
    password: str = field(default="", repr=False, metadata=secret("T_PASSWORD", "password"))


def test_from_env_to_env_flags_and_overrides_derive_from_the_metadata() -> None:
    env = {"T_HOST": " db ", "T_TLS": "", "T_NAMES": "B,C", "T_PASSWORD": " p w ", "OTHER": "1"}
    model = _Model(**env_values(_Model, env))
    assert model == _Model(host="db", tls=True, names=("B", "C"), password=" p w ")
    assert _Model(**env_values(_Model, env_of(model))) == model
    parser = argparse.ArgumentParser()
    add_flags(parser, settings_fields(_Model))
    args = parser.parse_args(["--no-tls", "--dir", "/srv", "--host", "x"])
    assert flag_values(args, settings_fields(_Model)) == {
        "host": "x",
        "tls": False,
        "folder": Path("/srv"),
    }
    assert replaced(model, {"host": None, "tls": False}) == dataclasses.replace(model, tls=False)
    assert secret_variables(_Model) == ("T_PASSWORD",)
    with pytest.raises(SystemExit):
        parser.parse_args(["--password", "x"])


def test_secrets_have_no_flag_and_help_names_them() -> None:
    server_help = server_parser().format_help()
    pipeline_help = " ".join(pipeline_parser().format_help().split())
    for variable in secret_variables(ServerConfig):
        flag = "--" + next(
            f.name for f in dataclasses.fields(ServerConfig) if f.metadata["env"] == variable
        ).replace("_", "-")
        assert flag not in server_help
        assert variable in " ".join(server_help.split())
    assert set(secret_variables(ServerConfig)) == {
        "FEAST_REDIS_PASSWORD",
        "POSTGRES_PASSWORD",
        "USDCOP_PUSH_TOKEN",
    }
    for variable in SECRET_VARIABLES:
        assert variable in pipeline_help
    assert "password" not in " ".join(
        f.metadata["flag"] or "" for f in settings_fields(PipelineSettings)
    )


def test_one_error_root_and_one_spelling_of_the_file_store() -> None:
    assert issubclass(ConfigError, SettingsError)
    with pytest.raises(SettingsError, match="USDCOP_PORT='x' is not an integer"):
        ServerConfig.from_env({"USDCOP_PORT": "x"})
    assert ServerConfig().fallback_source == "file" == PipelineSettings().offline_store
    assert ServerConfig.from_env({"USDCOP_FALLBACK_SOURCE": "files"}).fallback_source == "file"


def test_unknown_variables_name_the_closest_known_one() -> None:
    environ = {"T_HSOT": "x", "T_HOST": "y", "T_ZZZ": "1", "PATH": "/bin"}
    assert unknown_variables(environ, {"T_HOST"}, ("T_",)) == [
        ("T_HSOT", "T_HOST"),
        ("T_ZZZ", None),
    ]
