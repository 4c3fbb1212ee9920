"""``python -m agent run --target ADDR --policy FILE [--once | --watch]``: the inference agent.

Exit codes: 0 done (``--once``: the decision was taken, pushed or held), 1 a policy or start-up
error (one line), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.loop import Agent, AgentSettings
from agent.policy import PolicyError, load_policy
from client._version import version_line

DEFAULT_POLICY = Path(__file__).resolve().parent / "policies" / "example.npz"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__)
    parser.add_argument("--version", action="version", version=version_line("python -m agent"))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="observe -> act -> push at each completed bar")
    run.add_argument("--target", default="127.0.0.1:50051", help="the observation server")
    run.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="a policy .npz")
    run.add_argument("--symbol", default="USDCOP")
    when = run.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one decision now, then exit")
    when.add_argument(
        "--watch",
        action="store_true",
        help="decide on each new bar WatchObservations shows (default: 5 s after each bar)",
    )
    run.add_argument("--max-fallback-age-s", type=float, default=600.0)
    run.add_argument(
        "--decision-log",
        type=Path,
        default=Path("data/offline/agent_decisions"),
        help="a .jsonl file, or a folder of daily files [data/offline/agent_decisions]",
    )
    run.add_argument(
        "--metrics-dir",
        type=Path,
        default=None,
        help="folder of the agent's node-exporter textfile usdcop_agent.prom [none]",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from client import ObservationClient

    settings = AgentSettings(
        args.symbol, args.max_fallback_age_s, args.decision_log, args.metrics_dir
    )
    with ObservationClient(args.target) as client:
        agent = Agent(client, policy, settings)
        if args.once:
            decision = agent.step()
            print(f"{decision.action} {decision.position} ({decision.reason})")
            return 0
        try:
            agent.run_on_changes() if args.watch else agent.run()
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
