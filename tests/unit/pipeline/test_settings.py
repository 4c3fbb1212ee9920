"""PipelineSettings / RedisAddress: parsing, validation, and the env Feast's yaml expands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.settings import (
    DEFAULT_DATA_DIR,
    REPO_ROOT,
    PipelineSettings,
    RedisAddress,
    SettingsError,
)


def test_defaults_without_environment() -> None:
    settings = PipelineSettings.from_env({})
    assert settings.redis is None  # -> embedded redis-server
    assert settings.data_dir == DEFAULT_DATA_DIR == REPO_ROOT / "data"
    assert settings.repo_dir == REPO_ROOT / "feature_repo"
    assert settings.symbols == ("USDCOP",)
    assert (settings.history_days, settings.seed, settings.server_port) == (365, 7, 50051)


def test_environment_overrides() -> None:
    settings = PipelineSettings.from_env(
        {
            "FEAST_REDIS_HOST": "redis.internal",
            "FEAST_REDIS_PORT": "6380",
            "FEAST_REDIS_PASSWORD": "pw",
            "FEAST_REDIS_SSL": "true",
            "USDCOP_DATA_DIR": "/srv/usdcop/data",
            "USDCOP_SYMBOLS": "USDCOP, USDMXN",
            "USDCOP_HISTORY_DAYS": "90",
            "USDCOP_SEED": "11",
            "USDCOP_PORT": "0",
            "USDCOP_LIVE_TICK_S": "0.5",
            "USDCOP_LIVE_CATCHUP_BARS": "3",
        }
    )
    assert settings.redis == RedisAddress("redis.internal", 6380, "pw", tls=True)
    assert settings.data_dir == Path("/srv/usdcop/data")
    assert settings.symbols == ("USDCOP", "USDMXN")
    assert (settings.history_days, settings.seed, settings.server_port) == (90, 11, 0)
    assert (settings.live_tick_s, settings.live_catchup_bars) == (0.5, 3)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FEAST_REDIS_HOST": "h", "FEAST_REDIS_PORT": "x"}, "FEAST_REDIS_PORT='x'"),
        ({"FEAST_REDIS_HOST": "h", "FEAST_REDIS_PORT": "0"}, "FEAST_REDIS_PORT must be"),
        ({"FEAST_REDIS_HOST": "h", "FEAST_REDIS_SSL": "maybe"}, "FEAST_REDIS_SSL='maybe'"),
        ({"FEAST_REDIS_HOST": "h", "FEAST_REDIS_PASSWORD": "a,b"}, "must not contain ','"),
        ({"USDCOP_HISTORY_DAYS": "1"}, "USDCOP_HISTORY_DAYS must be >= 2"),
        ({"USDCOP_LIVE_TICK_S": "0"}, "USDCOP_LIVE_TICK_S must be > 0"),
        ({"USDCOP_PORT": "70000"}, "USDCOP_PORT must be 0-65535"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        PipelineSettings.from_env(env)


def test_feast_env_fills_every_placeholder_of_the_yaml() -> None:
    yaml = (REPO_ROOT / "feature_repo" / "feature_store.yaml").read_text()
    env = RedisAddress("127.0.0.1", 6379).feast_env()
    assert env == {
        "FEAST_REDIS_HOST": "127.0.0.1",
        "FEAST_REDIS_PORT": "6379",
        "FEAST_REDIS_PASSWORD": "",
        "FEAST_REDIS_SSL": "false",
        "FEAST_REDIS_TYPE": "redis",
        "FEAST_REDIS_SSL_CA_CERTS": "",
        "FEAST_REDIS_SSL_CERTFILE": "",
        "FEAST_REDIS_SSL_KEYFILE": "",
        "FEAST_REDIS_TLS_OPTIONS": "",
    }
    config = "\n".join(row for row in yaml.splitlines() if not row.lstrip().startswith("#"))
    placeholders = {token.split("}")[0] for token in config.split("${")[1:]}
    # The three file variables reach Feast through FEAST_REDIS_TLS_OPTIONS (and the server).
    assert placeholders == set(env) - {
        "FEAST_REDIS_SSL_CA_CERTS",
        "FEAST_REDIS_SSL_CERTFILE",
        "FEAST_REDIS_SSL_KEYFILE",
    }


def test_redis_tls_files_render_as_redis_py_options_in_the_connection_string() -> None:
    address = RedisAddress(
        "127.0.0.1", 6390, tls=True, tls_ca_file="/pki/ca.pem",
        tls_cert_file="/pki/c.pem", tls_key_file="/pki/c.key",
    )  # fmt: skip
    env = address.feast_env()
    assert env["FEAST_REDIS_TLS_OPTIONS"] == (
        ",ssl_ca_certs=/pki/ca.pem,ssl_certfile=/pki/c.pem,ssl_keyfile=/pki/c.key"
    )
    assert RedisAddress.from_env(env) == address
    with pytest.raises(SettingsError, match="FEAST_REDIS_SSL_CA_CERTS needs FEAST_REDIS_SSL"):
        RedisAddress("127.0.0.1", 6390, tls_ca_file="/pki/ca.pem")
    with pytest.raises(SettingsError, match="go together"):
        RedisAddress("127.0.0.1", 6390, tls=True, tls_cert_file="/pki/c.pem")


def test_exported_sets_then_restores_the_environment() -> None:
    environ = {"FEAST_REDIS_HOST": "before", "OTHER": "x"}
    with RedisAddress("127.0.0.1", 7000, "pw").exported(environ):
        assert environ["FEAST_REDIS_HOST"] == "127.0.0.1"
        assert environ["FEAST_REDIS_PASSWORD"] == "pw"
    assert environ == {"FEAST_REDIS_HOST": "before", "OTHER": "x"}


def test_the_yaml_expands_to_feasts_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in RedisAddress("h", 1).feast_env():
        monkeypatch.delenv(key, raising=False)
    yaml = (REPO_ROOT / "feature_repo" / "feature_store.yaml").read_text()
    line = next(row for row in yaml.splitlines() if row.strip().startswith("connection_string"))
    with RedisAddress("127.0.0.1", 7000).exported():  # os.environ, as Feast reads it
        expanded = os.path.expandvars(line)
    assert expanded.split(": ", 1)[1] == '"127.0.0.1:7000,password=,ssl=false"'
    assert "FEAST_REDIS_HOST" not in os.environ


def test_with_overrides_ignores_none() -> None:
    settings = PipelineSettings().with_overrides(seed=None, history_days=10)
    assert (settings.seed, settings.history_days) == (7, 10)


def test_redis_type_selects_a_cluster_and_round_trips() -> None:
    address = RedisAddress.from_env(
        {
            "FEAST_REDIS_HOST": "127.0.0.1",
            "FEAST_REDIS_PORT": "7000",
            "FEAST_REDIS_TYPE": "redis_cluster",
        }
    )
    assert address == RedisAddress("127.0.0.1", 7000, cluster=True)
    assert address.feast_env()["FEAST_REDIS_TYPE"] == "redis_cluster"
    with pytest.raises(
        SettingsError, match=r"FEAST_REDIS_TYPE=.sentinel. must be one of redis, redis_cluster"
    ):
        RedisAddress.from_env({"FEAST_REDIS_HOST": "h", "FEAST_REDIS_TYPE": "sentinel"})


def test_help_is_generated_from_the_settings_metadata() -> None:
    from pipeline.__main__ import build_parser
    from pipeline.settings import setting_fields

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("run", "up", "feast"):
        text = " ".join(subparsers[command].format_help().split())  # argparse wraps lines
        for f in setting_fields():
            flag, env = f.metadata["flag"], f.metadata["env"]
            if command in f.metadata["commands"]:
                assert flag in text and " ".join(f.metadata["doc"].split()) in text
                assert env is None or f"env {env}" in text
            else:
                assert flag not in text
    assert "--catchup-bars" in " ".join(subparsers["up"].format_help().split())
    top = parser.format_help()  # python -m pipeline --help: every setting, flag and variable
    for f in setting_fields():
        assert f.metadata["flag"] in top and f.metadata["doc"] in top
        assert f.metadata["env"] is None or f.metadata["env"] in top


def test_flags_and_environment_parse_alike() -> None:
    from pipeline.__main__ import build_parser, settings_from

    args = build_parser().parse_args(
        ["up", "--catchup-bars", "3", "--tick-s", "0.5", "--symbols", "USDCOP, USDMXN"]
    )
    from_flags = settings_from(args)
    from_env = PipelineSettings.from_env(
        {
            "USDCOP_LIVE_CATCHUP_BARS": "3",
            "USDCOP_LIVE_TICK_S": "0.5",
            "USDCOP_SYMBOLS": "USDCOP,USDMXN",
        }
    )
    assert (from_flags.live_catchup_bars, from_flags.live_tick_s, from_flags.symbols) == (
        from_env.live_catchup_bars, from_env.live_tick_s, from_env.symbols,
    ) == (3, 0.5, ("USDCOP", "USDMXN"))  # fmt: skip
    with pytest.raises(SettingsError, match="--days='x' is not an integer"):
        settings_from(build_parser().parse_args(["run", "--days", "x"]))
