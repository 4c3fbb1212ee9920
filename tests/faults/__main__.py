"""``python -m tests.faults``: run every fault scenario once and print the table.

Exit code 0 when every invariant held, 1 otherwise (the broken rows are marked ``BROKEN``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from tests.faults import reliability, scenarios
from tests.faults.scenarios import Row
from tests.faults.stack import FaultStack, fault_stack

RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def table(rows: Sequence[Row]) -> str:
    lines = ["| scenario | figure | value | invariant |", "|---|---|---|---|"]
    lines += [
        f"| {r.scenario} | {r.figure} | {r.value} | {'ok' if r.ok else 'BROKEN'} |" for r in rows
    ]
    return "\n".join(lines)


def _git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(soak_s: float, fuzz_n: int, results_dir: Path) -> list[Row]:
    steps: list[tuple[str, Callable[[FaultStack], list[Row]]]] = [
        ("fuzz", lambda stack: scenarios.fuzz_rows(stack, fuzz_n)),
        ("redis faults", scenarios.redis_fault_rows),
        ("corrupt fields", scenarios.corrupt_rows),
        ("concurrency", scenarios.concurrency_rows),
        ("sigterm", scenarios.sigterm_rows),
        ("watch saturation", reliability.watch_saturation_rows),
        ("second instance", reliability.second_instance_rows),
        ("flush then push", reliability.refill_rows),
        ("skewed push", reliability.skewed_push_rows),
        ("soak", lambda stack: scenarios.soak_rows(stack, soak_s)),
    ]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="usdcop-faults-") as scratch:
        workdir = Path(scratch)
        with fault_stack(workdir) as stack:
            stack.log_dir = results_dir / "logs"
            stack.log_dir.mkdir(parents=True, exist_ok=True)
            for name, step in steps:
                began = time.monotonic()
                print(f"-- {name} ...", flush=True)
                try:
                    rows += step(stack)
                except Exception as error:  # a scenario that crashes is a broken invariant
                    rows.append(Row(name, "scenario crashed", f"{type(error).__name__}: {error}",
                                    ok=False))  # fmt: skip
                print(f"   {name}: {time.monotonic() - began:.0f} s", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--soak-s", type=float, default=600.0, help="soak duration, s")
    parser.add_argument("--fuzz-n", type=int, default=10_000, help="fuzzed requests")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = args.results_dir or RESULTS_DIR / f"faults-{stamp}"
    results_dir.mkdir(parents=True, exist_ok=True)
    sha = _git_sha()  # of the code under test: taken before anything runs
    began = time.monotonic()
    rows = run(args.soak_s, args.fuzz_n, results_dir)
    elapsed = time.monotonic() - began
    text = table(rows)
    header = (
        f"fault suite, git {sha}, {stamp}, {elapsed:.0f} s "
        f"(python -m tests.faults --soak-s {args.soak_s:g} --fuzz-n {args.fuzz_n})"
    )
    print(f"\n{header}\n\n{text}\n")
    (results_dir / "results.md").write_text(f"{header}\n\n{text}\n")
    (results_dir / "results.json").write_text(
        json.dumps({"header": header, "rows": [r.__dict__ for r in rows]}, indent=2, sort_keys=True)
    )
    broken = [r for r in rows if not r.ok]
    if broken:
        print(f"{len(broken)} invariant(s) broken; logs in {results_dir}/logs", file=sys.stderr)
        return 1
    print(f"every invariant held; results in {results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
