"""Fatal configuration fails at start (wrong password, missing password, TLS mismatch: exit
non-zero with one clear line); a Redis that is merely down is not fatal (the fallback serves,
health says SERVING). Real redis-server processes, real ``python -m server``."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from devstack.embedded_redis import EmbeddedRedis, free_port
from tests.integration.faults._process import kill, start_server, wait_serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _env(redis_port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "FEAST_REDIS_PORT": str(redis_port),
        "USDCOP_DATA_DIR": str(data_dir),
        "USDCOP_PORT": str(free_port()),
        **extra,
    }


def _fails_with_one_line(env: dict[str, str], expected: str) -> None:
    proc = start_server(env)
    try:
        assert proc.wait(timeout=60) != 0
        assert proc.stderr is not None
        lines = [line for line in proc.stderr.read().splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert expected in lines[0]
        assert "Traceback" not in lines[0]
    finally:
        kill(proc)


@pytest.fixture(scope="module")
def password_redis() -> object:
    with EmbeddedRedis(password="right-password") as server:
        yield server


def test_wrong_password_is_fatal(password_redis: EmbeddedRedis, data_dir: Path) -> None:
    env = _env(password_redis.port, data_dir, FEAST_REDIS_PASSWORD="wrong-password")
    _fails_with_one_line(env, "refused the credentials: check FEAST_REDIS_PASSWORD")


def test_missing_password_is_fatal(password_redis: EmbeddedRedis, data_dir: Path) -> None:
    _fails_with_one_line(_env(password_redis.port, data_dir), "refused the credentials")


def test_tls_against_a_plaintext_redis_is_fatal(
    redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    env = _env(redis_server.port, data_dir, FEAST_REDIS_SSL="true")
    _fails_with_one_line(env, "speaks plaintext, not TLS")


def test_the_password_never_appears_in_the_error_or_help(
    password_redis: EmbeddedRedis, data_dir: Path
) -> None:
    import subprocess
    import sys

    env = _env(password_redis.port, data_dir, FEAST_REDIS_PASSWORD="wrong-password-xyz")
    proc = start_server(env)
    try:
        proc.wait(timeout=60)
        assert proc.stderr is not None
        assert "wrong-password-xyz" not in proc.stderr.read()
    finally:
        kill(proc)
    help_text = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        capture_output=True,
        text=True,
        env={**env},
        check=True,
    ).stdout
    assert "wrong-password-xyz" not in help_text
    assert "--redis-password" not in help_text and "--push-token" not in help_text
    assert "FEAST_REDIS_PASSWORD" in help_text  # named as environment-only


def test_a_redis_that_is_down_is_not_fatal(data_dir: Path) -> None:
    port = free_port()
    env = _env(free_port(), data_dir, USDCOP_PORT=str(port))
    proc = start_server(env)
    try:
        wait_serving(proc, f"127.0.0.1:{port}")  # the fallback serves
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        kill(proc)
