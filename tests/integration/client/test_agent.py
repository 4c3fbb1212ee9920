"""The inference agent against a real server and Redis: observe -> act -> push, and holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis

from agent.__main__ import DEFAULT_POLICY
from agent.__main__ import main as agent_main
from agent.loop import Agent, AgentSettings
from agent.policy import LinearPolicy, PolicyError, load_policy
from agent.train import TrainingSetEnv, episode_return
from canonical.contract import FEATURE_INDEX, N_FEATURES
from client import ObservationClient
from devstack.embedded_redis import EmbeddedRedis
from online_store import feast_layout
from tests.integration.client.conftest import NOW, PROJECT, ServerThread

pytestmark = pytest.mark.integration


def _policy(bias: float) -> LinearPolicy:
    return LinearPolicy(np.zeros(N_FEATURES), bias, np.zeros(N_FEATURES), np.ones(N_FEATURES))


def test_a_step_pushes_the_policys_position_and_the_server_serves_it(
    real_server: ServerThread, tmp_path: Path
) -> None:
    log = tmp_path / "decisions.jsonl"
    policy = _policy(0.5)  # tanh(0.5) whatever the observation
    with ObservationClient(real_server.target) as client:
        decision = Agent(client, policy, AgentSettings(decision_log=log), lambda: NOW).step()
        served = client.get("USDCOP")
    assert decision.action == "push" and decision.position == pytest.approx(np.tanh(0.5))
    state = next(v for v in served.views if v.view == "state_features")
    assert state.source == "online_store" and state.event_time == NOW
    assert served.values[FEATURE_INDEX["position"]] == np.float32(np.tanh(0.5))
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["action"] for entry in logged] == ["push"]
    assert set(logged[0]["sources"].values()) == {"online_store"}
    assert logged[0]["observe_ms"] > 0 and logged[0]["push_ms"] > 0


def test_the_agent_holds_and_says_why_when_views_come_from_an_old_fallback(
    real_server: ServerThread, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    key = feast_layout.entity_key("USDCOP", PROJECT)
    store = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        store.delete(key)
        with ObservationClient(real_server.target) as client:
            settings = AgentSettings(max_fallback_age_s=60.0, decision_log=tmp_path / "d.jsonl")
            decision = Agent(client, _policy(0.9), settings, lambda: NOW).step()
        assert decision.action == "hold" and decision.position is None
        assert "fallback" in decision.reason and "bound 60 s" in decision.reason
        assert store.exists(key) == 0  # nothing was pushed
    finally:
        store.close()


def test_an_unreachable_server_is_a_hold_not_a_crash(tmp_path: Path) -> None:
    from devstack.embedded_redis import free_port

    with ObservationClient(f"127.0.0.1:{free_port()}", timeout_s=0.3) as client:
        decision = Agent(client, _policy(0.1), AgentSettings(), lambda: NOW).step()
    assert decision.action == "hold" and decision.reason.startswith("no observation")


def test_the_example_policy_loads_and_acts_within_bounds() -> None:
    policy = load_policy(DEFAULT_POLICY)
    rows = np.random.default_rng(1).normal(size=(50, N_FEATURES)).astype(np.float32)
    actions = [policy.act(row) for row in rows]
    assert all(-1.0 <= a <= 1.0 for a in actions) and len(set(actions)) > 1


def test_a_bad_policy_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.zeros(3))
    with pytest.raises(PolicyError, match="not a policy file"):
        load_policy(bad)
    assert agent_main(["run", "--policy", str(bad), "--once"]) == 1
    assert capsys.readouterr().err.strip().startswith("error: ")


def test_the_environment_rewards_the_next_bars_return() -> None:
    values = np.zeros((4, N_FEATURES), dtype=np.float32)
    values[:, FEATURE_INDEX["log_ret_5m"]] = [0.0, 0.01, -0.02, 0.03]
    env = TrainingSetEnv(values, cost=0.0)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (N_FEATURES,) and observation.dtype == np.float32
    observation, reward, done, _, _ = env.step(np.array([1.0], dtype=np.float32))
    assert reward == pytest.approx(np.float32(0.01)) and not done
    assert observation[FEATURE_INDEX["position"]] == 1.0  # the agent's own position
    _, reward, _, _, _ = env.step(np.array([-0.5], dtype=np.float32))
    assert reward == pytest.approx(-0.5 * np.float32(-0.02))
    assert episode_return(env, _policy(20.0)) == pytest.approx(
        float(np.float32(0.01) + np.float32(-0.02) + np.float32(0.03)), rel=1e-4
    )


def test_watch_mode_decides_on_each_new_bar_not_on_its_own_pushes_and_keeps_metrics(
    real_server: ServerThread, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """``run_on_changes``: a decision for the first observation, none for the change its own
    push causes, one for a new bar (the technical view's event time moved); the decision log
    is a folder of daily files and the metrics textfile counts the decisions."""
    from datetime import timedelta

    from tests.integration.client.conftest import NOW_NS

    moments = iter([NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)])
    key = feast_layout.entity_key("USDCOP", PROJECT)
    store = redis.Redis(host=redis_server.host, port=redis_server.port)
    changes: list[int] = []

    def stop() -> bool:  # called after each change the stream shows
        changes.append(1)
        bar = feast_layout.encode_timestamp(NOW_NS - 60 * 10**9)
        if len(changes) == 2:  # the change caused by the first push: a new bar, half landed
            store.hset(key, feast_layout.ts_field("technical_features"), bar)
        if len(changes) == 3:  # ... and its macro row too: now a decision
            store.hset(key, feast_layout.ts_field("macro_features"), bar)
        return len(changes) == 4

    settings = AgentSettings(decision_log=tmp_path / "decisions", metrics_dir=tmp_path / "metrics")
    try:
        with ObservationClient(real_server.target) as client:
            Agent(client, _policy(0.25), settings, lambda: next(moments)).run_on_changes(stop=stop)
    finally:
        store.close()
    (daily,) = (tmp_path / "decisions").iterdir()
    assert daily.name == f"decisions-{NOW.date().isoformat()}.jsonl"
    logged = [json.loads(line) for line in daily.read_text().splitlines()]
    assert [entry["action"] for entry in logged] == ["push", "push"]
    text = (tmp_path / "metrics" / "usdcop_agent.prom").read_text()
    assert 'usdcop_agent_decisions{action="push"} 2.0' in text
    assert 'usdcop_agent_decisions{action="hold"} 0.0' in text
    from prometheus_client.parser import text_string_to_metric_families

    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["usdcop_agent_last_push_timestamp_seconds"] == NOW.timestamp() + 2
    assert 0 < samples["usdcop_agent_push_seconds"] < 10
