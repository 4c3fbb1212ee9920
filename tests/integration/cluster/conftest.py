"""A real 3-master Redis Cluster on 127.0.0.1 (devstack.embedded_cluster), and helpers to
point the server at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from devstack.embedded_cluster import EmbeddedCluster
from server.config import ServerConfig
from tests.integration.server.conftest import (  # noqa: F401 - fixtures used by the tests
    data_dir,
    raw_frames,
    server_config,
)


@pytest.fixture(scope="session")
def cluster() -> Iterator[EmbeddedCluster]:
    """One cluster for the session (tests use distinct symbols or their own cluster)."""
    with EmbeddedCluster() as started:
        yield started


@pytest.fixture
def own_cluster() -> Iterator[EmbeddedCluster]:
    """A cluster of the test's own, for tests that stop nodes or move slots."""
    with EmbeddedCluster() as started:
        yield started


def cluster_client(cluster: EmbeddedCluster) -> RedisCluster:
    node = cluster.nodes[0]
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", node.port)])


def cluster_config(
    cluster: EmbeddedCluster, fallback_dir: Path, first: int = 0, **overrides: object
) -> ServerConfig:
    """The server on the cluster, its startup nodes listed from ``nodes[first]`` on (so a
    test can make the first node the server tries one that does not own the key)."""
    nodes = cluster.startup_nodes[first:] + cluster.startup_nodes[:first]
    return server_config(
        cluster.nodes[first].port,
        fallback_dir,
        redis_type="redis_cluster",
        redis_cluster_nodes=nodes,
        **overrides,
    )
