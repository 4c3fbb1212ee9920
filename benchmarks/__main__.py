"""Benchmarks of GetObservation against the gRPC floor and Feast's servers.

``python -m benchmarks run --profile quick|full|smoke``; ``python -m benchmarks echo-server``;
``python -m benchmarks load --target HOST:PORT --rate R --duration S`` (any running server);
``python -m benchmarks compare A/results.json B/results.json`` (two runs, target by target);
``python -m benchmarks verdicts A/results.json B/results.json C/results.json`` (do they agree).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run every scenario in every load mode")
    run.add_argument("--profile", choices=("smoke", "quick", "full"), default="quick")
    run.add_argument("--results-dir", type=Path, default=None, help="default benchmarks/results")
    echo = commands.add_parser("echo-server", help="serve the echo floor (used by `run`)")
    echo.add_argument("--port", type=int, default=0)
    from client.load import command as load

    load.add_arguments(
        commands.add_parser("load", help="open-loop load test of a running server at a fixed rate")
    )
    from benchmarks import training_set

    training_set.add_arguments(
        commands.add_parser("training-set", help="training-set wall time and memory, vs Feast")
    )
    from benchmarks import compare, footprint

    compare.add_arguments(
        commands.add_parser("compare", help="two results.json files, target by target")
    )
    compare.add_verdicts_arguments(
        commands.add_parser(
            "verdicts", help="several runs' verdicts side by side; exit 1 when any differs"
        )
    )

    footprint.add_arguments(
        commands.add_parser("footprint", help="start to SERVING and RSS per serving process")
    )
    args = parser.parse_args(argv)
    subcommands = {
        "compare": compare.main,
        "verdicts": compare.verdicts_main,
        "footprint": footprint.main,
        "training-set": training_set.main,
        "load": load.main,
    }
    if args.command in subcommands:
        return subcommands[args.command](args)
    if args.command == "echo-server":
        from benchmarks.echo_server import main as echo_main

        return echo_main(args.port)
    from benchmarks.runner import RESULTS_DIR, BenchmarkError, run_benchmarks
    from devstack.server_process import ServerStartError

    try:
        run_benchmarks(args.profile, args.results_dir or RESULTS_DIR)
    except (BenchmarkError, ServerStartError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
