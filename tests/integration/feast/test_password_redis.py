"""feature_store.yaml's connection string carries a password: a protected Redis works, a wrong
password fails loudly (and an empty password with ssl=false is what every other test uses)."""

from __future__ import annotations

import socket

import pytest

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from pipeline.feast_online import read_online_observation
from pipeline.feast_repo import open_feature_store
from pipeline.run import run_pipeline
from tests.integration.feast._support import (
    FRIDAY_CLOSE,
    HISTORY_DAYS,
    address_of,
    copy_feature_repo,
    dump_redis,
)

pytestmark = pytest.mark.integration


def test_password_protected_redis(tmp_path) -> None:
    repo = copy_feature_repo(tmp_path)
    with EmbeddedRedis(password="s3cret-pw") as server:
        address = address_of(server)
        assert address.feast_env()["FEAST_REDIS_PASSWORD"] == "s3cret-pw"
        result = run_pipeline(
            repo.repo_dir, repo.data_dir, FRIDAY_CLOSE, address, days=HISTORY_DAYS
        )
        assert all(m.ran for m in result.materialized)
        assert len(dump_redis(server)) == 1  # one hash: the USDCOP entity

        observation = read_online_observation(result.store, "USDCOP", FRIDAY_CLOSE)
        assert [v.status for v in observation.views] == ["fresh"] * len(contract.VIEWS)
        assert None not in observation.values

        # The server really demands the password (so the reads above authenticated).
        with socket.create_connection((server.host, server.port), timeout=5) as anonymous:
            anonymous.sendall(b"*1\r\n$4\r\nPING\r\n")
            assert anonymous.recv(64).startswith(b"-NOAUTH")

        store = open_feature_store(repo.repo_dir, address)
        assert "password=s3cret-pw" in store.config.online_store.connection_string
