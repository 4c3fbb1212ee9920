"""The server against a real 3-master Redis Cluster: slots as the cluster computes them, Feast
materializing into it, bit-identical reads from the slot owner, PushState on the owner, the
fallback when the owner is down, and answers that stay right while the slot is resharded."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import AskError, MovedError
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from core.clock import ManualClock
from devstack.embedded_cluster import ClusterNode, EmbeddedCluster
from online_store import feast_layout
from online_store.address import RedisAddress
from online_store.cluster import key_slot
from pipeline.run import run_pipeline
from pipeline.settings import REPO_ROOT
from server.fallback import compute_rows
from tests.integration.cluster.conftest import cluster_client, cluster_config
from tests.integration.server.conftest import (
    NOW_NS,
    STORE_VALUES,
    Running,
    running,
    write_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FRIDAY_CLOSE = datetime(2026, 1, 9, 18, 0, tzinfo=UTC)
NOW = FRIDAY_CLOSE + timedelta(minutes=1)
KEY = feast_layout.entity_key("USDCOP", contract.PROJECT)
ONLINE = {pb.VALUE_SOURCE_ONLINE_STORE}


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def _not_owner_index(cluster: EmbeddedCluster, key: bytes) -> int:
    owner = cluster.owner_of(key)
    return next(i for i, node in enumerate(cluster.nodes) if node is not owner)


def test_key_slot_equals_cluster_keyslot(cluster: EmbeddedCluster) -> None:
    rng = random.Random(11)
    keys = [feast_layout.entity_key(s, p) for s in ("USDCOP", "USDMXN", "X") for p in ("a", "fx")]
    keys += [b"", b"{user1000}.following", b"a{}b", b"x{y", b"{}{z}", b"{\xff\x00}k"]
    keys += [os.urandom(rng.randint(1, 64)) for _ in range(200)]
    with cluster.nodes[0].client() as client:
        expected = [int(client.execute_command("CLUSTER", "KEYSLOT", key)) for key in keys]
    assert [key_slot(key) for key in keys] == expected


def test_feast_materializes_into_the_cluster_and_the_server_matches_it(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    repo_dir = tmp_path / "feature_repo"
    shutil.copytree(
        REPO_ROOT / "feature_repo", repo_dir, ignore=shutil.ignore_patterns("__pycache__", "data")
    )
    data_dir = tmp_path / "data"
    first = cluster.nodes[0]
    address = RedisAddress(host="127.0.0.1", port=first.port, cluster=True)
    result = run_pipeline(repo_dir, data_dir, FRIDAY_CLOSE, address, days=30)
    store = result.store
    assert store is not None
    service = store.get_feature_service(contract.FEATURE_SERVICE)

    def feast_vector() -> np.ndarray:
        online = store.get_online_features(
            features=service, entity_rows=[{contract.ENTITY: "USDCOP"}]
        ).to_dict()
        return np.array([online[name][0] for name in contract.FEATURE_NAMES], dtype=np.float32)

    feast_values = feast_vector()
    assert np.isfinite(feast_values).all()
    # Feast wrote the hash on the key's slot owner, in the single-Redis layout.
    with cluster.owner_of(KEY).client() as owner:
        assert owner.hexists(KEY, feast_layout.ts_field(contract.STATE.name))

    async def scenario() -> tuple[pb.Observation, pb.PushStateResponse, pb.Observation]:
        # The first node the server knows does not own the key: it must route to the owner.
        config = cluster_config(
            cluster, data_dir, first=_not_owner_index(cluster, KEY), cache_ttl_ms=0
        )
        async with running(config, ManualClock(wall_ns=_ns(NOW))) as app:
            served = await app.get()
            pushed = await app.stub.PushState(
                pb.PushStateRequest(
                    symbol="USDCOP",
                    position=-1.0,
                    event_time=_timestamp(FRIDAY_CLOSE + timedelta(seconds=30)),
                )
            )
            stale = await app.stub.PushState(
                pb.PushStateRequest(
                    symbol="USDCOP",
                    position=0.5,
                    event_time=_timestamp(FRIDAY_CLOSE + timedelta(seconds=10)),
                )
            )
            assert not stale.applied
            return served, pushed, await app.get()

    served, pushed, after_push = asyncio.run(scenario())
    got = np.array(served.values, dtype=np.float32)
    assert got.view(np.uint32).tolist() == feast_values.view(np.uint32).tolist()
    assert {v.source for v in served.views} == ONLINE
    assert {v.event_time.ToNanoseconds() for v in served.views} == {_ns(FRIDAY_CLOSE)}
    # PushState's transaction ran on the owner: Feast's SDK reads it, the stale push lost.
    assert pushed.applied
    feast_after = feast_vector()
    assert feast_after[contract.FEATURE_INDEX["position"]] == np.float32(-1.0)
    assert feast_after[:13].tolist() == feast_values[:13].tolist()
    assert np.array(after_push.values, dtype=np.float32).tolist() == feast_after.tolist()


def test_owner_down_gives_the_fallback_then_the_store_again(
    own_cluster: EmbeddedCluster, data_dir: Path
) -> None:
    client = cluster_client(own_cluster)
    write_observation(client)  # type: ignore[arg-type]
    fallback_values = list(compute_rows(data_dir, ("USDCOP",))["USDCOP"].values)
    owner = own_cluster.owner_of(KEY)

    async def scenario() -> None:
        config = cluster_config(
            own_cluster,
            data_dir,
            first=_not_owner_index(own_cluster, KEY),
            cache_ttl_ms=0,
            redis_timeout_ms=200.0,
            breaker_open_ms=0.0,
        )
        async with running(config) as app:
            assert {v.source for v in (await app.get()).views} == ONLINE
            own_cluster.stop_node(owner)
            obs = await app.get()
            assert list(obs.values) == fallback_values
            assert {v.fallback_reason for v in obs.views} == {pb.FALLBACK_REASON_STORE_UNAVAILABLE}
            # Back on its port with its nodes.conf (same id, same slots), data rewritten.
            own_cluster.start_node(owner)
            await asyncio.to_thread(own_cluster.wait_healthy)
            await asyncio.to_thread(_rewrite, own_cluster)
            back = await _until_online(app)
            assert list(back.values) == list(np.float32(STORE_VALUES))

    asyncio.run(scenario())


def _rewrite(cluster: EmbeddedCluster) -> None:
    client = cluster_client(cluster)
    try:
        write_observation(client)  # type: ignore[arg-type]
    finally:
        client.close()


async def _until_online(app: Running, attempts: int = 100) -> pb.Observation:
    for _ in range(attempts):
        obs = await app.get()
        if {v.source for v in obs.views} == ONLINE:
            return obs
        await asyncio.sleep(0.05)
    raise AssertionError("the server never read the online store again")


def test_answers_stay_right_while_the_slot_is_resharded(
    own_cluster: EmbeddedCluster, data_dir: Path
) -> None:
    client = cluster_client(own_cluster)
    write_observation(client)  # type: ignore[arg-type]
    client.close()
    slot = key_slot(KEY)
    source = own_cluster.owner_of(KEY)
    target = next(node for node in own_cluster.nodes if node is not source)
    source_id, target_id = own_cluster.node_id(source), own_cluster.node_id(target)
    expected = list(np.float32(STORE_VALUES))
    answers: list[pb.Observation] = []
    states: set[tuple[float, float]] = set()

    async def read_until(stop: asyncio.Event, app: Running) -> None:
        while not stop.is_set():
            answers.append(await app.get())
            await asyncio.sleep(0)

    def on(node: ClusterNode, *command: Any) -> Any:
        with node.client() as node_client:
            return node_client.execute_command(*command)

    async def scenario() -> None:
        # The server starts from the source: its slot map says the source owns the slot.
        config = cluster_config(
            own_cluster, data_dir, first=own_cluster.nodes.index(source), cache_ttl_ms=0
        )
        async with running(config, ManualClock(wall_ns=NOW_NS)) as app:
            stop = asyncio.Event()
            reader = asyncio.create_task(read_until(stop, app))
            await asyncio.sleep(0.1)
            on(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            on(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            await asyncio.sleep(0.1)  # migrating, key still on the source: served there
            on(source, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", KEY)
            # The key left the source, the slot is still the source's: only ASK reaches it.
            with pytest.raises(AskError):
                on(source, "HGETALL", KEY)
            during_ask = await app.get()
            # PushState's transaction waits out the ASK window (no ASKING replay) ...
            push_during = asyncio.ensure_future(
                app.stub.PushState(
                    pb.PushStateRequest(
                        symbol="USDCOP",
                        position=-0.5,
                        event_time=_timestamp(datetime.fromtimestamp(NOW_NS / 1e9 - 10, UTC)),
                    )
                )
            )
            await asyncio.sleep(0.1)
            assert not push_during.done()
            # The target first, then the source, then the others (the cluster's own order).
            others = [n for n in own_cluster.nodes if n is not source and n is not target]
            for node in (target, source, *others):
                on(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
            # ... and lands on the new owner once the slot is moved.
            assert (await push_during).applied
            # The slot is the target's now: the source answers MOVED, the server follows.
            with pytest.raises(MovedError):
                on(source, "HGETALL", KEY)
            after_move = await app.get()
            await asyncio.sleep(0.1)
            stop.set()
            await reader
            assert own_cluster.owner_of(KEY) is target
            assert list(during_ask.values) == expected
            assert {v.source for v in during_ask.views} == ONLINE
            assert after_move.values[contract.FEATURE_INDEX["position"]] == -0.5
            assert list(after_move.values[:13]) == expected[:13]
            assert {v.source for v in after_move.views} == ONLINE
            states.update({tuple(expected[13:]), tuple(after_move.values[13:])})
            # PushState follows the move too: its transaction runs on the new owner.
            pushed = await app.stub.PushState(
                pb.PushStateRequest(
                    symbol="USDCOP",
                    position=0.25,
                    event_time=_timestamp(datetime.fromtimestamp(NOW_NS / 1e9, UTC)),
                )
            )
            assert pushed.applied
            last = await app.get()
            assert last.values[contract.FEATURE_INDEX["position"]] == 0.25
            assert {v.source for v in last.views} == ONLINE

    asyncio.run(scenario())
    assert len(answers) > 10
    for obs in answers:  # the state before the push during the move, or after it: nothing else
        assert list(obs.values[:13]) == expected[:13]
        assert tuple(obs.values[13:]) in states
        assert {v.source for v in obs.views} == ONLINE
