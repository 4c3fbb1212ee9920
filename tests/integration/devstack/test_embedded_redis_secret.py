"""The embedded redis-server's password never appears on its command line (readable by every
local user in /proc/<pid>/cmdline): it goes through a 0600 file in the server's own folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import redis

from devstack.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration

PASSWORD = 'pw with "quotes" \\ and spaces-0123456789'


def test_password_is_not_on_the_command_line() -> None:
    with EmbeddedRedis(password=PASSWORD) as server:
        assert server._proc is not None
        cmdline = Path(f"/proc/{server._proc.pid}/cmdline").read_bytes()
        args = cmdline.split(b"\0")
        assert b"redis-server" in args[0]
        assert PASSWORD.encode() not in cmdline
        assert b"requirepass" not in cmdline
        assert b"s-0123456789" not in cmdline

        config_file = Path(args[1].decode())
        assert config_file.name == "redis.conf"
        assert stat.S_IMODE(config_file.stat().st_mode) == 0o600

        # The password is in force, quotes and backslash intact.
        with (
            redis.Redis(host=server.host, port=server.port) as anonymous,
            pytest.raises(redis.AuthenticationError),
        ):
            anonymous.ping()
        with redis.Redis(host=server.host, port=server.port, password=PASSWORD) as client:
            assert client.ping() is True
            assert client.config_get("requirepass") == {"requirepass": PASSWORD}
    assert not config_file.exists()  # removed with the server's folder


def test_no_password_still_starts_without_one() -> None:
    with EmbeddedRedis() as server, redis.Redis(host=server.host, port=server.port) as client:
        assert client.ping() is True
        assert client.config_get("requirepass") == {"requirepass": ""}
