"""The scheduler's commands: ``python -m pipeline l0|l1|materialize --start T --end T``,
``python -m pipeline materialize --up-to T`` (a manual run: every view up to ``T``, from where its
last materialization ended), ``python -m pipeline apply`` (the deploy step) and
``python -m pipeline check-contract``.

What enters: parsed arguments and the settings. What leaves: one summary line per command on
stdout and an exit code a scheduler can act on -- 0 done, 1 failed (retry may help: Redis
down), 2 bad usage, 3 the registry's contract is not the code's (retrying will not help: fix
the deployment). Airflow's DAGs (``airflow/dags/``) call exactly these commands with the
run's data interval.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from online_store.address import RedisAddress
from pipeline.settings import PipelineSettings

if TYPE_CHECKING:
    from pipeline.interval import Interval

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONTRACT = 3


def _moment(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {raw!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. +00:00): {raw!r}")
    return moment


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    settings_flags: Callable[[argparse.ArgumentParser, str], None],
) -> None:
    """Register ``l0``, ``l1``, ``materialize`` and ``apply`` on ``commands``."""
    helps = {
        "l0": "L0 ingest: raw bars covering the interval (generated or extended)",
        "l1": "L1 features: offline rows for every raw bar",
        "materialize": "L1b: check the registry's contract hash, then materialize [start, end) "
        "(or --up-to T)",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text + ".")
        settings_flags(sub, name)
        # materialize also takes --up-to alone (a manual run); run_command checks the pairing.
        needed = name != "materialize"
        sub.add_argument("--start", type=_moment, required=needed, help="interval start, ISO-8601")
        sub.add_argument("--end", type=_moment, required=needed, help="interval end, ISO-8601")
        if name == "materialize":
            sub.add_argument(
                "--up-to",
                type=_moment,
                help="instead of --start/--end: each view from where its last materialization "
                "ended (the first time: one TTL back) up to this time, inclusive -- what a manual "
                "run does (feast materialize-incremental)",
            )
    apply = commands.add_parser(
        "apply",
        help="feast apply of feature_repo/ (the deploy step that writes the registry)",
        description="Register features.py's objects in the registry (data/registry.db).",
    )
    settings_flags(apply, "apply")
    check = commands.add_parser(
        "check-contract",
        help="fail (exit 3) unless the registry's contract hash and features are the code's",
        description="Read data/registry.db (without Feast) and compare the feature service's "
        "contract_hash tag and features with canonical.contract.",
    )
    settings_flags(check, "check-contract")


def _redis(settings: PipelineSettings) -> RedisAddress | None:
    from pipeline.state_file import read_redis_state

    return settings.redis or read_redis_state(settings.data_dir)


def run_command(command: str, args: argparse.Namespace, settings: PipelineSettings) -> int:
    """Run one of this module's commands; returns the exit code (the one error boundary of the
    scheduled steps: each failure is one line and its exit code)."""
    from redis.exceptions import RedisError

    from pipeline.registry_file import ContractMismatchError, RegistryError

    redis = _redis(settings)
    if redis is None and command in ("apply", "materialize"):
        # Apply updates the online store's infrastructure too (it drops removed views).
        print("error: no Redis configured: set FEAST_REDIS_HOST/PORT", file=sys.stderr)
        return EXIT_USAGE
    failure: tuple[str, int]
    try:
        return _run(command, args, settings, redis)
    except ValueError as exc:
        failure = (f"error: {exc}", EXIT_USAGE)
    except (ContractMismatchError, RegistryError) as exc:
        failure = (f"error: {exc}", EXIT_CONTRACT)
    except FileNotFoundError as exc:
        failure = (f"error: {exc} (run L0 and L1 for this interval first)", EXIT_FAILED)
    except RedisError as exc:
        assert redis is not None
        failure = (f"error: Redis at {redis.host}:{redis.port}: {exc}", EXIT_FAILED)
    print(failure[0], file=sys.stderr)
    return failure[1]


def _run(
    command: str, args: argparse.Namespace, settings: PipelineSettings, redis: RedisAddress | None
) -> int:
    if command == "apply":
        assert redis is not None
        return _apply(settings, redis)
    if command == "check-contract":
        return _check_contract(settings)
    if command == "materialize" and (getattr(args, "up_to", None) is not None):
        if args.start is not None or args.end is not None:
            raise ValueError("give either --up-to or --start and --end, not both")
        assert redis is not None
        return _materialize_up_to(settings, redis, args.up_to)
    if args.start is None or args.end is None:
        raise ValueError("give --start and --end (or, for materialize, --up-to)")
    from pipeline.interval import Interval

    interval = Interval(args.start, args.end)
    if command == "l0":
        return _l0(settings, interval)
    if command == "l1":
        return _l1(settings, interval, redis)
    assert redis is not None
    return _l1b(settings, interval, redis)


def _l0(settings: PipelineSettings, interval: Interval) -> int:
    from pipeline.interval import ingest_l0

    raw = ingest_l0(settings, interval)
    how = "generated" if raw.generated else f"{raw.appended} bars appended"
    print(f"L0 {interval}: {how}, {raw.bars} bars stored")
    return 0


def _l1(settings: PipelineSettings, interval: Interval, redis: RedisAddress | None) -> int:
    from pipeline.interval import build_l1

    offline = build_l1(settings, interval, redis)
    _record(settings, l1_rows=offline.rows)
    print(f"L1 {interval}: {offline.added} rows added, {offline.rows} rows per view")
    return 0


def _l1b(settings: PipelineSettings, interval: Interval, redis: RedisAddress) -> int:
    from pipeline.interval import materialize_interval

    try:
        done = materialize_interval(settings, redis, interval)
    except Exception:
        _record(settings, success=False)
        raise
    _record(settings, materialized=done.materialized)
    print(
        f"L1b {interval}: materialized {', '.join(done.views)} into {redis.host}:{redis.port} "
        f"(contract {done.contract_hash[:12]})"
    )
    return 0


def _materialize_up_to(settings: PipelineSettings, redis: RedisAddress, now: datetime) -> int:
    from pipeline.interval import materialize_up_to

    try:
        done = materialize_up_to(settings, redis, now)
    except Exception:
        _record(settings, success=False)
        raise
    _record(settings, materialized=done.materialized)
    windows = ", ".join(
        f"{m.view} [{m.start.isoformat()}, {m.end.isoformat()}]"
        if m.ran
        else f"{m.view} (nothing after {m.start.isoformat()})"
        for m in done.materialized
    )
    print(
        f"L1b up to {now.isoformat()}: materialized {windows} into {redis.host}:{redis.port} "
        f"(contract {done.contract_hash[:12]})"
    )
    return 0


def _record(settings: PipelineSettings, **step: Any) -> None:
    """The pipeline's metrics textfile after an L1 or L1b step (pipeline.metrics)."""
    from datetime import UTC, datetime

    from pipeline.metrics import write_pipeline_metrics

    write_pipeline_metrics(settings.metrics_folder, finished_at=datetime.now(UTC), **step)


def _apply(settings: PipelineSettings, redis: RedisAddress) -> int:
    from pipeline.feast_repo import apply_definitions, open_feature_store

    applied = apply_definitions(open_feature_store(settings.repo_dir, redis), settings.repo_dir)
    print(f"apply: {len(applied)} objects registered in {settings.data_dir / 'registry.db'}")
    return 0


def _check_contract(settings: PipelineSettings) -> int:
    from pipeline.registry_file import read_registry, registry_path, require_contract_match

    where = registry_path(settings.data_dir, settings.offline_store)
    service = require_contract_match(read_registry(where), where)
    print(
        f"contract: registry {where} serves {service.name} with {len(service.features)} "
        f"features, hash {service.tags['contract_hash'][:12]} (the code's)"
    )
    return 0
