"""The on-call commands: ``python -m pipeline doctor [--json]``, ``redis-key SYMBOL`` and
``skew --start T --end T [--json]``.

What enters: parsed arguments and the settings. What leaves: the doctor's report on stdout
(exit 1 when a check fails) and, for ``redis-key``, a symbol's Feast key in Redis as a
double-quoted, escaped string that ``redis-cli`` reads back as the same bytes (the key is binary:
Feast's serialized entity key followed by the project name); for ``skew``, the served-vs-offline
report (``pipeline.skew``; exit 1 when a served value differs) after recording what Redis holds
(pushes and served answers), and its figures in the pipeline's metrics textfile.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime

from pipeline.settings import PipelineSettings


def _moment(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. +00:00): {raw!r}")
    return moment


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    settings_flags: Callable[[argparse.ArgumentParser, str], None],
) -> None:
    """Register ``doctor`` and ``redis-key`` on ``commands``."""
    doctor = commands.add_parser(
        "doctor",
        help="check every piece (files, registry, Redis, views, server); exit 1 on a failure",
        description="One check per line with its verdict and, when failing, the fix. Redis "
        "from FEAST_REDIS_* (else data/redis.env of `up`), the server at --target.",
    )
    settings_flags(doctor, "doctor")
    doctor.add_argument("--json", action="store_true", help="machine-readable report")
    doctor.add_argument("--target", help="observation server host:port [127.0.0.1:USDCOP_PORT]")
    doctor.add_argument(
        "--now", type=_moment, help="judge ages at this time instead of the clock (ISO-8601)"
    )
    key = commands.add_parser(
        "redis-key",
        help="print a symbol's Feast key in Redis, escaped for redis-cli",
        description="Print the key of SYMBOL's hash, double-quoted with \\x escapes, e.g. "
        "printf 'HGETALL %%s\\n' \"$(python -m pipeline redis-key USDCOP)\" | redis-cli",
    )
    settings_flags(key, "redis-key")
    key.add_argument("symbol", help="symbol, e.g. USDCOP")
    skew = commands.add_parser(
        "skew",
        help="served vs offline: per feature, served values that differ from the offline row "
        "of the same instant and from the builder's recomputation; exit 1 on any",
        description="Records the served log and the pushes Redis holds (FEAST_REDIS_*, else "
        "data/redis.env of `up`), then compares the answers served in [--start, --end].",
    )
    settings_flags(skew, "skew")
    skew.add_argument("--start", type=_moment, required=True, help="first serve time, ISO-8601")
    skew.add_argument("--end", type=_moment, required=True, help="last serve time, ISO-8601")
    skew.add_argument("--json", action="store_true", help="machine-readable report")


def escaped_key(symbol: str) -> str:
    """The key as redis-cli's quoted-string syntax (printable ASCII kept, other bytes \\xNN)."""
    from canonical import contract
    from online_store import feast_layout

    raw = feast_layout.entity_key(symbol, contract.PROJECT)
    body = "".join(
        chr(b) if 0x20 <= b < 0x7F and chr(b) not in '"\\' else f"\\x{b:02x}" for b in raw
    )
    return f'"{body}"'


def run_command(command: str, args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Run one of this module's commands; returns the exit code."""
    if command == "redis-key":
        print(escaped_key(args.symbol))
        return 0
    if command == "skew":
        return _skew(args, settings)
    from pipeline.doctor import run_doctor

    target = args.target or f"127.0.0.1:{settings.server_port}"
    report = run_doctor(settings, target, now=args.now)
    print(report.as_json() if args.json else report.text())
    sys.stdout.flush()
    return 1 if report.failed else 0


def _skew(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from datetime import UTC

    from pipeline.metrics import write_pipeline_metrics
    from pipeline.quickstart import open_offline_store
    from pipeline.served_log import drain_served_log
    from pipeline.skew import skew_report
    from pipeline.state_events import sync_state_events
    from pipeline.state_file import read_redis_state

    redis = settings.redis or read_redis_state(settings.data_dir)
    now = datetime.now(UTC)
    with open_offline_store(settings, lambda _line: None) as offline:
        sync_state_events(offline, redis, created=now)
        drain_served_log(settings.data_dir, redis)
        report = skew_report(offline, args.start, args.end)
    write_pipeline_metrics(
        settings.metrics_folder,
        finished_at=datetime.now(UTC),
        skew=(report.compared, report.mismatched),
    )
    print(report.as_json() if args.json else report.text())
    sys.stdout.flush()
    return 1 if report.mismatched else 0
