"""Every ```bash command of docs/RUNBOOK.md, run as written against a real stack.

The stack: a private copy of feature_repo/ materialized for real (Feast apply + materialize into
a real redis-server, data ending on a Friday at 18:00 UTC), and the real gRPC server on port 0
with its clock 10 minutes later. Each distinct command line runs once in bash, with the variables
the runbook names (FEAST_REDIS_*, USDCOP_FEATURE_REPO, USDCOP_PORT, START, END) and a `.venv`
from the checkout's root (where the runbook's commands run); its exit code and output are
checked.

The doctor judges ages by the wall clock, long after the fixed data: its only failures must be
the three view TTL checks (every other check passes), and it exits 1 for them. The ```sh
blocks (Airflow) are run by airflow/tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from canonical import contract
from core.clock import ManualClock
from devstack.embedded_redis import EmbeddedRedis, find_redis_server
from online_store import feast_layout
from pipeline.ops_cli import escaped_key
from pipeline.run import run_pipeline
from pipeline.settings import REPO_ROOT
from tests.integration.feast._support import (
    FRIDAY_CLOSE,
    HISTORY_DAYS,
    RepoCopy,
    address_of,
    copy_feature_repo,
)
from tests.integration.server.conftest import running, server_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RUNBOOK = REPO_ROOT / "docs" / "RUNBOOK.md"
NOW = FRIDAY_CLOSE + timedelta(minutes=10)


def fenced_commands(markdown: str, language: str) -> list[str]:
    """Command lines of every ```<language> block, in order, each once."""
    commands: list[str] = []
    for block in re.findall(rf"^```{language}\n(.*?)^```", markdown, re.S | re.M):
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#") and line not in commands:
                commands.append(line)
    return commands


def test_the_runbook_has_commands_for_every_section() -> None:
    text = RUNBOOK.read_text()
    assert len(fenced_commands(text, "bash")) >= 12
    for title in (
        "Redis connection failed",
        "Features not materialized",
        "Feature count mismatch",
        "Offline store connection",
        "Fallback and circuit breaker",
        "An expired view",
    ):
        assert title in text
    # The seed's pattern matches nothing in Feast's layout: no command may rely on it.
    assert not [c for c in fenced_commands(text, "bash") if "feast:" in c]


@dataclass(frozen=True)
class Ran:
    command: str
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RepoCopy, EmbeddedRedis]]:
    repo = copy_feature_repo(tmp_path_factory.mktemp("runbook"))
    with EmbeddedRedis() as server:
        run_pipeline(
            repo.repo_dir, repo.data_dir, FRIDAY_CLOSE, address_of(server), days=HISTORY_DAYS
        )
        yield repo, server


@pytest.fixture(scope="module")
def ran(
    stack: tuple[RepoCopy, EmbeddedRedis], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Ran]:
    repo, redis_server = stack
    home = tmp_path_factory.mktemp("oncall")
    redis_bin = Path(find_redis_server()).parent
    config = server_config(redis_server.port, repo.data_dir)
    clock = ManualClock(wall_ns=int(pd.Timestamp(NOW).value))

    async def scenario() -> dict[str, Ran]:
        async with running(config, clock) as server:
            env = {
                "PATH": f"{os.environ.get('PATH', '')}:{redis_bin}",
                "HOME": str(home),
                "FEAST_REDIS_HOST": redis_server.host,
                "FEAST_REDIS_PORT": str(redis_server.port),
                "USDCOP_FEATURE_REPO": str(repo.repo_dir),
                "USDCOP_PORT": str(server.port),
                "START": (FRIDAY_CLOSE - timedelta(minutes=15)).isoformat(),
                "END": FRIDAY_CLOSE.isoformat(),
            }
            results = {}
            for command in fenced_commands(RUNBOOK.read_text(), "bash"):
                done = await asyncio.to_thread(
                    subprocess.run,
                    ["bash", "-c", command],
                    cwd=REPO_ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                results[command] = Ran(command, done.returncode, done.stdout, done.stderr)
            return results

    return asyncio.run(scenario())


def _find(ran: dict[str, Ran], *needles: str) -> Ran:
    matches = [r for c, r in ran.items() if all(n in c for n in needles)]
    assert matches, f"no runbook command contains {needles}"
    return matches[0]


def _unescape(quoted: str) -> bytes:
    """redis-cli's --no-raw rendering of a binary string back to bytes."""
    body = quoted.strip()
    assert body.startswith('"') and body.endswith('"'), body
    simple = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}
    out, i, body = bytearray(), 0, body[1:-1]
    while i < len(body):
        if body[i] == "\\" and body[i + 1] == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif body[i] == "\\":
            out += simple[body[i + 1]]
            i += 2
        else:
            out += body[i].encode()
            i += 1
    return bytes(out)


def test_every_command_ran(ran: dict[str, Ran]) -> None:
    for command, result in ran.items():
        if "pipeline doctor" in command:
            continue  # judged below
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


def test_the_key_commands_find_feasts_binary_key(ran: dict[str, Ran]) -> None:
    key = feast_layout.entity_key("USDCOP", contract.PROJECT)
    printed = _find(ran, "pipeline redis-key USDCOP").stdout.strip()
    assert printed == escaped_key("USDCOP") and _unescape(printed) == key
    scanned = _find(ran, "--scan --pattern").stdout.strip()
    assert _unescape(scanned) == key
    assert _find(ran, "EXISTS").stdout.strip() == "1"
    assert _find(ran, "HLEN").stdout.strip() == str(contract.N_FEATURES + len(contract.VIEWS))
    stamp = _unescape(_find(ran, "_ts:state_features").stdout)
    assert feast_layout.decode_timestamp_ns(stamp) == int(pd.Timestamp(FRIDAY_CLOSE).value)
    assert _find(ran, "ping").stdout.strip() == "PONG"


def test_the_server_and_client_commands_show_sources(ran: dict[str, Ran]) -> None:
    table = _find(ran, "python -m client USDCOP", 'USDCOP_PORT"').stdout
    for view in contract.VIEWS:
        assert view.name in table
    answer = json.loads(_find(ran, "python -m client", "--json").stdout)
    assert json.dumps(answer).count("online_store") >= len(contract.VIEWS)


def test_the_doctor_fails_only_on_the_ttl_of_data_from_the_past(ran: dict[str, Ran]) -> None:
    report = json.loads(_find(ran, "pipeline doctor --json").stdout)
    failed = {c["name"] for c in report["checks"] if c["verdict"] == "FAIL"}
    assert failed == {f"view USDCOP {v.name}" for v in contract.VIEWS}
    assert now_after(report["now"], NOW)
    text = _find(ran, "pipeline doctor").stdout
    assert _find(ran, "pipeline doctor").returncode == 1
    assert "ok    server USDCOP" in text and "online_store/fresh" in text


def now_after(raw: str, moment: datetime) -> bool:
    return datetime.fromisoformat(raw).astimezone(UTC) > moment


def test_pipeline_commands_report_what_they_did(ran: dict[str, Ran]) -> None:
    assert "(the code's)" in _find(ran, "pipeline check-contract").stdout
    assert "materialized technical_features" in _find(ran, "pipeline materialize").stdout
    assert "observation_15d" in _find(ran, "feature-services list").stdout
    assert "apply: 7 objects" in _find(ran, "pipeline apply").stdout
    assert "0 bars appended" in _find(ran, "pipeline l0").stdout
    assert "0 rows added" in _find(ran, "pipeline l1").stdout
