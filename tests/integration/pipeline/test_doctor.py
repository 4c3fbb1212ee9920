"""``python -m pipeline doctor`` against the real pieces, each broken for real.

One pipeline run (real Feast apply + materialize into a real redis-server) is shared; each test
works on its own copy of the data folder and breaks one thing: Redis stopped, a view expired
(time moved past its TTL, and its ``_ts`` field deleted), the registry re-applied from changed
definitions, the raw files removed. The gRPC server is the real one on port 0 with a manual
clock; the doctor runs in a thread while the server's event loop serves it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis

from canonical import contract
from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis, free_port
from online_store import feast_layout
from pipeline.doctor import Report, run_doctor
from pipeline.feast_repo import apply_definitions, open_feature_store
from pipeline.registry_file import read_registry, registry_path
from pipeline.run import run_pipeline
from pipeline.settings import PipelineSettings
from tests.integration.feast._support import (
    FRIDAY_CLOSE,
    HISTORY_DAYS,
    RepoCopy,
    address_of,
    copy_feature_repo,
    dump_redis,
)
from tests.integration.server.conftest import running, server_config

pytestmark = pytest.mark.integration

NOW = FRIDAY_CLOSE + timedelta(minutes=10)
"""Every view fresh: the last rows are 10 minutes old (state's TTL is 1 h)."""


@dataclass
class Stack:
    repo: RepoCopy
    redis: EmbeddedRedis

    def settings(self, **overrides: object) -> PipelineSettings:
        base = PipelineSettings(
            redis=address_of(self.redis), data_dir=self.repo.data_dir, repo_dir=self.repo.repo_dir
        )
        return base.with_overrides(**overrides)


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    repo = copy_feature_repo(tmp_path_factory.mktemp("doctor"))
    with EmbeddedRedis() as server:
        run_pipeline(
            repo.repo_dir, repo.data_dir, FRIDAY_CLOSE, address_of(server), days=HISTORY_DAYS
        )
        yield Stack(repo=repo, redis=server)


@pytest.fixture
def stack(materialized: Stack, tmp_path: Path) -> Iterator[Stack]:
    """The shared stack with the data folder and Redis contents restored after the test."""
    saved = tmp_path / "saved-data"
    shutil.copytree(materialized.repo.data_dir, saved)
    client = redis.Redis(host=materialized.redis.host, port=materialized.redis.port)
    dumped = {key: client.dump(key) for key in client.keys("*")}
    yield materialized
    shutil.rmtree(materialized.repo.data_dir)
    shutil.copytree(saved, materialized.repo.data_dir)
    client.flushall()
    for key, value in dumped.items():
        client.restore(key, 0, value)
    client.close()


def verdicts(report: Report) -> dict[str, str]:
    return {check.name: check.verdict for check in report.checks}


def detail(report: Report, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def doctor_with_server(
    stack: Stack, now: datetime, settings: PipelineSettings | None = None
) -> Report:
    config = server_config(stack.redis.port, stack.repo.data_dir)
    clock = ManualClock(wall_ns=int(pd.Timestamp(now).value))

    async def scenario() -> Report:
        async with running(config, clock) as server:
            return await asyncio.to_thread(
                run_doctor, settings or stack.settings(), f"127.0.0.1:{server.port}", now
            )

    return asyncio.run(scenario())


VIEW = "view USDCOP {}".format


def test_healthy_stack_passes_every_check(stack: Stack) -> None:
    report = doctor_with_server(stack, NOW)
    assert report.failed == ()
    assert set(verdicts(report).values()) == {"ok"}
    assert [c.fix for c in report.checks] == [""] * len(report.checks)
    assert list(verdicts(report)) == [
        "offline store (files)",
        "registry contract hash",
        "feature service",
        "last materialization",
        "redis",
        "pushes to record",
        "key USDCOP",
        *(VIEW(v.name) for v in contract.VIEWS),
        "server health",
        "server USDCOP",
        "served vs offline",
    ]
    assert "PING" in detail(report, "redis")
    assert "15 features in contract order" in detail(report, "feature service")
    assert detail(report, "server USDCOP") == "15 values; " + ", ".join(
        f"{v.name}=online_store/fresh" for v in contract.VIEWS
    )
    assert detail(report, VIEW("state_features")).startswith(
        f"event {FRIDAY_CLOSE.isoformat()}, age 0h10m00s"
    )
    assert report.seconds < 30  # a bound for a loaded CI machine, not a speed goal


def test_stopped_redis_fails_the_redis_check(stack: Stack) -> None:
    with EmbeddedRedis() as doomed:
        settings = stack.settings(redis=address_of(doomed))
        doomed.stop()
        report = run_doctor(settings, f"127.0.0.1:{free_port()}", NOW)
    found = verdicts(report)
    assert found["redis"] == "FAIL"
    assert "ConnectionError" in detail(report, "redis")
    assert "key USDCOP" not in found  # nothing to read from a Redis that is down
    assert found["server health"] == "FAIL"
    assert found["registry contract hash"] == "ok"
    fix = next(c.fix for c in report.checks if c.name == "redis")
    assert "FEAST_REDIS_HOST" in fix


def test_expired_view_fails_its_ttl_check_and_the_server_shows_the_fallback(stack: Stack) -> None:
    later = FRIDAY_CLOSE + timedelta(hours=2)  # past state's 1 h TTL, within the others' 24 h
    report = doctor_with_server(stack, later)
    found = verdicts(report)
    assert found[VIEW("state_features")] == "FAIL"
    assert "expired" in detail(report, VIEW("state_features"))
    assert found[VIEW("technical_features")] == "ok"
    assert found["server USDCOP"] == "warn"
    assert "state_features=fallback/expired(view_expired)" in detail(report, "server USDCOP")
    assert report.failed


def test_pushes_left_unrecorded_are_a_warning_once_older_than_the_bound(stack: Stack) -> None:
    from canonical.state_events import StateEvent, stream_key

    client = redis.Redis(host=stack.redis.host, port=stack.redis.port)
    stream = stream_key(contract.PROJECT)
    event = StateEvent("USDCOP", int(pd.Timestamp(NOW).value), 0.5, 0.5).fields()
    stamp_ms = int(NOW.timestamp() * 1000)
    client.xadd(stream, event, id=f"{stamp_ms - 20 * 60_000}-0")  # pushed 20 min before NOW
    client.xadd(stream, event, id=f"{stamp_ms - 60_000}-0")
    client.close()
    report = run_doctor(stack.settings(), f"127.0.0.1:{free_port()}", NOW)
    assert verdicts(report)["pushes to record"] == "warn"
    assert detail(report, "pushes to record").startswith("2 waiting in usdcop_trading:state_events")
    early = run_doctor(stack.settings(), f"127.0.0.1:{free_port()}", NOW - timedelta(minutes=10))
    assert verdicts(early)["pushes to record"] == "ok"


def test_deleted_view_timestamp_fails_that_view(stack: Stack) -> None:
    client = redis.Redis(host=stack.redis.host, port=stack.redis.port)
    client.hdel(feast_layout.entity_key("USDCOP", contract.PROJECT), "_ts:macro_features")
    client.close()
    report = doctor_with_server(stack, NOW)
    assert verdicts(report)[VIEW("macro_features")] == "FAIL"
    assert verdicts(report)[VIEW("technical_features")] == "ok"
    assert "macro_features=fallback" in detail(report, "server USDCOP")


def test_changed_registry_fails_the_contract_checks(stack: Stack, tmp_path: Path) -> None:
    # Another version's definitions: the same repository with a different contract tag and the
    # feature service's views in another order, applied for real into the same registry.
    changed = stack.repo.root / "feature_repo_other_version"
    shutil.rmtree(changed, ignore_errors=True)
    shutil.copytree(stack.repo.repo_dir, changed)
    source = (changed / "features.py").read_text()
    source = source.replace('"contract_hash": contract.CONTRACT_HASH', '"contract_hash": "0" * 64')
    source = source.replace(
        "features=[_VIEW_OBJECTS[v.name] for v in contract.VIEWS]",
        "features=[_VIEW_OBJECTS[v.name] for v in reversed(contract.VIEWS)]",
    )
    (changed / "features.py").write_text(source)
    apply_definitions(open_feature_store(changed, address_of(stack.redis)), changed)
    service = read_registry(registry_path(stack.repo.data_dir)).service()
    assert service is not None and service.tags["contract_hash"] == "0" * 64

    report = run_doctor(stack.settings(), f"127.0.0.1:{free_port()}", NOW)
    found = verdicts(report)
    assert found["registry contract hash"] == "FAIL"
    assert "registry 000000000000 != code" in detail(report, "registry contract hash")
    assert found["feature service"] == "FAIL"
    assert "same names, other order" in detail(report, "feature service")
    assert found["redis"] == "ok"

    # The L1b steps refuse this registry loudly (exit 3) and write nothing to Redis.
    before = dump_redis(stack.redis)
    env = {
        "FEAST_REDIS_HOST": stack.redis.host,
        "FEAST_REDIS_PORT": str(stack.redis.port),
        "USDCOP_FEATURE_REPO": str(stack.repo.repo_dir),
    }
    interval = ["--start", (NOW - timedelta(days=1)).isoformat(), "--end", NOW.isoformat()]
    for step in (["check-contract"], ["materialize", *interval]):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *step],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 3, done.stdout + done.stderr
        assert "contract hash in the registry" in done.stderr
        assert "Traceback" not in done.stderr
    assert dump_redis(stack.redis) == before


def test_removed_raw_files_fail_the_offline_store_check(stack: Stack) -> None:
    shutil.rmtree(stack.repo.data_dir / "raw")
    report = run_doctor(stack.settings(), f"127.0.0.1:{free_port()}", NOW)
    assert verdicts(report)["offline store (files)"] == "FAIL"
    assert "usdcop_5m" in detail(report, "offline store (files)")
    assert verdicts(report)["registry contract hash"] == "ok"


def test_cli_exit_code_and_json(stack: Stack) -> None:
    env = {
        "FEAST_REDIS_HOST": stack.redis.host,
        "FEAST_REDIS_PORT": str(stack.redis.port),
        "PATH": "/usr/bin:/bin",
    }
    base = [sys.executable, "-m", "pipeline", "doctor", "--repo-dir", str(stack.repo.repo_dir)]
    config = server_config(stack.redis.port, stack.repo.data_dir)
    clock = ManualClock(wall_ns=int(pd.Timestamp(NOW).value))

    async def scenario() -> tuple[
        subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]
    ]:
        async with running(config, clock) as server:
            args = [*base, "--target", f"127.0.0.1:{server.port}", "--now", NOW.isoformat()]
            healthy = await asyncio.to_thread(
                subprocess.run, args, env=env, capture_output=True, text=True, check=False
            )
            late = [*args[:-1], (NOW + timedelta(days=3)).isoformat(), "--json"]
            expired = await asyncio.to_thread(
                subprocess.run, late, env=env, capture_output=True, text=True, check=False
            )
            return healthy, expired

    healthy, expired = asyncio.run(scenario())
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    lines = healthy.stdout.splitlines()
    assert lines[-1].startswith("doctor: 13 checks, 0 failed, 0 warnings (")
    assert all(line.startswith("ok") for line in lines[:-1])
    assert expired.returncode == 1
    report = json.loads(expired.stdout)
    assert report["ok"] is False
    failed = {c["name"] for c in report["checks"] if c["verdict"] == "FAIL"}
    assert failed == {VIEW(v.name) for v in contract.VIEWS}
    assert all(c["fix"] for c in report["checks"] if c["verdict"] == "FAIL")


def test_registry_reader_agrees_with_feasts_own_parse(stack: Stack) -> None:
    from feast.protos.feast.core.Registry_pb2 import Registry

    path = registry_path(stack.repo.data_dir)
    proto = Registry.FromString(path.read_bytes())
    ours = read_registry(path)
    assert [(s.name, s.project, dict(s.tags)) for s in ours.services] == [
        (s.spec.name, s.spec.project, dict(s.spec.tags)) for s in proto.feature_services
    ]
    assert [s.features for s in ours.services] == [
        tuple(f"{p.feature_view_name}:{c.name}" for p in s.spec.features for c in p.feature_columns)
        for s in proto.feature_services
    ]
    assert [(v.name, v.materialized_until) for v in ours.views] == [
        (
            v.spec.name,
            max(i.end_time.ToDatetime(tzinfo=UTC) for i in v.meta.materialization_intervals),
        )
        for v in proto.feature_views
    ]
    assert {v.name for v in ours.views} == {v.name for v in contract.VIEWS}


def test_missing_data_folder_is_said_as_such(stack: Stack, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    report = run_doctor(stack.settings(data_dir=missing), f"127.0.0.1:{free_port()}", NOW)
    assert verdicts(report)["offline store (files)"] == "FAIL"
    assert detail(report, "offline store (files)") == (
        f"data folder {missing} does not exist (the server's fallback has no data either)"
    )


def test_a_server_reading_another_project_is_named(stack: Stack) -> None:
    config = server_config(stack.redis.port, stack.repo.data_dir, project="usdcop_typo")
    clock = ManualClock(wall_ns=int(pd.Timestamp(NOW).value))

    async def scenario() -> Report:
        async with running(config, clock) as server:
            return await asyncio.to_thread(
                run_doctor, stack.settings(), f"127.0.0.1:{server.port}", NOW
            )

    report = asyncio.run(scenario())
    assert verdicts(report)["key USDCOP"] == "ok"
    assert verdicts(report)["server USDCOP"] == "warn"
    assert detail(report, "server USDCOP") == (
        "15 values; the server finds no entry for USDCOP although Redis holds it under "
        f"Feast project {contract.PROJECT!r}"
    )
    fix = next(c.fix for c in report.checks if c.name == "server USDCOP")
    assert fix.startswith(f"set the server's USDCOP_FEAST_PROJECT to {contract.PROJECT!r}")
