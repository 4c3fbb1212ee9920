"""Fatal configuration fails at start (wrong password, missing password, TLS mismatch: exit
non-zero with one clear line); a Redis that is merely down is not fatal (the fallback serves,
health says SERVING). Real redis-server processes, real ``python -m server``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import ServerProcess, server_environment
from server.config import ServerConfig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _config(redis_port: int, data_dir: Path, **overrides: object) -> ServerConfig:
    return ServerConfig(redis_port=redis_port, data_dir=data_dir, port=0).with_overrides(
        **overrides
    )


def _fails_with_one_line(config: ServerConfig, expected: str) -> None:
    with ServerProcess(config) as server:
        code = server.wait_exit(timeout_s=60)
        assert code is not None and code != 0
        lines = [line for line in server.stderr_lines() if line.strip()]
        assert len(lines) == 1, lines
        assert expected in lines[0]
        assert "Traceback" not in lines[0]


@pytest.fixture(scope="module")
def password_redis() -> object:
    with EmbeddedRedis(password="right-password") as server:
        yield server


def test_wrong_password_is_fatal(password_redis: EmbeddedRedis, data_dir: Path) -> None:
    config = _config(password_redis.port, data_dir, redis_password="wrong-password")
    _fails_with_one_line(config, "refused the credentials: check FEAST_REDIS_PASSWORD")


def test_missing_password_is_fatal(password_redis: EmbeddedRedis, data_dir: Path) -> None:
    _fails_with_one_line(_config(password_redis.port, data_dir), "refused the credentials")


def test_tls_against_a_plaintext_redis_is_fatal(
    redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    config = _config(redis_server.port, data_dir, redis_tls=True)
    _fails_with_one_line(config, "speaks plaintext, not TLS")


def test_the_password_never_appears_in_the_error_or_help(
    password_redis: EmbeddedRedis, data_dir: Path
) -> None:
    config = _config(password_redis.port, data_dir, redis_password="wrong-password-xyz")
    with ServerProcess(config, echo_stderr=False) as server:
        server.wait_exit(timeout_s=60)
        assert "wrong-password-xyz" not in "\n".join(server.stderr_lines())
    env = server_environment(config, os.environ)
    help_text = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "wrong-password-xyz" not in help_text
    assert "--redis-password" not in help_text and "--push-token" not in help_text
    assert "FEAST_REDIS_PASSWORD" in help_text  # named as environment-only


def test_a_redis_that_is_down_is_not_fatal(data_dir: Path) -> None:
    with ServerProcess(_config(free_port(), data_dir)) as server:
        server.wait_serving()  # the fallback serves
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(timeout_s=30) == 0
