"""The two wheels as a user gets them: built from the working tree, each installed into a clean
virtualenv of its own (no PYTHONPATH, not run from the repository), then used for real.

- usdcop-observation-client alone: its installed distributions are grpcio, protobuf, numpy (and
  what they require), none of the server's; its command and its Python API call a real server
  (started from the repository on port 0, against a real redis-server of the dev stack).
- usdcop-observation-server with its ``server`` extra: ``--version`` of its commands, the one-line
  ``--repo-dir`` answer of the pipeline without a repository, and the installed server itself
  serving a real Redis until SIGTERM.

Not part of ``make test``: ``make test-wheels`` (pip installs from the package index, or its
cache and ``PIP_FIND_LINKS``). Prints the client install's size and distributions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from canonical.contract import FEATURE_NAMES
from client import ObservationClient, ObservationRpcError
from client._version import __version__
from devstack.embedded_redis import EmbeddedRedis
from server.config import ServerConfig
from tests.integration.client.conftest import (
    PROJECT,
    STORE_VALUES,
    ServerThread,
    client_server_config,
    write_raw_data,
    write_store_observation,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BUILD_WHEELS = Path(__file__).resolve().parent.parent / "build_wheels.py"

CLIENT_REQUIRES = {"grpcio", "protobuf", "numpy"}
"""The client's own dependencies; anything else installed must be theirs (typing-extensions)."""
NOT_IN_THE_CLIENT = ("server", "pipeline", "devstack", "pandas", "pyarrow", "feast", "redis")
INSTALLER = {"pip", "setuptools", "wheel"}
"""What ``python -m venv`` puts in every virtualenv."""


def _clean_env() -> dict[str, str]:
    """The environment without anything that would reach into the repository or the venv."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        and not key.startswith(("USDCOP_", "FEAST_", "POSTGRES_"))
    } | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}


class Venv:
    """A fresh virtualenv (``python -m venv``) and what runs inside it, outside the repository."""

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def run(self, *argv: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            cwd=self.path,  # never the repository: its packages must not be importable
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin("python"), "-I", "-c", code)

    def install(self, requirement: str) -> float:
        """pip install; returns its wall time in seconds."""
        began = time.perf_counter()
        done = self.run(self.bin("python"), "-m", "pip", "install", "--quiet", requirement,
                        timeout_s=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return time.perf_counter() - began

    def distributions(self) -> dict[str, int]:
        """Each installed distribution (normalized name) and the bytes of its files."""
        listing = self.python(
            "import importlib.metadata as m, json, re\n"
            "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower():\n"
            "    sum(f.locate().stat().st_size for f in (d.files or []) if f.locate().exists())\n"
            "    for d in m.distributions()}))"
        )
        assert listing.returncode == 0, listing.stderr
        return dict(json.loads(listing.stdout))

    def importable(self, *modules: str) -> list[str]:
        found = self.python(
            "import importlib.util, sys\n"
            f"print(' '.join(m for m in {modules!r} if importlib.util.find_spec(m)))"
        )
        assert found.returncode == 0, found.stderr
        return found.stdout.split()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out_dir = tmp_path_factory.mktemp("wheels")
    done = subprocess.run(  # as `make wheels` does
        [sys.executable, str(BUILD_WHEELS), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    built = {Path(line).name.split("-")[0].removeprefix("usdcop_observation_"): Path(line)
             for line in done.stdout.split()}  # fmt: skip
    assert set(built) == {"server", "client"}
    return built


@pytest.fixture(scope="module")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _float32(values: list[float]) -> list[float]:
    return np.asarray(values, dtype=np.float32).tolist()


def test_client_wheel_installs_alone_and_calls_a_real_server(
    wheels: dict[str, Path],
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv = Venv(tmp_path / "venv")
    seconds = venv.install(str(wheels["client"]))
    installed = venv.distributions()
    ours = {name: size for name, size in installed.items() if name not in INSTALLER}
    assert CLIENT_REQUIRES | {"usdcop-observation-client"} <= set(ours)
    assert set(ours) - CLIENT_REQUIRES - {"usdcop-observation-client"} <= {"typing-extensions"}
    assert venv.importable("client", "canonical.contract", "usdcop.observation.v1") == [
        "client", "canonical.contract", "usdcop.observation.v1"
    ]  # fmt: skip
    assert venv.importable(*NOT_IN_THE_CLIENT, "canonical.builder") == []
    with capsys.disabled():
        print(
            f"\nclient-only install: {seconds:.1f} s, {sum(ours.values()) / 1e6:.1f} MB "
            + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(ours.items()))
        )

    data_dir = write_raw_data(tmp_path / "data")
    write_store_observation(redis_server)
    server = ServerThread(client_server_config(redis_server, data_dir)).start()
    try:
        version = venv.run(venv.bin("usdcop-observation"), "--version")
        assert version.stdout.startswith(f"usdcop-observation {__version__} (contract ")
        table = venv.run(venv.bin("usdcop-observation"), "USDCOP", "--target", server.target,
                         "--json", "--timeout-s", "10")  # fmt: skip
        assert table.returncode == 0, table.stderr
        payload = json.loads(table.stdout)
        assert list(payload["values"]) == list(FEATURE_NAMES)
        assert list(payload["values"].values()) == _float32(STORE_VALUES)
        assert {view["source"] for view in payload["views"]} == {"online_store"}
        api = venv.python(
            "import json\n"
            "from client import ObservationClient\n"
            f"with ObservationClient({server.target!r}, timeout_s=10) as obs:\n"
            "    result = obs.get('USDCOP')\n"
            "print(json.dumps([str(result.values.dtype), result.values.tolist()]))"
        )
        assert api.returncode == 0, api.stderr
        assert json.loads(api.stdout) == ["float32", _float32(STORE_VALUES)]
        unknown = venv.run(venv.bin("usdcop-observation"), "EURUSD", "--target", server.target,
                           "--timeout-s", "10")  # fmt: skip
        assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
        # The load tool: without its extra it says which one to install; with it, it runs.
        bare = venv.run(venv.bin("usdcop-observation-load"), "--version")
        assert bare.returncode == 2 and "usdcop-observation-client[load]" in bare.stderr
        venv.install(f"{wheels['client']}[load]")
        added = set(venv.distributions()) - set(installed)
        assert "hdrhistogram" in added and added <= {"hdrhistogram", "pbr", *INSTALLER}, added
        load = venv.run(venv.bin("usdcop-observation-load"), "--target", server.target,
                        "--rate", "50", "--duration", "1", "--json", "--quiet")  # fmt: skip
        assert load.returncode == 0, load.stderr
        report = json.loads(load.stdout)
        assert report["calls"] == 50 and report["errors"] == 0, report
        assert report["latency_ms"]["p99"] is not None
    finally:
        server.stop()


def test_server_wheel_with_its_extra_serves(
    wheels: dict[str, Path], redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    venv = Venv(tmp_path / "venv")
    venv.install(f"{wheels['server']}[server]")
    assert venv.importable("pandas", "feast", "devstack", "benchmarks", "tests", "clients") == []
    contract = f"{__version__} (contract "
    for command in ("usdcop-observation-server", "usdcop-pipeline", "usdcop-observation"):
        version = venv.run(venv.bin(command), "--version")
        assert version.returncode == 0, version.stderr
        assert version.stdout.startswith(f"{command} {contract}")
    # The registry reader's vendored schema is shipped, and parses without Feast.
    schema = venv.python(
        "from pipeline.registry_schema import registry_message\n"
        "print(registry_message().DESCRIPTOR.full_name)"
    )
    assert schema.stdout.strip() == "feast.core.Registry", schema.stderr
    # No feature_repo/ beside an installed package: the pipeline says what to pass, in one line.
    doctor = venv.run(venv.bin("usdcop-pipeline"), "doctor")
    assert doctor.returncode == 2 and doctor.stderr.count("\n") == 1
    assert "--repo-dir" in doctor.stderr

    data_dir = write_raw_data(tmp_path / "data")
    write_store_observation(redis_server, event_ns=time.time_ns() - 60 * 10**9)
    port = _free_port()
    config = ServerConfig(
        redis_host=redis_server.host,
        redis_port=redis_server.port,
        port=port,
        metrics_port=0,
        data_dir=data_dir,
        project=PROJECT,
        redis_timeout_ms=1000.0,
    )
    log = tmp_path / "server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [venv.bin("usdcop-observation-server")],
            cwd=tmp_path,
            env=_clean_env() | config.to_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        values = _first_observation(f"127.0.0.1:{port}", server, log)
        assert values == _float32(STORE_VALUES)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0, log.read_text()


def _first_observation(target: str, server: subprocess.Popen[bytes], log: Path) -> list[float]:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            pytest.fail(f"the installed server exited {server.returncode}: {log.read_text()}")
        try:
            with ObservationClient(target, timeout_s=5) as obs:
                return list(obs.get("USDCOP").values.tolist())
        except ObservationRpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
