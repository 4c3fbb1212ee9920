"""Real Airflow over the real pipeline: ``airflow dags test`` of L0 -> L1 -> L1b.

Airflow runs from its own virtualenv (``AIRFLOW_BIN``, set by ``make test-airflow``) with an
AIRFLOW_HOME in a temporary folder (SQLite); every task runs ``python -m pipeline <step>`` in the
project's .venv against a private copy of feature_repo/ and a real embedded redis-server. The
served side is the real gRPC server on port 0 with its clock set inside the data interval.

The tests share one Airflow home and one Redis and run in file order: the chain, its re-run,
a run whose L1 is missing, then the guide's ``airflow dags trigger`` of L1b (a manual run with
no logical date), executed without a scheduler.
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
from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis
from market_data import files
from online_store import feast_layout
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
LATER_DATE = "2025-12-12T14:30:00+00:00"
"""The interval after the chain's, [14:15, 14:30): L0 and L1 only, for the manual L1b run."""
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

    @property
    def airflow_bin(self) -> Path:
        return Path(os.environ.get("AIRFLOW_BIN", str(PROJECT / ".venv-airflow/bin/airflow")))

    def airflow_python(self, script: str, *args: str, log: str) -> subprocess.CompletedProcess[str]:
        """``script`` run by the Python of Airflow's virtualenv, with the stack's environment."""
        started = time.perf_counter()
        done = subprocess.run(
            [str(self.airflow_bin.parent / "python"), "-c", script, *args],
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


RUN_UNTIMED_MANUAL = """
import sys
from datetime import datetime

from airflow.utils.cli import get_bagged_dag

dag = get_bagged_dag(bundle_names=None, dag_id=sys.argv[1])
# What the CLI's `dags test` does, with the triggered run's shape: no logical date (the CLI
# always passes one), run_after = the trigger time. dag.test replaces the queued run with the
# null logical date by this one (run id manual__<run_after>_<suffix>) and runs its tasks.
run = dag.test(logical_date=None, run_after=datetime.fromisoformat(sys.argv[2]))
print(f"RUN {run.run_id} {run.run_type} logical_date={run.logical_date} state={run.state}")
for ti in run.get_task_instances():
    print(f"TASK {ti.task_id} {ti.state}")
"""


def _l1b_runs(stack: Stack, log: str) -> list[dict[str, str]]:
    listed = stack.airflow("dags", "list-runs", "v3.l1b_feast_materialize", "-o", "json", log=log)
    _require_ok(listed, "airflow dags list-runs")
    runs: list[dict[str, str]] = json.loads(listed.stdout.strip().splitlines()[-1])
    return runs


def test_manual_trigger_skips_the_l1_wait_and_materializes_up_to_the_trigger_time(
    stack: Stack,
) -> None:
    """The guide's `airflow dags trigger v3.l1b_feast_materialize`, run as written."""
    for dag_id in DAG_IDS[:2]:  # offline rows of [14:15, 14:30), not materialized by any L1b
        _require_ok(stack.dags_test(dag_id, LATER_DATE, log=f"later-{dag_id}"), dag_id)
    key = feast_layout.entity_key("USDCOP", contract.PROJECT)
    before = dump_redis(stack.redis)[key]

    env = dict(stack.env, PATH=f"{stack.airflow_bin.parent}:{stack.env.get('PATH', '')}")
    triggered = subprocess.run(
        ["bash", "-c", "airflow dags trigger v3.l1b_feast_materialize"],
        env=env, cwd=stack.logs, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    (stack.logs / "trigger.log").write_text(triggered.stdout + triggered.stderr)
    _require_ok(triggered, "airflow dags trigger")
    # Airflow 3: a run triggered without --logical-date has none (and no data interval); the
    # runbook's backfill run is queued beside it.
    queued = [
        r for r in _l1b_runs(stack, "runs-queued")
        if r["state"] == "queued" and r["run_id"].startswith("manual__")
    ]  # fmt: skip
    assert len(queued) == 1, queued
    run = queued[0]
    assert run["logical_date"] == "", run

    started = time.perf_counter()
    done = stack.airflow_python(
        RUN_UNTIMED_MANUAL, "v3.l1b_feast_materialize", run["run_after"], log="manual-l1b"
    )
    elapsed = time.perf_counter() - started
    output = done.stdout + done.stderr
    _require_ok(done, "the triggered run")
    executed = re.search(r"^RUN (\S+) manual logical_date=None state=success$", output, re.M)
    assert executed and executed[1].startswith(run["run_id"]), output[-4000:]
    assert "TASK wait_for_l1 skipped" in output
    assert "TASK check_contract success" in output and "TASK materialize success" in output
    assert elapsed < 120 and stack.seconds["manual-l1b"] < 120  # it never sat in the sensor
    trigger_time = datetime.fromisoformat(run["run_after"])
    assert f"L1b up to {trigger_time.isoformat()}: materialized" in output, output[-4000:]

    # Redis holds, for every view, the latest offline row up to the trigger time.
    stored = dump_redis(stack.redis)[key]
    assert stored != before
    for view in contract.VIEWS:
        table = pd.read_parquet(stack.repo.data_dir / "offline" / f"{view.name}.parquet")
        rows = table[(table["symbol"] == "USDCOP") & (table["event_timestamp"] <= trigger_time)]
        latest = rows.sort_values("event_timestamp").iloc[-1]
        stored_ns = feast_layout.decode_timestamp_ns(stored[feast_layout.ts_field(view.name)])
        assert stored_ns == int(pd.Timestamp(latest["event_timestamp"]).value), view.name
    technical = stored[feast_layout.ts_field("technical_features")]
    later_bar = pd.Timestamp("2025-12-12T14:30:00+00:00")  # the last bar of the later interval
    assert feast_layout.decode_timestamp_ns(technical) == int(later_bar.value)

    runs = {r["run_id"]: r for r in _l1b_runs(stack, "runs-after")}
    assert runs[executed[1]]["state"] == "success"
    assert runs[executed[1]]["run_after"] == run["run_after"]
    assert runs[executed[1]]["logical_date"] == ""
    assert run["run_id"] not in runs  # the queued run was the one executed (replaced in place)


def test_only_a_manual_run_without_a_logical_date_is_untimed(stack: Stack) -> None:
    """Scheduled and backfill runs always carry a logical date and keep waiting for L1; so do
    manual runs given one (the chain above); only the bare trigger skips the wait."""
    script = """
import sys
from datetime import UTC, datetime
from types import SimpleNamespace

sys.path.insert(0, sys.argv[1])
from airflow.sdk.api.datamodels._generated import DagRunType
from _usdcop.steps import is_untimed_manual

when = datetime(2025, 12, 12, 14, 15, tzinfo=UTC)
for run_type in DagRunType:
    for logical_date in (when, None):
        run = SimpleNamespace(run_type=run_type, logical_date=logical_date)
        print(run_type.value, logical_date is not None, is_untimed_manual(run))
"""
    done = stack.airflow_python(script, str(PROJECT / "airflow" / "dags"), log="untimed")
    _require_ok(done, "is_untimed_manual")
    untimed = {
        (kind, dated == "True") for kind, dated, flag in map(str.split, done.stdout.splitlines())
        if flag == "True"
    }  # fmt: skip
    assert untimed == {("manual", False)}, done.stdout
