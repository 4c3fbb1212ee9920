"""Two benchmark runs, target by target: the before/after figure of a change.

What enters: two ``results.json`` files (A, e.g. main; B, e.g. a branch). What leaves: a
markdown table printed to stdout: each target's median ratio and 95% interval in A and in
B, both verdicts, B's median over A's, and whether the intervals say the target moved.

    python -m benchmarks compare benchmarks/results/A/results.json benchmarks/results/B/results.json

Two intervals that overlap do not show a change (the difference is within the noise of the
two runs); disjoint intervals do. A target only one run has is listed with ``-`` for the
other (e.g. a rate or a target added between the runs).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.conditions import describe
from benchmarks.intervals import Estimate, format_estimate
from benchmarks.report import target_estimate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", type=Path, help="results.json of run A (e.g. main)")
    parser.add_argument("after", type=Path, help="results.json of run B (e.g. a branch)")


def _estimate(target: dict[str, Any] | None) -> Estimate | None:
    if target is None:
        return None
    if "median" not in target:  # a record from before the rounds: one ratio, no interval
        value = target.get("value")
        return None if value is None else Estimate(float(value), None, None, 1)
    return target_estimate(target)


def movement(before: Estimate | None, after: Estimate | None) -> str:
    """``lower`` / ``higher`` when B's interval lies wholly below / above A's; ``no clear
    change`` when they overlap; ``-`` when either lacks an interval."""
    if before is None or after is None:
        return "-"
    if None in (before.low, before.high, after.low, after.high):
        return "-"
    assert before.low is not None and before.high is not None
    assert after.low is not None and after.high is not None
    if after.high < before.low:
        return "lower"
    if after.low > before.high:
        return "higher"
    return "no clear change"


def compare(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The markdown comparison of two results records."""
    a_targets = {t["target"]: t for t in before.get("targets", [])}
    b_targets = {t["target"]: t for t in after.get("targets", [])}
    labels = list(a_targets) + [label for label in b_targets if label not in a_targets]
    a_run, b_run = before["run"], after["run"]
    lines = [
        f"# A {a_run['timestamp']} ({a_run['profile']}, git {a_run['git_sha'][:12]}) vs "
        f"B {b_run['timestamp']} ({b_run['profile']}, git {b_run['git_sha'][:12]})",
        "",
        "Median of per-round ratios [95% interval]. `lower`/`higher`: B's interval"
        " lies wholly below/above A's; `no clear change`: they overlap.",
        "",
        "| target | bound | A | A verdict | B | B verdict | B / A | B vs A |",
        "| --- | --- | ---: | --- | ---: | --- | ---: | --- |",
    ]
    for label in labels:
        a_target, b_target = a_targets.get(label), b_targets.get(label)
        a_est, b_est = _estimate(a_target), _estimate(b_target)
        bound = (a_target or b_target or {}).get("bound", "-")
        ratio = (
            f"{b_est.median / a_est.median:.3f}"
            if a_est is not None and b_est is not None and a_est.median
            else "-"
        )
        lines.append(
            f"| {label} | {bound} | {format_estimate(a_est)} | "
            f"{(a_target or {}).get('verdict', '-')} | {format_estimate(b_est)} | "
            f"{(b_target or {}).get('verdict', '-')} | {ratio} | {movement(a_est, b_est)} |"
        )
    return "\n".join(lines) + "\n"


def intervals_overlap(estimates: Sequence[Estimate | None]) -> str:
    """``yes`` when some value lies inside every run's interval (the runs do not contradict
    each other, whatever their verdicts), ``no`` when none does, ``-`` when a run has none."""
    lows: list[float] = []
    highs: list[float] = []
    for estimate in estimates:
        if estimate is None or estimate.low is None or estimate.high is None:
            return "-"
        lows.append(estimate.low)
        highs.append(estimate.high)
    return "yes" if max(lows) <= min(highs) else "no"


def verdicts(records: Sequence[dict[str, Any]]) -> tuple[str, bool]:
    """Each target's verdict in each run, and whether every target has the same verdict in
    every run (``undecided`` counts as the same only where every run says ``undecided``; a
    target missing from a run differs).

    The ``overlap`` column says whether one value lies inside every run's interval: where
    verdicts differ but the intervals overlap, the runs agree within their noise and the
    bound sits near an interval's end (one run's interval reaches past it, another's stops
    short), which is how a target near its bound changes between ``undecided`` and a decided
    verdict. Where they do not overlap, the runs contradict each other: the machine's level
    moved between them (see the conditions row) or the intervals missed."""
    per_run = [{t["target"]: t for t in record.get("targets", [])} for record in records]
    labels = list(dict.fromkeys(label for targets in per_run for label in targets))
    header = " | ".join(record["run"]["timestamp"] for record in records)
    lines = [
        f"| target | bound | {header} | same | overlap |",
        "| --- | --- |" + " --- |" * len(records) + " --- | --- |",
    ]
    differing = []
    disjoint = []
    for label in labels:
        found = [targets.get(label) for targets in per_run]
        said = [t["verdict"] if t else "-" for t in found]
        same = len(set(said)) == 1 and said[0] != "-"
        estimates = [_estimate(t) for t in found]
        overlap = intervals_overlap(estimates)
        if not same:
            differing.append(label)
        if overlap == "no":
            disjoint.append(label)
        bound = next(t for t in found if t)["bound"]
        cells = " | ".join(
            f"{v} {format_estimate(e)}" if t else "-"
            for v, t, e in zip(said, found, estimates, strict=True)
        )
        lines.append(f"| {label} | {bound} | {cells} | {'yes' if same else 'NO'} | {overlap} |")
    if any(record["run"].get("conditions") for record in records):
        lines.append(
            "| machine conditions | | "
            + " | ".join(describe(record["run"].get("conditions")) for record in records)
            + " | | |"
        )
    agreeing = len(labels) - len(differing)
    summary = f"{agreeing} of {len(labels)} targets: the same verdict in all {len(records)} runs"
    if differing:
        summary += "; different: " + ", ".join(differing)
    summary += (
        f"\nintervals without a common value: {', '.join(disjoint)}"
        if disjoint
        else "\nevery target's intervals share a value across the runs"
    )
    return "\n".join([*lines, "", summary]) + "\n", not differing


def main(args: argparse.Namespace) -> int:
    before = json.loads(Path(args.before).read_text())
    after = json.loads(Path(args.after).read_text())
    print(compare(before, after), end="")
    return 0


def add_verdicts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, nargs="+", help="results.json of each run")


def verdicts_main(args: argparse.Namespace) -> int:
    """Exit 0 when every target has the same verdict in every run, 1 otherwise."""
    records = [json.loads(Path(path).read_text()) for path in args.results]
    text, same = verdicts(records)
    print(text, end="")
    return 0 if same else 1
