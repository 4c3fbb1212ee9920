"""The running quick start (`python -m pipeline up`) as an operator meets it: its embedded Redis
wants the generated password (and `data/redis.env` carries it, so Feast and the server still
work), a Redis that comes back empty is refilled by the live feed within seconds, and a SIGKILL
of `up` leaves no process behind (redis-server, server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
import redis
from feast import FeatureStore

from canonical import contract
from client import ObservationClient
from devstack import processes
from pipeline.online_watch import feast_key
from pipeline.state_file import read_redis_state
from tests.integration.devstack._support import command_line
from tests.integration.feast._support import HISTORY_DAYS, copy_feature_repo

pytestmark = pytest.mark.integration

_REFILL_WITHIN_S = 15.0
_GONE_WITHIN_S = 5.0


def _wait_for(predicate, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.timeout(300)
def test_running_quick_start_password_refill_and_sigkill(tmp_path) -> None:
    repo = copy_feature_repo(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_REDIS_", "USDCOP_"))}
    stderr_path = tmp_path / "up.stderr"
    stderr = stderr_path.open("w")  # read back when `up` fails to start: its reason is there
    up = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "up", "--repo-dir", str(repo.repo_dir),
         "--days", str(HISTORY_DAYS), "--port", "0", "--metrics-port", "0", "--tick-s", "1"],
        stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
    )  # fmt: skip
    try:
        assert up.stdout is not None
        seen = []
        for line in up.stdout:
            seen.append(line)
            if "ObservationService is serving" in line:
                break
        else:
            stderr.flush()
            raise AssertionError(
                "".join(seen)[-3000:] + "\n--- stderr ---\n" + stderr_path.read_text()[-3000:]
            )
        target = re.search(r"serving on (127\.0\.0\.1:\d+)", seen[-1]).group(1)  # type: ignore[union-attr]

        # Password: generated, in the state file, and required.
        address = read_redis_state(repo.data_dir)
        assert address is not None and len(address.password) >= 24
        anonymous = redis.Redis(host=address.host, port=address.port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        store_client = redis.Redis(host=address.host, port=address.port, password=address.password)
        key = feast_key("USDCOP", contract.PROJECT)
        assert store_client.exists(key)

        # Feast (its SDK, configured from the state file as `pipeline feast` is) reads it.
        with address.exported():
            store = FeatureStore(repo_path=str(repo.repo_dir))
        online = store.get_online_features(
            features=store.get_feature_service(contract.FEATURE_SERVICE),
            entity_rows=[{contract.ENTITY: "USDCOP"}],
        ).to_dict()
        assert all(online[name][0] is not None for name in contract.FEATURE_NAMES)

        # Redis comes back empty and an agent pushes its state at once (the key exists again,
        # holding the state view alone): the live feed still notices and refills every view.
        technical_ts = b"_ts:" + contract.TECHNICAL.name.encode()
        store_client.flushall()
        with ObservationClient(target) as agent:
            assert agent.push_state("USDCOP", 0.25) is True
        assert store_client.exists(key)
        refill_s = _wait_for(lambda: store_client.hexists(key, technical_ts), _REFILL_WITHIN_S)
        print(f"refilled {refill_s:.2f} s after FLUSHALL + PushState")
        store_client.close()

        # The server reads the store again (past its 1 s cache of the answer given meanwhile,
        # and a breaker that a slow read on this busy machine may have opened).
        with ObservationClient(target) as observations:
            deadline = time.monotonic() + _REFILL_WITHIN_S
            while True:
                result = observations.get("USDCOP")
                sources = {view.source for view in result.views}
                if sources == {"online_store"} or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert sources == {"online_store"}, result.views
        assert {view.freshness for view in result.views} == {"fresh"}, result.views

        # SIGKILL of `up`: its redis-server and server go too.
        tree = processes.descendants(up.pid)
        names = {" ".join(command_line(pid)) for pid in tree}
        assert any("redis-server" in name for name in names), names
        assert any("-m server" in name for name in names), names
        up.kill()
        up.wait(timeout=10)
        killed = time.monotonic()
        left = processes.wait_gone(tree, timeout_s=_GONE_WITHIN_S)
        print(f"SIGKILL of up: {len(tree)} descendants gone in {time.monotonic() - killed:.2f} s")
        assert left == set(), {pid: command_line(pid) for pid in left}
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stdout is not None:
            up.stdout.close()
        stderr.close()
