"""Served-vs-offline parity in production: the server logs what it served (off the request
path, into Redis), the pipeline records it in Feast's feature-logging schema, and `pipeline
skew` compares each served value with the offline row of the same instant, bit for bit.

Real redis-server, a real `python -m server` (served log on, metrics on), Feast's real apply,
materialization and logging schema, the file offline store."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import redis

from canonical import contract
from canonical.served_log import decode_batch, stream_key
from client import ObservationClient
from devstack.embedded_redis import free_port
from devstack.server_process import ServerProcess
from offline_store.factory import open_store
from online_store import feast_layout
from pipeline.online_watch import feast_key
from pipeline.served_log import read_served_log
from pipeline.skew import skew_report
from pipeline.state_events import sync_state_events
from tests.integration.pipeline._live_stack import live_stack

pytestmark = pytest.mark.integration

RSI = feast_layout.feature_field(contract.TECHNICAL.name, "rsi_9")


def _wait_for_entries(client: redis.Redis, count: int) -> None:
    """Until the stream holds ``count`` answers (an entry holds a batch of them)."""
    deadline = time.monotonic() + 10
    while True:
        entries = client.xrange(stream_key(contract.PROJECT), "-", "+")
        if sum(len(decode_batch(fields)) for _, fields in entries) >= count:
            return
        assert time.monotonic() < deadline, "the served log did not reach Redis"
        time.sleep(0.05)


@pytest.mark.timeout(300)
def test_served_answers_are_logged_in_feasts_schema_and_skew_finds_only_real_differences(
    tmp_path, fresh_redis
) -> None:
    stack = live_stack(tmp_path, fresh_redis)
    repo, address, result, feed = stack.repo, stack.address, stack.result, stack.feed
    client = redis.Redis(host=fresh_redis.host, port=fresh_redis.port)
    metrics_port = free_port()
    config = stack.server_config(
        fresh_redis,
        metrics_port=metrics_port,
    )
    started = datetime.now(UTC)
    try:
        with ServerProcess(config) as server, ObservationClient(server.target) as agent:
            server.wait_serving()
            served = [agent.get("USDCOP") for _ in range(3)]  # the first loads, then the cache
            assert agent.push_state("USDCOP", 0.5, datetime.now(UTC)) is True
            served.append(agent.get("USDCOP"))
            with contextlib.closing(agent.watch(["USDCOP"])) as stream:
                served.append(next(stream))  # a watch message is logged like an answer
            _wait_for_entries(client, 5)
            # Behind the pipeline's back: a technical value in Redis that training never saw.
            key = feast_key("USDCOP", contract.PROJECT)
            client.hset(key, RSI, feast_layout.encode_float32(12.5))
            tampered = agent.get("USDCOP")
            assert tampered.by_name()["rsi_9"] == np.float32(12.5)
            _wait_for_entries(client, 6)
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as page:
                text = page.read().decode()
            assert 'usdcop_served_log_entries_total{result="written"} 6.0' in text
            assert 'usdcop_served_log_entries_total{result="dropped"} 0.0' in text
    finally:
        client.close()
    ended = datetime.now(UTC)

    sync_state_events(open_store(repo.data_dir), address, created=ended)
    feed.step(ended)  # the live tick records the served log (no new slot needed)
    logged = read_served_log(repo.data_dir, started, ended)
    assert len(logged) == 6
    assert logged["from_cache"].tolist()[:3] == [False, True, True]
    # Feast's own schema for the feature service, column for column, then ours.
    from feast.feature_logging import FeatureServiceLoggingSource

    service = result.store.get_feature_service(contract.FEATURE_SERVICE)
    feast_schema = FeatureServiceLoggingSource(service, contract.PROJECT).get_schema(
        result.store.registry
    )
    assert list(logged.columns)[: len(feast_schema.names)] == feast_schema.names
    first = logged.iloc[0]
    view_of = {name: v.name for v in contract.VIEWS for name in v.features}
    for i, name in enumerate(contract.FEATURE_NAMES):
        assert first[f"{view_of[name]}__{name}"] == served[0].values[i]

    report = skew_report(open_store(repo.data_dir), started, ended)
    assert report.rows == 6 and report.from_store == 6
    by_feature = {f.feature: f for f in report.features}
    assert by_feature["rsi_9"].compared == 6
    assert by_feature["rsi_9"].mismatched_offline == 1  # the tampered answer, only
    assert by_feature["rsi_9"].mismatched_recomputed == 1
    others = [f for f in report.features if f.feature != "rsi_9"]
    assert sum(f.mismatched_offline + f.mismatched_recomputed for f in others) == 0
    assert report.compared == 6 * contract.N_FEATURES
    assert report.missing_offline == {v.name: 0 for v in contract.VIEWS}

    # The command: exit 1 on skew, JSON, and the figures in the metrics textfile.
    env = {
        **os.environ,
        "FEAST_REDIS_HOST": fresh_redis.host,
        "FEAST_REDIS_PORT": str(fresh_redis.port),
        "USDCOP_METRICS_TEXTFILE_DIR": str(tmp_path / "textfile"),
    }
    command = [sys.executable, "-m", "pipeline", "skew", "--repo-dir", str(repo.repo_dir)]
    window = ["--start", started.isoformat(), "--end", ended.isoformat()]
    done = subprocess.run(
        [*command, *window, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["mismatched"] == 2
    before = started - timedelta(hours=1)
    clean = subprocess.run(
        [*command, "--start", before.isoformat(), "--end", started.isoformat()],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stderr
    assert "0 served answers" in clean.stdout

    # The doctor's check over the last hour says the same.
    from pipeline.doctor import run_doctor
    from pipeline.settings import PipelineSettings

    settings = PipelineSettings(redis=address, data_dir=repo.data_dir, repo_dir=repo.repo_dir)
    doctor = run_doctor(settings, f"127.0.0.1:{free_port()}", ended)
    check = next(c for c in doctor.checks if c.name == "served vs offline")
    assert check.verdict == "FAIL"
    assert check.detail.startswith(f"2 of {6 * contract.N_FEATURES} served values differ")
    assert check.detail.endswith(": rsi_9")
