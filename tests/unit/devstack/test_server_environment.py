"""The child's environment: exactly the ServerConfig it was given, whatever the parent had."""

from __future__ import annotations

from pathlib import Path

from devstack.server_process import server_environment
from server.config import ServerConfig


def test_child_environment_is_the_config_and_nothing_of_the_parents_server_settings() -> None:
    parent = {
        "PATH": "/usr/bin",
        "USDCOP_CACHE_TTL_MS": "0",  # the parent's own server settings must not leak in
        "FEAST_REDIS_PASSWORD": "parent-secret",
        "USDCOP_SYMBOLS": "OTHER",
    }
    config = ServerConfig(
        redis_port=6390, symbols=("USDCOP", "USDMXN"), data_dir=Path("/srv/d"), port=7000
    )
    env = server_environment(config, parent)
    assert env["PATH"] == "/usr/bin"
    assert ServerConfig.from_env(env) == config
    assert env["USDCOP_CACHE_TTL_MS"] == "1000.0"
    assert env["FEAST_REDIS_PASSWORD"] == ""
    assert env["USDCOP_SYMBOLS"] == "USDCOP,USDMXN"
