"""``python -m pipeline`` / ``usdcop-pipeline``: run the offline half and the quick start.

Commands:
- ``run``   the pipeline once (L0 -> L1 -> feast apply -> incremental materialize) at the current
            time, then the latest observation read back with Feast's SDK, as a named table;
- ``up``    the quick start: Redis (embedded unless FEAST_REDIS_HOST is set), the pipeline, the
            live feed, the gRPC server, an observation through the client; runs until Ctrl-C;
- ``live``  ``up`` without the server: the pipeline, then the live feed into the configured
            Redis/PostgreSQL until SIGTERM (the pipeline's container in deploy/);
- ``training-set`` point-in-time features of ``observation_15d`` (Feast's
            ``get_historical_features`` rule, joined by pipeline.point_in_time) on a time grid
            aligned to the bars, as float32 (N, 15) + timestamps;
- ``feast`` the ``feast`` CLI inside feature_repo/ with FEAST_REDIS_* filled in (from the
            environment, else from data/redis.env that ``up`` writes), so the seed's diagnostics
            work: ``python -m pipeline feast feature-views list``;
- ``l0``, ``l1``, ``materialize`` ``--start T --end T``, ``apply``, ``check-contract``: the
            scheduler's steps over one data interval (pipeline.interval_cli; the DAGs call them);
- ``doctor [--json]``, ``redis-key SYMBOL``: the on-call checks and a symbol's Redis key
            (pipeline.ops_cli; docs/RUNBOOK.md).

Settings come from environment variables (pipeline.settings) with flags on top; the flags and
their ``--help`` are generated from the settings' field metadata.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from client._version import version_line
from core.settings import SettingsError, add_flags, flag_values
from online_store.address import RedisAddress
from pipeline.settings import (
    OPS_COMMANDS,
    SCHEDULED_COMMANDS,
    SECRET_VARIABLES,
    PipelineSettings,
    setting_fields,
)


def _epilog() -> str:
    names = "/".join(key.removeprefix("FEAST_REDIS_") for key in RedisAddress("h", 1).feast_env())
    return (
        f"online store: FEAST_REDIS_{names} (FEAST_REDIS_HOST unset: an embedded redis-server); "
        "offline store: FEAST_OFFLINE_STORE_TYPE=file|postgres [file], with postgres "
        "POSTGRES_HOST/PORT/DB/USER/PASSWORD (POSTGRES_HOST unset: an embedded PostgreSQL)"
    )


def _settings_table() -> str:
    """Every setting, its flag and variable (top-level --help; each command lists its own)."""
    lines = ["settings (flag, environment variable, default: what it is):"]
    for f in setting_fields():
        default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        env = f.metadata["env"] or "-"
        commands = "/".join(f.metadata["commands"])
        lines.append(f"  {f.metadata['flag']:<15} {env:<25} {default}")
        lines.append(f"      {f.metadata['doc']} ({commands})")
    return "\n".join([*lines, "", _epilog()])


def _add_settings(sub: argparse.ArgumentParser, command: str) -> None:
    """The command's flags, one per PipelineSettings field that names it (same doc as --help)."""
    add_flags(sub, [f for f in setting_fields() if command in f.metadata["commands"]])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="USD/COP offline pipeline into Feast/Redis, and the quick start. "
        "Every flag overrides its environment variable. Secrets are read from the environment "
        f"only: {', '.join(SECRET_VARIABLES)}.",
        epilog=_settings_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line("usdcop-pipeline"))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the pipeline once and print the latest observation (Feast SDK)",
        description="L0 -> L1 -> feast apply -> materialize-incremental (now), then print the "
        "latest observation read from the online store with Feast's SDK.",
        epilog=_epilog(),
    )
    _add_settings(run, "run")
    up = commands.add_parser(
        "up",
        help="quick start: Redis + pipeline + live feed + gRPC server (Ctrl-C stops)",
        description="Start Redis (embedded unless FEAST_REDIS_HOST is set), run the pipeline, "
        "catch up the live feed so data is fresh now, start the observation server, print an "
        "observation through the client, then keep appending live bars until Ctrl-C.",
        epilog=_epilog(),
    )
    _add_settings(up, "up")
    up.add_argument("--exit-after-s", type=float, help="stop after this many seconds of live feed")
    live = commands.add_parser(
        "live",
        help="the pipeline, then the live feed into Redis until SIGTERM (no server)",
        description="Run the pipeline, catch up the live feed so data is fresh now, then keep "
        "appending live bars and materializing them (refilling a Redis that comes back empty) "
        "until SIGTERM or Ctrl-C. `up` without the server: for a deployment that runs the "
        "server on its own (deploy/compose.yaml).",
        epilog=_epilog(),
    )
    _add_settings(live, "live")
    live.add_argument(
        "--exit-after-s", type=float, help="stop after this many seconds of live feed"
    )
    training = commands.add_parser(
        "training-set",
        help="point-in-time training set of observation_15d into a .parquet/.npz/.npy file",
        description="Feast get_historical_features over the FeatureService observation_15d "
        "(each view's TTL honoured) at every --every from --start to --end, for each symbol; "
        "rows where a view has no value within its TTL are dropped. Writes float32 (N, 15) in "
        "contract order plus the timestamps. Builds L0/L1 and applies the repository first "
        "(an embedded PostgreSQL with FEAST_OFFLINE_STORE_TYPE=postgres and no POSTGRES_HOST).",
        epilog=_epilog(),
    )
    _add_settings(training, "training-set")
    training.add_argument(
        "--start", required=True, help="first timestamp, ISO (UTC), e.g. 2026-01-05"
    )
    training.add_argument("--end", required=True, help="last timestamp, ISO (UTC), inclusive")
    training.add_argument("--every", default="5m", help="grid step: 30s, 5m, 1h, 1d [5m]")
    training.add_argument("--out", type=Path, required=True, help="output .parquet, .npz or .npy")
    feast = commands.add_parser(
        "feast",
        help="the feast CLI in feature_repo/ with FEAST_REDIS_* set (e.g. feast registry-dump)",
        description="Run `feast ARGS...` in feature_repo/. FEAST_REDIS_* come from the "
        "environment, else from data/redis.env (written while `up` runs).",
    )
    _add_settings(feast, "feast")
    feast.add_argument("feast_args", nargs=argparse.REMAINDER, help="arguments for feast")
    from pipeline import interval_cli

    interval_cli.add_commands(commands, _add_settings)
    from pipeline import ops_cli

    ops_cli.add_commands(commands, _add_settings)
    return parser


def settings_from(args: argparse.Namespace) -> PipelineSettings:
    """Environment first, then the flags that were given."""
    overrides: dict[str, Any] = flag_values(args, setting_fields())
    if "repo_dir" in overrides and "data_dir" not in overrides:
        # what feature_store.yaml points at
        overrides["data_dir"] = overrides["repo_dir"].parent / "data"
    return PipelineSettings.from_env(os.environ).with_overrides(**overrides)


def command_run(settings: PipelineSettings) -> int:
    from pipeline.feast_online import format_observation, read_online_observation
    from pipeline.live import wall_clock
    from pipeline.metrics import write_pipeline_metrics
    from pipeline.quickstart import online_store, open_offline_store
    from pipeline.run import run_configured_pipeline
    from pipeline.state_file import read_redis_state

    with ExitStack() as stack:
        running_up = read_redis_state(settings.data_dir) if settings.redis is None else None
        if running_up is not None:
            settings = settings.with_overrides(redis=running_up)
            print(f"redis: using {running_up.host}:{running_up.port} (data/redis.env of `up`)")
        redis = stack.enter_context(online_store(settings))
        offline = stack.enter_context(open_offline_store(settings))
        now = wall_clock()
        try:
            result = run_configured_pipeline(settings, redis, now, offline)
        except Exception:
            write_pipeline_metrics(settings.metrics_folder, finished_at=wall_clock(), success=False)
            raise
        write_pipeline_metrics(
            settings.metrics_folder,
            finished_at=wall_clock(),
            materialized=result.materialized,
            l1_rows=result.offline.rows,
        )
        print(result.summary())
        assert result.store is not None
        stale = False
        for symbol in settings.symbols:
            observation = read_online_observation(result.store, symbol, now)
            stale = stale or any(v.status != "fresh" for v in observation.views)
            print()
            print(format_observation(observation))
        if stale:
            print(
                "\nSome views hold no row younger than their TTL: the history follows the session "
                "calendar (Mon-Fri 13:00-18:00 UTC). `python -m pipeline up` adds the live mode, "
                "which keeps every view fresh at any hour."
            )
    return 0


def _utc(text: str) -> datetime:
    import pandas as pd

    moment = pd.Timestamp(text)
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    result: datetime = moment.to_pydatetime()
    return result


def command_training_set(settings: PipelineSettings, args: argparse.Namespace) -> int:
    from pipeline.live import wall_clock
    from pipeline.point_in_time import join
    from pipeline.quickstart import open_offline_store
    from pipeline.run import prepare_offline_tables
    from pipeline.training_set import concatenate, grid, parse_every, write_training_set

    try:
        timestamps = grid(_utc(args.start), _utc(args.end), parse_every(args.every))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    began = time.perf_counter()
    rows = len(timestamps) * len(settings.symbols)
    moments = timestamps.as_unit("ns").asi8
    parts = []
    with ExitStack() as stack:
        offline = stack.enter_context(open_offline_store(settings))
        prepare_offline_tables(settings, wall_clock(), offline)
        # One symbol at a time: memory holds one symbol's rows of the range, and the output.
        progress = stack.enter_context(
            tqdm(total=rows, unit="rows", desc="training set", disable=rows < 200_000)
        )
        for symbol in settings.symbols:
            tables = offline.read_feature_tables([symbol], int(moments[0]), int(moments[-1]))
            part = join(tables, [symbol], moments)
            if len(part.values) == 0:
                print(
                    f"error: no complete row of {symbol} in {timestamps[0]} .. "
                    f"{timestamps[-1]}: the offline tables hold no value of it within the "
                    "views' TTLs there",
                    file=sys.stderr,
                )
                return 1
            parts.append(part)
            progress.update(len(moments))
    training = concatenate(parts)
    path = write_training_set(args.out, training)
    print(
        f"training set: {len(training.values)} rows x {contract_width()} float32 "
        f"({training.dropped} of {rows} grid rows dropped: a view had no value within its "
        f"TTL) in {time.perf_counter() - began:.1f} s -> {path} "
        f"({path.stat().st_size / 1e6:.1f} MB)"
    )
    return 0


def contract_width() -> int:
    from canonical.contract import N_FEATURES

    return N_FEATURES


def command_feast(settings: PipelineSettings, feast_args: Sequence[str]) -> int:
    from pipeline.state_file import read_redis_state, state_file_path

    redis = settings.redis or read_redis_state(settings.data_dir)
    env = dict(os.environ)
    if redis is None:
        print(
            "warning: no Redis configured (FEAST_REDIS_HOST unset and no "
            f"{state_file_path(settings.data_dir)}): commands that touch the online store will "
            "fail; start `python -m pipeline up` or set FEAST_REDIS_HOST/PORT",
            file=sys.stderr,
        )
    else:
        env.update(redis.feast_env())
    from offline_store.factory import MissingDatabaseError, open_store

    try:
        offline = open_store(settings.data_dir, settings.postgres, settings.offline_store)
    except MissingDatabaseError:
        print(
            "error: FEAST_OFFLINE_STORE_TYPE=postgres needs POSTGRES_HOST (and PORT/DB/USER/"
            "PASSWORD) for the feast CLI: an embedded PostgreSQL lives only as long as the "
            "command that started it",
            file=sys.stderr,
        )
        return 2
    env.update(offline.feast_env())
    feast_args = [
        "-f",
        str(settings.repo_dir / offline.feast_yaml(settings.repo_dir).name),
        *feast_args,
    ]
    sibling = Path(sys.executable).parent / "feast"
    executable = str(sibling) if sibling.exists() else shutil.which("feast")
    if executable is None:
        print("error: the feast CLI is not installed (pip install 'feast[redis]')", file=sys.stderr)
        return 2
    return subprocess.call([executable, *feast_args], cwd=settings.repo_dir, env=env)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        _check_repository(settings)
    except SettingsError as exc:
        return _usage_error(str(exc))
    if args.command == "feast":
        return command_feast(settings, args.feast_args)
    if args.command in (*OPS_COMMANDS, *SCHEDULED_COMMANDS):
        return _run_step(args, settings)
    return _run_data_command(args, settings)


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _check_repository(settings: PipelineSettings) -> None:
    if not (settings.repo_dir / "feature_store.yaml").is_file():
        raise SettingsError(
            f"no Feast repository at {settings.repo_dir}: pass --repo-dir (or set "
            "USDCOP_FEATURE_REPO) to a feature_repo/ folder, data/ beside it; an installed "
            "package ships none"
        )


def _run_step(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """A scheduled step or an on-call command (check-contract reads one file: no pandas, no
    Feast, no layout check)."""
    from pipeline import interval_cli

    if args.command in OPS_COMMANDS:
        from pipeline import ops_cli

        return ops_cli.run_command(args.command, args, settings)
    if args.command != "check-contract":
        from pipeline.run import RepoLayoutError, check_repo_layout

        try:
            check_repo_layout(settings.repo_dir, settings.data_dir)
        except RepoLayoutError as exc:
            return _usage_error(str(exc))
    return interval_cli.run_command(args.command, args, settings)


def _run_data_command(args: argparse.Namespace, settings: PipelineSettings) -> int:
    """run, training-set, live, up: the layout checked before anything starts."""
    from pipeline.run import RepoLayoutError, check_repo_layout

    def live() -> int:
        from pipeline.quickstart import run_live

        return run_live(settings, exit_after_s=args.exit_after_s)

    commands: dict[str, Callable[[], int]] = {
        "run": lambda: command_run(settings),
        "training-set": lambda: command_training_set(settings, args),
        "live": live,
        "up": lambda: command_up(settings, args),
    }
    try:
        check_repo_layout(settings.repo_dir, settings.data_dir)
        return commands[args.command]()
    except RepoLayoutError as exc:
        return _usage_error(str(exc))
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "devstack":
            raise
        return _usage_error(
            f"{args.command} starts embedded processes from the repository's devstack/, "
            "which an installed package does not ship: set FEAST_REDIS_HOST (and POSTGRES_HOST) "
            "or run it from a clone"
        )
    except KeyboardInterrupt:
        return 130


def command_up(settings: PipelineSettings, args: argparse.Namespace) -> int:
    from devstack.server_process import ServerStartError
    from pipeline.quickstart import run_up
    from server.config import ServerConfig

    try:
        # The server's own settings (USDCOP_CACHE_TTL_MS, ...) still apply to its child.
        server_defaults = ServerConfig.from_env(os.environ)
    except SettingsError as exc:
        print(f"error: server configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return run_up(settings, exit_after_s=args.exit_after_s, server_defaults=server_defaults)
    except ServerStartError as exc:
        # The server logged why (e.g. the port is in use) just above.
        print(f"error: the observation server did not start: {exc}", file=sys.stderr)
        return 1


def _exit_without_native_teardown(code: int) -> None:
    """Leave once everything of ours is closed, skipping the native libraries' static
    destructors: a scheduled step that had finished its work once ended with SIGABRT
    ("terminate called without an active exception") in a native thread pool's teardown,
    which a scheduler would count as a failed task."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_without_native_teardown(main())
