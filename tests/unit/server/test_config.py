"""ServerConfig: defaults, environment, flags, and clear errors for invalid values."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from canonical import contract
from canonical.contract import CONTRACT_HASH, CONTRACT_ID
from client._version import __version__
from server.__main__ import config_from
from server.config import ServerConfig
from server.errors import ConfigError


def test_defaults() -> None:
    config = ServerConfig.from_env({})
    assert config == ServerConfig()
    assert (config.redis_host, config.redis_port, config.redis_password) == ("127.0.0.1", 6379, "")
    assert config.redis_tls is False
    assert config.redis_timeout_ms == 5.0
    assert (config.bind_address, config.port) == ("127.0.0.1", 50051)
    assert config.cache_ttl_ms == 1000.0
    assert config.symbols == ("USDCOP",)
    assert config.data_dir == Path("data")
    assert config.project == contract.PROJECT
    assert config.workers == 1


def test_from_env() -> None:
    config = ServerConfig.from_env(
        {
            "FEAST_REDIS_HOST": "redis.internal",
            "FEAST_REDIS_PORT": "6380",
            "FEAST_REDIS_PASSWORD": "s3cret",
            "FEAST_REDIS_SSL": "true",
            "USDCOP_BIND_ADDRESS": "0.0.0.0",
            "USDCOP_PORT": "0",
            "USDCOP_CACHE_TTL_MS": "0",
            "USDCOP_REDIS_TIMEOUT_MS": "2.5",
            "USDCOP_DATA_DIR": "/srv/data",
            "USDCOP_SYMBOLS": "USDCOP, USDMXN",
            "UNRELATED": "x",
        }
    )
    assert config.redis_host == "redis.internal"
    assert config.redis_port == 6380
    assert config.redis_password == "s3cret"
    assert config.redis_tls is True
    assert config.bind_address == "0.0.0.0"
    assert config.port == 0
    assert config.cache_ttl_ms == 0.0
    assert config.redis_timeout_ms == 2.5
    assert config.data_dir == Path("/srv/data")
    assert config.symbols == ("USDCOP", "USDMXN")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FEAST_REDIS_PORT": "sixty"}, "FEAST_REDIS_PORT='sixty' is not an integer"),
        ({"FEAST_REDIS_PORT": "70000"}, "redis_port (FEAST_REDIS_PORT) must be a TCP port"),
        ({"FEAST_REDIS_SSL": "maybe"}, "FEAST_REDIS_SSL='maybe' is not true or false"),
        (
            {"USDCOP_REDIS_TIMEOUT_MS": "0"},
            "redis_timeout_ms (USDCOP_REDIS_TIMEOUT_MS) must be > 0",
        ),
        ({"USDCOP_CACHE_TTL_MS": "nan"}, "USDCOP_CACHE_TTL_MS='nan' is not a finite number"),
        ({"USDCOP_CACHE_TTL_MS": "-1"}, "cache_ttl_ms (USDCOP_CACHE_TTL_MS) must be >= 0"),
        ({"USDCOP_SYMBOLS": "usdcop"}, "a symbol must be 1-16 characters of [A-Z0-9_]"),
        ({"USDCOP_SYMBOLS": ","}, "symbols (USDCOP_SYMBOLS) must name at least one symbol"),
    ],
)
def test_invalid_env_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        ServerConfig.from_env(env)
    assert message in raised.value.public_message


def test_flags_override_env() -> None:
    config = config_from(
        ["--port", "0", "--cache-ttl-ms", "250", "--symbols", "USDCOP,EURUSD"],
        {"USDCOP_PORT": "6000", "FEAST_REDIS_HOST": "from-env"},
    )
    assert config.port == 0
    assert config.cache_ttl_ms == 250.0
    assert config.symbols == ("USDCOP", "EURUSD")
    assert config.redis_host == "from-env"
    with pytest.raises(ConfigError, match="--workers='x' is not an integer"):
        config_from(["--workers", "x"], {})


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, (False, True, True)),
        ([], {"FEAST_REDIS_SSL": "true", "USDCOP_REFLECTION": "false"}, (True, True, False)),
        (["--redis-tls", "--no-cache-tracking"], {}, (True, False, True)),
        (
            ["--no-redis-tls", "--reflection"],
            {"FEAST_REDIS_SSL": "1", "USDCOP_REFLECTION": "0"},
            (False, True, True),
        ),
    ],
)
def test_boolean_flags_are_on_off_pairs_over_the_environment(
    argv: list[str], env: dict[str, str], expected: tuple[bool, bool, bool]
) -> None:
    config = config_from(argv, env)
    assert (config.redis_tls, config.cache_tracking, config.reflection) == expected
    assert ServerConfig.from_env(config.to_env()) == config
    with pytest.raises(SystemExit) as usage:  # a boolean flag takes no value any more
        config_from(["--redis-tls", "true"], {})
    assert usage.value.code == 2


def test_version_names_the_release_and_the_contract() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    contract = f"(contract {CONTRACT_ID} {CONTRACT_HASH[:12]})"
    assert result.stdout == f"usdcop-observation-server {__version__} {contract}\n"


def test_help_lists_flags_and_env_vars() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for text in (
        "--redis-host",
        "FEAST_REDIS_HOST",
        "--cache-ttl-ms",
        "--workers",
        "USDCOP_PORT",
        "--redis-tls, --no-redis-tls",
        "--version",
    ):
        assert text in result.stdout


def test_cli_reports_config_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        check=False,
        env={"FEAST_REDIS_PORT": "oops", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "configuration error: FEAST_REDIS_PORT='oops' is not an integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_to_env_round_trips_every_field() -> None:
    config = ServerConfig(
        redis_host="redis.internal",
        redis_port=6380,
        redis_password="pw with spaces=and,commas",
        redis_tls=True,
        redis_db=3,
        redis_timeout_ms=2.5,
        bind_address="0.0.0.0",
        port=0,
        cache_ttl_ms=0.1 + 0.2,  # not a short decimal: the text must carry every bit
        symbols=("USDCOP", "USDMXN"),
        data_dir=Path("/srv/data"),
        fallback_refresh_s=0.25,
        breaker_failure_threshold=7,
        breaker_open_ms=0.0,
        workers=3,
        grace_period_s=1.5,
        project="other_project",
    )
    env = config.to_env()
    assert ServerConfig.from_env(env) == config
    assert ServerConfig.from_env(ServerConfig().to_env()) == ServerConfig()
    # One variable per field, named by the field's metadata, and nothing else.
    assert sorted(env) == sorted(f.metadata["env"] for f in dataclasses.fields(ServerConfig))
    assert env["FEAST_REDIS_SSL"] == "true"
    assert env["USDCOP_SYMBOLS"] == "USDCOP,USDMXN"
    assert float(env["USDCOP_CACHE_TTL_MS"]) == 0.1 + 0.2
