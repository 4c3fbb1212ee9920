"""The agent's pushed position is the state's truth: recorded offline, carried by every later
materialization (the live feed's tick and an L1 + L1b run), and in training sets.

Real redis-server, a real `python -m server` taking the PushStates, Feast's real apply and
materialization, the file offline store. The pipeline runs at the wall clock (a push must carry
a time near it); the feed then steps minutes ahead, so the server allows that much skew."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import redis

from canonical import contract
from canonical.offline_tables import offline_table_path
from canonical.state_events import stream_key
from client import ObservationClient
from devstack.server_process import ServerProcess
from market_data import files
from market_data.generator import next_bars
from offline_store.factory import open_store
from online_store import feast_layout
from pipeline.interval import Interval, build_l1, materialize_interval
from pipeline.live import BAR, due_bar_opens
from pipeline.online_watch import feast_key
from pipeline.settings import PipelineSettings
from pipeline.training_set import build_training_set
from tests.integration.feast._support import address_of
from tests.integration.pipeline._live_stack import live_stack

pytestmark = pytest.mark.integration

POSITION = feast_layout.feature_field(contract.STATE.name, "position")
STATE_TS = feast_layout.ts_field(contract.STATE.name)


def _stored(client: redis.Redis, key: bytes) -> tuple[float, datetime]:
    """The state view's position and event time as Redis holds them."""
    raw_position, raw_ts = client.hmget(key, [POSITION, STATE_TS])
    event_ns = feast_layout.decode_timestamp_ns(raw_ts)
    assert event_ns is not None
    position = feast_layout.decode_value(raw_position)
    assert position is not None
    return position, datetime.fromtimestamp(event_ns / 1e9, UTC)


def _served(agent: ObservationClient) -> tuple[float, str]:
    result = agent.get("USDCOP")
    state = next(v for v in result.views if v.view == contract.STATE.name)
    return float(result.by_name()["position"]), state.source


@pytest.mark.timeout(300)
def test_a_push_survives_the_live_tick_and_an_l1b_run_and_reaches_training_sets(
    tmp_path, fresh_redis
) -> None:
    stack = live_stack(tmp_path, fresh_redis)
    repo, address, result, feed = stack.repo, stack.address, stack.result, stack.feed
    client = redis.Redis(host=fresh_redis.host, port=fresh_redis.port)
    key = feast_key("USDCOP", contract.PROJECT)
    config = stack.server_config(
        fresh_redis,
        max_clock_skew_s=3600.0,  # the feed steps up to 30 min ahead of the wall clock
    )
    try:
        with ServerProcess(config) as server, ObservationClient(server.target) as agent:
            server.wait_serving()
            pushed_at = datetime.now(UTC)
            assert agent.push_state("USDCOP", 0.5, pushed_at) is True
            assert client.xlen(stream_key(contract.PROJECT)) == 1

            # The live feed's next tick: new bars after the push, materialized.
            tick = feed.step(pushed_at + 2 * BAR)
            assert tick.pushes.recorded == 1 and tick.bar_opens
            assert client.xlen(stream_key(contract.PROJECT)) == 0  # drained once recorded
            position, stored_at = _stored(client, key)
            assert stored_at > pushed_at  # a materialized row, newer than the push ...
            assert position == 0.5  # ... carrying the pushed position, not the rule
            assert _served(agent) == (0.5, "online_store")

            # A second push, then L0 (a new bar) -> L1 -> L1b, as the DAGs run them.
            second_at = pushed_at + 2 * BAR + timedelta(seconds=30)
            assert agent.push_state("USDCOP", -0.25, second_at) is True
            bars = files.read_bars(files.bars_path(repo.data_dir))
            last_open = pd.Timestamp(bars["time"].max()).to_pydatetime()
            opens = due_bar_opens(last_open, second_at + 2 * BAR, 1)
            assert opens and opens[0] + BAR > second_at
            bars = pd.concat([bars, next_bars(bars, opens, 7)], ignore_index=True)
            files.write_bars(files.bars_path(repo.data_dir), bars.sort_values(["symbol", "time"]))
            settings = PipelineSettings().with_overrides(
                repo_dir=repo.repo_dir, data_dir=repo.data_dir
            )
            interval = Interval(opens[0] - 5 * BAR, opens[0] + 2 * BAR)  # holds opens[0] + BAR
            assert build_l1(settings, interval, address).added > 0
            materialize_interval(settings, address, interval)
            position, stored_at = _stored(client, key)
            assert stored_at == opens[0] + BAR  # L1b wrote the new bar's row ...
            assert position == np.float32(-0.25)  # ... with the agent's latest position
            assert _served(agent) == (np.float32(-0.25), "online_store")
    finally:
        client.close()

    # Offline: both events recorded once; rows derived from them, earlier rows marked synthetic.
    events = open_store(repo.data_dir).read_events()
    assert events["position"].tolist() == [0.5, np.float32(-0.25)]
    state = pd.read_parquet(offline_table_path(repo.data_dir, contract.STATE.name))
    state = state[state["symbol"] == "USDCOP"]
    after_first = state["event_timestamp"] >= pd.Timestamp(pushed_at)
    after_second = state["event_timestamp"] >= pd.Timestamp(second_at)
    assert after_first.any() and (~after_first).any() and after_second.any()
    assert state.loc[after_first & ~after_second, "position"].eq(0.5).all()
    assert state.loc[after_second, "position"].eq(np.float32(-0.25)).all()
    assert not state.loc[after_first, "synthetic"].any()
    assert state.loc[~after_first, "synthetic"].all()
    assert set(state.loc[~after_first, "position"].unique()) <= {-1.0, 0.0, 1.0}

    # A training set (Feast's point-in-time join) on a grid after each push shows them.
    first_row = state.loc[after_first, "event_timestamp"].min().to_pydatetime()
    training = build_training_set(
        result.store, ["USDCOP"], [first_row, opens[0] + BAR, first_row - BAR]
    )
    column = training.values[:, contract.FEATURE_INDEX["position"]]
    by_time = dict(zip(training.timestamps_ns.tolist(), column.tolist(), strict=True))
    assert by_time[pd.Timestamp(first_row).value] == 0.5
    assert by_time[pd.Timestamp(opens[0] + BAR).value] == np.float32(-0.25)
    assert by_time[pd.Timestamp(first_row - BAR).value] in (-1.0, 0.0, 1.0)


def test_a_repeated_or_malformed_stream_entry_is_recorded_once_or_dropped(
    tmp_path, fresh_redis
) -> None:
    """Idempotent on (symbol, event time); an entry that does not decode is counted, dropped."""
    from canonical.state_events import StateEvent
    from pipeline.state_events import sync_state_events

    address = address_of(fresh_redis)
    client = redis.Redis(host=fresh_redis.host, port=fresh_redis.port)
    stream = stream_key(contract.PROJECT)
    event = StateEvent("USDCOP", 1_767_000_000_000_000_000, 0.5, 0.25)
    now = datetime.now(UTC)
    try:
        client.xadd(stream, event.fields())
        client.xadd(stream, event.fields())
        client.xadd(stream, {b"symbol": b"USDCOP", b"position": b"nan"})
        client.xadd(stream, dataclasses.replace(event, position=2.0).fields())
        done = sync_state_events(open_store(tmp_path), address, created=now)
        assert (done.drained, done.recorded, done.malformed) == (4, 1, 2)
        assert client.xlen(stream) == 0
        client.xadd(stream, event.fields())
        again = sync_state_events(open_store(tmp_path), address, created=now)
        assert (again.drained, again.recorded) == (1, 0)
    finally:
        client.close()
    events = open_store(tmp_path).read_events()
    assert len(events) == 1
    assert events["event_timestamp"].iloc[0].value == event.event_time_ns
    assert events["position"].iloc[0] == np.float32(0.5)


@pytest.mark.timeout(300)
def test_the_whole_chain_l0_l1_l1b_agent_push_offline_event_training_set(
    tmp_path, fresh_redis
) -> None:
    """The guide's chain with its L5: the pipeline materializes, the agent (the shipped example
    policy) observes the served features and pushes its position, the next tick records it
    offline and materializes it back, and a training set shows the position the agent chose."""
    from agent.__main__ import DEFAULT_POLICY
    from agent.loop import Agent, AgentSettings
    from agent.policy import load_policy

    stack = live_stack(tmp_path, fresh_redis)
    repo, result, feed = stack.repo, stack.result, stack.feed
    config = stack.server_config(
        fresh_redis,
        max_clock_skew_s=3600.0,
    )
    policy = load_policy(DEFAULT_POLICY)
    with ServerProcess(config) as server, ObservationClient(server.target) as client:
        server.wait_serving()
        decision = Agent(client, policy, AgentSettings()).step()
        assert decision.action == "push", decision.reason
        assert set(decision.sources.values()) == {"online_store"}
        assert decision.position is not None
        chosen = np.float32(decision.position)
        decided_at = datetime.fromisoformat(decision.decided_at)
        tick = feed.step(decided_at + 2 * BAR)
        assert tick.pushes.recorded == 1
        assert _served(client) == (chosen, "online_store")
    events = open_store(repo.data_dir).read_events()
    assert events["position"].tolist() == [chosen]
    state = pd.read_parquet(offline_table_path(repo.data_dir, contract.STATE.name))
    rows = state[(state["symbol"] == "USDCOP") & (state["event_timestamp"] >= decided_at)]
    grid = [t.to_pydatetime() for t in rows["event_timestamp"]]
    training = build_training_set(result.store, ["USDCOP"], grid)
    assert len(training.values) == len(grid) > 0
    assert np.all(training.values[:, contract.FEATURE_INDEX["position"]] == chosen)
