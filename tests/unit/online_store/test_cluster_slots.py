"""Slots of Redis Cluster keys as the router computes them: CRC16-XMODEM with hash tags
(golden values from the cluster spec and from ``CLUSTER KEYSLOT`` of Redis 7.0); config of the
cluster mode."""

from __future__ import annotations

import pytest
from redis.exceptions import AskError, MovedError, ResponseError

from online_store.cluster import key_slot, parse_node, redirection
from server.config import ServerConfig
from server.errors import ConfigError


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"foo", 12182),
        (b"{user1000}.following", 3443),
        (b"{user1000}.followers", 3443),  # same tag, same slot
        (b"a{}b", 13694),  # an empty tag does not count: the whole key is hashed
        (b"x{y", 2740),  # no closing brace: the whole key
        # Feast's 37-byte key of USDCOP in project usdcop_trading (binary, no tag)
        (
            bytes.fromhex("01000000020000000600000073796d626f6c0200000006000000555344434f50")
            + b"usdcop_trading",
            2052,
        ),
    ],
)
def test_key_slot_golden_values(key: bytes, slot: int) -> None:
    assert key_slot(key) == slot


def test_redirections_are_parsed_from_redis_pys_errors() -> None:
    assert redirection(MovedError("2052 127.0.0.1:7001")) == (True, 2052, ("127.0.0.1", 7001))
    assert redirection(AskError("17 10.0.0.2:7002")) == (False, 17, ("10.0.0.2", 7002))
    assert redirection(ResponseError("WRONGTYPE Operation")) is None


def test_cluster_config_lists_startup_nodes_and_rejects_bad_ones() -> None:
    config = ServerConfig.from_env(
        {"FEAST_REDIS_TYPE": "redis_cluster", "FEAST_REDIS_CLUSTER_NODES": "10.0.0.1:7000, h:7001"}
    )
    assert config.cluster_startup_nodes == (("10.0.0.1", 7000), ("h", 7001))
    only_host = ServerConfig(redis_type="redis_cluster", redis_host="r", redis_port=7005)
    assert only_host.cluster_startup_nodes == (("r", 7005),)
    with pytest.raises(ConfigError, match="redis_type"):
        ServerConfig(redis_type="sentinel")
    with pytest.raises(ConfigError, match="redis_cluster_nodes"):
        ServerConfig(redis_type="redis_cluster", redis_cluster_nodes=("nohost",))
    with pytest.raises(ConfigError, match="redis_db"):
        ServerConfig(redis_type="redis_cluster", redis_db=1)
    assert parse_node("::1:7000") == ("::1", 7000)
