"""Real Airflow over the real pipeline: ``airflow dags test`` of L0 -> L1 -> L1b.

Airflow runs from its own virtualenv (``AIRFLOW_BIN``, set by ``make test-airflow``) with an
AIRFLOW_HOME in a temporary folder (SQLite); every task runs ``python -m pipeline <step>`` in the
project's .venv against a private copy of feature_repo/ and a real embedded redis-server. The
served side is the real gRPC server on port 0 with its clock set inside the data interval.

The tests share one Airflow home and one Redis and run in file order: the chain, its re-run,
then a run whose L1 is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from usdcop.observation.v1 import observation_pb2 as pb

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from market_data import files
from server import feast_layout
from server.clock import ManualClock
from tests.integration.feast._support import RepoCopy, copy_feature_repo, dump_redis
from tests.integration.server.conftest import running, server_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

PROJECT = Path(__file__).resolve().parents[2]
LOGICAL_DATE = "2025-12-12T14:15:00+00:00"
"""A Friday in session: the run's data interval is [14:00, 14:15)."""
INTERVAL_START = datetime(2025, 12, 12, 14, 0, tzinfo=UTC)
INTERVAL_END = datetime(2025, 12, 12, 14, 15, tzinfo=UTC)
INSIDE = datetime(2025, 12, 12, 14, 14, tzinfo=UTC)
NO_L1_DATE = "2025-12-15T14:15:00+00:00"
"""The next Monday: no L1 run exists for it."""
SENSOR_TIMEOUT_S = 12
DAG_IDS = ("v3.l0_ingest", "v3.l1_features", "v3.l1b_feast_materialize")


@dataclass
class Stack:
    repo: RepoCopy
    redis: EmbeddedRedis
    env: dict[str, str]
    logs: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def airflow(self, *args: str, log: str) -> subprocess.CompletedProcess[str]:
        airflow_bin = os.environ.get("AIRFLOW_BIN", str(PROJECT / ".venv-airflow/bin/airflow"))
        started = time.perf_counter()
        done = subprocess.run(
            [airflow_bin, *args],
            env=self.env,
            cwd=self.logs,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        self.seconds[log] = time.perf_counter() - started
        (self.logs / f"{log}.log").write_text(done.stdout + done.stderr)
        return done

    def dags_test(
        self, dag_id: str, logical_date: str, log: str
    ) -> subprocess.CompletedProcess[str]:
        return self.airflow("dags", "test", dag_id, logical_date, log=log)


def _require_ok(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert done.returncode == 0, f"{what} failed:\n{(done.stdout + done.stderr)[-4000:]}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("airflow-stack")
    repo = copy_feature_repo(root)
    home = root / "airflow-home"
    home.mkdir()
    with EmbeddedRedis() as redis_server:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "FEAST_", "USDCOP_"))
        }
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT / "airflow" / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            FEAST_REDIS_HOST=redis_server.host,
            FEAST_REDIS_PORT=str(redis_server.port),
            USDCOP_PROJECT_PYTHON=sys.executable,
            USDCOP_FEATURE_REPO=str(repo.repo_dir),
            USDCOP_HISTORY_DAYS="10",
            USDCOP_SENSOR_POKE_S="2",
            USDCOP_L1_SENSOR_TIMEOUT_S=str(SENSOR_TIMEOUT_S),
            USDCOP_TASK_RETRIES="0",
        )
        built = Stack(repo=repo, redis=redis_server, env=env, logs=root)
        _require_ok(built.airflow("db", "migrate", log="db-migrate"), "airflow db migrate")
        # The deploy step: the registry is applied with the code, not by a DAG.
        deploy = subprocess.run(
            [sys.executable, "-m", "pipeline", "apply", "--repo-dir", str(repo.repo_dir)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        _require_ok(deploy, "pipeline apply")
        yield built
        print(
            "\nairflow timings (s):", json.dumps({k: round(v, 1) for k, v in built.seconds.items()})
        )


def test_dag_folder_parses_without_import_errors(stack: Stack) -> None:
    _require_ok(stack.airflow("dags", "reserialize", log="reserialize"), "airflow dags reserialize")
    errors = stack.airflow("dags", "list-import-errors", "-o", "json", log="import-errors")
    _require_ok(errors, "list-import-errors")
    assert json.loads(errors.stdout.strip().splitlines()[-1] or "[]") == []
    listed = stack.airflow("dags", "list", "-o", "json", log="dags-list")
    _require_ok(listed, "airflow dags list")
    dags = {row["dag_id"] for row in json.loads(listed.stdout.strip().splitlines()[-1])}
    assert set(DAG_IDS) <= dags


def _interval_rows(repo: RepoCopy, view: str) -> pd.DataFrame:
    table = pd.read_parquet(repo.data_dir / "offline" / f"{view}.parquet")
    inside = (table["event_timestamp"] >= INTERVAL_START) & (
        table["event_timestamp"] < INTERVAL_END
    )
    return table[inside & (table["symbol"] == "USDCOP")]


def test_chain_materializes_the_interval_and_the_server_serves_it_fresh(stack: Stack) -> None:
    for dag_id in DAG_IDS:
        _require_ok(stack.dags_test(dag_id, LOGICAL_DATE, log=f"first-{dag_id}"), dag_id)

    key = feast_layout.entity_key("USDCOP", contract.PROJECT)
    stored = dump_redis(stack.redis)
    assert list(stored) == [key]
    expected_values: dict[str, float] = {}
    for view in contract.VIEWS:
        rows = _interval_rows(stack.repo, view.name)
        assert len(rows) == 3  # bars closing 14:00, 14:05, 14:10: [start, end) of the interval
        latest = rows.sort_values("event_timestamp").iloc[-1]
        event_ns = int(pd.Timestamp(latest["event_timestamp"]).value)
        assert feast_layout.decode_timestamp_ns(stored[key][feast_layout.ts_field(view.name)]) == (
            event_ns
        )
        expected_values.update({name: float(latest[name]) for name in view.features})

    raw_dir = stack.repo.data_dir
    config = server_config(stack.redis.port, raw_dir)
    clock = ManualClock(wall_ns=int(pd.Timestamp(INSIDE).value))

    async def ask() -> pb.Observation:
        async with running(config, clock) as server:
            return await server.get("USDCOP")

    observation = asyncio.run(ask())
    assert [v.view for v in observation.views] == [v.name for v in contract.VIEWS]
    for status in observation.views:
        assert status.source == pb.VALUE_SOURCE_ONLINE_STORE, status
        assert status.freshness == pb.FRESHNESS_FRESH, status
        assert status.event_time.ToDatetime(tzinfo=UTC) == datetime(
            2025, 12, 12, 14, 10, tzinfo=UTC
        )
    assert list(observation.values) == [expected_values[f.name] for f in contract.FEATURES]
    assert files.bars_path(raw_dir).exists()


def test_second_run_changes_nothing(stack: Stack) -> None:
    before_redis = dump_redis(stack.redis)
    data = stack.repo.data_dir
    before_files = {p: p.read_bytes() for p in sorted((data / "raw").glob("*"))}
    before_files |= {p: p.read_bytes() for p in sorted((data / "offline").glob("*"))}
    for dag_id in DAG_IDS:
        _require_ok(stack.dags_test(dag_id, LOGICAL_DATE, log=f"second-{dag_id}"), dag_id)
    assert dump_redis(stack.redis) == before_redis
    assert {p: p.read_bytes() for p in before_files} == before_files
    assert "L0 [2025-12-12T14:00:00+00:00, 2025-12-12T14:15:00+00:00): 0 bars appended" in (
        (stack.logs / "second-v3.l0_ingest.log").read_text()
    )


def test_runbook_airflow_commands(stack: Stack) -> None:
    """The ```sh blocks of docs/RUNBOOK.md, run as written against this Airflow."""
    text = (PROJECT / "docs" / "RUNBOOK.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert any(c.startswith("airflow backfill create") for c in commands)
    env = dict(stack.env, START=INTERVAL_START.isoformat(), END=INTERVAL_START.isoformat())
    airflow_bin = Path(os.environ.get("AIRFLOW_BIN", str(PROJECT / ".venv-airflow/bin/airflow")))
    env["PATH"] = f"{airflow_bin.parent}:{env.get('PATH', '')}"
    outputs = {}
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        outputs[command] = done.stdout
    runs = outputs["airflow dags list-runs v3.l1b_feast_materialize"]
    # The backfill's run of the interval, queued for a scheduler, next to the dags test runs.
    assert "backfill__2025-12-12T14:15:00+00:00" in runs and "queued" in runs


def test_l1b_without_its_l1_times_out_in_the_sensor_and_writes_nothing(stack: Stack) -> None:
    before = dump_redis(stack.redis)
    started = time.perf_counter()
    done = stack.dags_test("v3.l1b_feast_materialize", NO_L1_DATE, log="no-l1")
    output = done.stdout + done.stderr
    assert time.perf_counter() - started >= SENSOR_TIMEOUT_S
    assert "AirflowSensorTimeout" in output or "timed out" in output.lower(), output[-3000:]
    assert "wait_for_l1" in output
    assert "L1b [" not in output  # the materialize step never ran
    assert "state=failed" in output or "failed" in output.lower()
    assert dump_redis(stack.redis) == before
