"""A real observation server holding a known observation, for the non-Python clients' tests.

What enters: a command to run (e.g. ``npm test``). What leaves: that command's exit code,
after it ran against a real stack this module starts and stops: a real ``redis-server``
(``devstack.embedded_redis``) holding one observation of ``USDCOP`` in Feast's layout, raw
market data for the compute fallback, and ``python -m server`` as a child process
(``devstack.server_process``) on a free port of 127.0.0.1. The command gets in its environment:

- ``USDCOP_TARGET``: ``127.0.0.1:PORT`` of the server;
- ``USDCOP_SERVER_PID``: the server's process id (a test may SIGSTOP it to stall the server,
  and must SIGCONT it; this module resumes it before stopping it in any case);
- ``USDCOP_EXPECTED``: JSON of what the Python client (``client.ObservationClient``) read
  from this server: ``values_hex`` (the 15 float32 values' little-endian bytes, hex) and
  ``views`` (view, source, freshness, fallback_reason). Other clients compare with it bit
  for bit.

``python -m devstack.fixture_server -- npm test --prefix clients/typescript``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from canonical import contract
from devstack.embedded_redis import EmbeddedRedis
from devstack.server_process import ServerProcess
from market_data import files, generator
from online_store import feast_layout
from online_store.address import RedisAddress
from server.config import ServerConfig

SYMBOL = "USDCOP"
BARS_START = date(2025, 12, 1)
BARS_END = date(2025, 12, 12)
STORE_VALUES: tuple[float, ...] = (
    0.000123456, -0.00234567, 0.0123457, 54.3210987, 0.00456789, 23.456789,
    0.7654321, -0.0012345, -1.2345678, 0.3456789, 0.0234567, 2.3456789, -0.0045678,
    1.0 / 3.0, 2.0 / 3.0,
)  # fmt: skip
"""Plausible values none of which float32 holds exactly: a lossy path shows in their bits."""
STORE_AGE_S = 60
"""Each view's event time is this long before start-up: fresh under every view's TTL."""


def write_observation(redis_server: EmbeddedRedis, symbol: str = SYMBOL) -> None:
    """One entity hash in Feast's layout: every view's values and ``_ts`` (now - 60 s)."""
    event_ns = (int(time.time()) - STORE_AGE_S) * 10**9
    mapping: dict[bytes, bytes] = {}
    for feature in contract.FEATURES:
        field = feast_layout.feature_field(feature.view, feature.name)
        mapping[field] = feast_layout.encode_float32(STORE_VALUES[feature.index])
    for view in contract.VIEWS:
        mapping[feast_layout.ts_field(view.name)] = feast_layout.encode_timestamp(event_ns)
    client = RedisAddress(redis_server.host, redis_server.port).connect()
    try:
        client.hset(feast_layout.entity_key(symbol, contract.PROJECT), mapping=mapping)  # type: ignore[arg-type]
    finally:
        client.close()


def write_raw_data(data_dir: Path) -> None:
    """The fallback's raw files: two weeks of generated bars and their macro rows."""
    files.write_bars(
        files.bars_path(data_dir), generator.generate_bars(start=BARS_START, end=BARS_END)
    )
    macro_start = generator.macro_start_for(BARS_START)
    files.write_macro(
        files.macro_path(data_dir), generator.generate_macro(start=macro_start, end=BARS_END)
    )


def python_client_reading(target: str, symbol: str = SYMBOL) -> dict[str, object]:
    """What the Python client reads from ``target``: the values' bytes and the provenance."""
    from client import ObservationClient

    with ObservationClient(target, timeout_s=10.0) as obs:
        result = obs.get(symbol)
    return {
        "symbol": symbol,
        "values_hex": result.values.astype("<f4").tobytes().hex(),
        "views": [
            {
                "view": view.view,
                "source": view.source,
                "freshness": view.freshness,
                "fallback_reason": view.fallback_reason,
            }
            for view in result.views
        ],
    }


def run_against_fixture(command: Sequence[str], cwd: Path | None = None) -> int:
    """Start Redis + data + server, run ``command`` with the env above, stop everything."""
    with tempfile.TemporaryDirectory(prefix="usdcop-fixture-") as workdir:
        data_dir = Path(workdir) / "data"
        write_raw_data(data_dir)
        with EmbeddedRedis() as redis_server:
            write_observation(redis_server)
            config = ServerConfig(
                redis_host=redis_server.host,
                redis_port=redis_server.port,
                port=0,
                data_dir=data_dir,
                symbols=(SYMBOL,),
                # A busy machine (or a test's SIGSTOP) must not send these calls to the fallback.
                redis_timeout_ms=1000.0,
            )
            with ServerProcess(config) as server:
                server.wait_serving()
                pid = server.pid
                env = {
                    **os.environ,
                    "USDCOP_TARGET": server.target,
                    "USDCOP_SERVER_PID": str(pid),
                    "USDCOP_EXPECTED": json.dumps(python_client_reading(server.target)),
                }
                try:
                    return subprocess.run(list(command), env=env, cwd=cwd, check=False).returncode
                finally:
                    os.kill(pid, signal.SIGCONT)  # a test that stalled the server may have died


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.fixture_server",
        description="Run a command against a real server holding a known observation.",
    )
    parser.add_argument("--cwd", type=Path, default=None, help="folder to run the command in")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    # SIGTERM unwinds like Ctrl-C: the context managers stop the server and Redis.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return run_against_fixture(command, args.cwd)
    except Exception as error:
        print(f"fixture server failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
