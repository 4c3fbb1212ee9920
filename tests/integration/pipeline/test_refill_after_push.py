"""The live feed refills an online store that lost its rows even when an agent's PushState wrote
the state view back first: every view's presence is checked, not the key's existence.

Real redis-server, a real `python -m server` taking the PushState, Feast's real materialization;
the feed's clock is injected (a Sunday), the push carries the wall clock as the server requires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from canonical import contract
from client import ObservationClient
from devstack.server_process import ServerProcess
from pipeline.live import LiveFeed
from pipeline.online_watch import OnlineStoreWatch, feast_key
from pipeline.run import run_pipeline
from server.config import ServerConfig
from tests.integration.feast._support import (
    HISTORY_DAYS,
    SUNDAY_NOON,
    address_of,
    copy_feature_repo,
)

pytestmark = pytest.mark.integration

NOW = SUNDAY_NOON + timedelta(minutes=2, seconds=30)
TS_FIELDS = [b"_ts:" + view.name.encode() for view in contract.VIEWS]


@pytest.mark.timeout(240)
def test_flushall_then_immediate_push_still_refills_every_view(tmp_path, fresh_redis) -> None:
    repo = copy_feature_repo(tmp_path)
    address = address_of(fresh_redis)
    result = run_pipeline(repo.repo_dir, repo.data_dir, NOW, address, days=HISTORY_DAYS)
    watch = OnlineStoreWatch(address, contract.PROJECT, ("USDCOP",))
    feed = LiveFeed(repo.data_dir, result.store, seed=7, catchup_bars=12, store_lost=watch.lost)
    client = redis.Redis(host=fresh_redis.host, port=fresh_redis.port)
    key = feast_key("USDCOP", contract.PROJECT)
    try:
        feed.step(NOW)  # catch-up: every view fresh at NOW
        assert None not in client.hmget(key, TS_FIELDS)
        assert feed.step(NOW + timedelta(seconds=5)).refilled is False

        config = ServerConfig(
            redis_host=fresh_redis.host,
            redis_port=fresh_redis.port,
            port=0,
            data_dir=repo.data_dir,
            symbols=("USDCOP",),
            redis_timeout_ms=1000.0,
        )
        with ServerProcess(config) as server:
            server.wait_serving()
            client.flushall()
            with ObservationClient(server.target, timeout_s=10.0) as agent:
                assert agent.push_state("USDCOP", 0.5, datetime.now(UTC)) is True

        # The key exists again (the state view alone): the old check saw nothing to refill.
        technical, macro, state = client.hmget(key, TS_FIELDS)
        assert client.exists(key) and state is not None
        assert technical is None and macro is None
        assert [g.view for g in watch.gaps(NOW)] == [contract.TECHNICAL.name, contract.MACRO.name]

        step = feed.step(NOW + timedelta(seconds=10))  # the next tick, no new slot
        assert step.refilled is True
        assert step.bar_opens == ()
        assert {m.view for m in step.materialized if m.ran} >= {
            contract.TECHNICAL.name,
            contract.MACRO.name,
        }
        assert None not in client.hmget(key, TS_FIELDS)
        assert watch.gaps(NOW + timedelta(seconds=10)) == []
        assert feed.step(NOW + timedelta(seconds=15)).refilled is False
    finally:
        client.close()
        watch.close()


def test_an_expired_view_is_reported_once_per_stored_event_time(fresh_redis) -> None:
    """A view older than its TTL asks for one refill; if the refill cannot make it younger,
    the next ticks do not ask again (no materialization loop), until its event time changes."""
    address = address_of(fresh_redis)
    watch = OnlineStoreWatch(address, contract.PROJECT, ("USDCOP",))
    client = redis.Redis(host=fresh_redis.host, port=fresh_redis.port)
    key = feast_key("USDCOP", contract.PROJECT)
    try:
        assert watch.lost(NOW) is True  # nothing at all
        event = NOW - timedelta(minutes=10)
        for field in TS_FIELDS:
            client.hset(key, field, _timestamp(event))
        assert watch.lost(NOW) is False  # every view within its TTL
        later = NOW + timedelta(hours=1)  # state (TTL 1 h) has expired
        assert [g.view for g in watch.gaps(later)] == [contract.STATE.name]
        assert watch.lost(later) is True
        assert watch.lost(later + timedelta(seconds=5)) is False  # same stored time: once
        client.hset(key, TS_FIELDS[2], _timestamp(event + timedelta(seconds=1)))
        assert watch.lost(later + timedelta(seconds=10)) is True  # a new stored time
    finally:
        client.close()
        watch.close()


def _timestamp(moment: datetime) -> bytes:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp.SerializeToString()
