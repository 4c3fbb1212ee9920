"""Results of a run: the JSON record, the markdown tables with the targets, the p99 plot.

What enters: the run's metadata and its measurements (pooled histograms already summarized).
What leaves: ``results.json``, ``results.md`` and ``p99_vs_rate.png`` in the run's folder,
and the markdown text (printed by the runner).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import intervals
from benchmarks.conditions import describe


@dataclass(frozen=True)
class Target:
    """One ratio target of the issue."""

    label: str
    numerator: str
    denominator: str
    metric: str
    """``p99`` (latency, lower is better) or ``throughput`` (higher is better)."""
    mode: str
    bound: float
    at_most: bool
    floor: bool = True
    """Also report the echo floor's score on the same ratio (meaningless for twin servers)."""


def _latency(label: str, numerator: str, denominator: str, bound: float) -> Target:
    return Target(label, numerator, denominator, "p99", "sequential", bound, True)


TARGETS: tuple[Target, ...] = (
    _latency("observation_cached p99 / echo p99", "observation_cached", "echo", 1.10),
    Target(
        "metrics cost: observation_cached p99 (metrics on) / observation_cached_metrics_off p99",
        "observation_cached",
        "observation_cached_metrics_off",
        "p99",
        "sequential",
        1.05,
        True,
        floor=False,
    ),
    Target(
        "served-log cost: observation_cached p99 (log on) / observation_cached_log_off p99",
        "observation_cached",
        "observation_cached_log_off",
        "p99",
        "sequential",
        1.05,
        True,
        floor=False,
    ),
    _latency("observation_redis p99 / echo p99", "observation_redis", "echo", 1.50),
    _latency("observation_fallback p99 / echo p99", "observation_fallback", "echo", 1.20),
    _latency("observation_redis p99 / feast_listen p99", "observation_redis", "feast_listen", 0.25),
    _latency("observation_redis p99 / feast_serve p99", "observation_redis", "feast_serve", 0.20),
    _latency(
        "observation_invalidated p99 / feast_listen p99",
        "observation_invalidated",
        "feast_listen",
        0.25,
    ),
    _latency(
        "observation_invalidated p99 / feast_serve p99",
        "observation_invalidated",
        "feast_serve",
        0.20,
    ),
    _latency("observation_invalidated p99 / echo p99", "observation_invalidated", "echo", 1.10),
    Target(
        "observation_cached max throughput / echo max throughput",
        "observation_cached",
        "echo",
        "throughput",
        "closed",
        0.90,
        False,
    ),
)
"""The issue's targets; the sequential p99 ratios use the one-call-in-flight mode."""

OPEN_LOOP_CACHED_BOUND = 1.10
"""observation_cached / echo latency at each fixed open-loop rate (capacity-relative rates have
no target: they move with the run's measured capacity, so they do not compare across runs)."""
OPEN_LOOP_PAIR = ("observation_cached", "echo")
"""The open-loop target's numerator and floor: the scenarios every open-loop round runs."""
OPEN_LOOP_P99_MIN_SAMPLES = 1000
"""An open-loop round's ratio compares p99s when each side's round has at least this many
planned calls (ten in the 1% tail); below it (low rates, short rounds) it compares p95s."""


Row = dict[str, Any]


def open_loop_percentile(planned_calls_per_round: float) -> str:
    """The percentile an open-loop round's ratio compares: ``p99``, or ``p95`` when a round
    has too few calls for its own p99 (it would be one of the two slowest calls)."""
    return "p99" if planned_calls_per_round >= OPEN_LOOP_P99_MIN_SAMPLES else "p95"


def _find(rows: list[Row], scenario: str, mode: str, rate: float | None = None) -> Row | None:
    for row in rows:
        if row["scenario"] != scenario or row["mode"] != mode:
            continue
        offered = row["offered_rate"]
        if rate is None or (offered is not None and math.isclose(offered, rate)):
            return row
    return None


def _value(row: Row | None, key: str) -> float | None:
    return None if row is None else row.get(key)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    if math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def _same_rate(row: Row, rate: float | None) -> bool:
    offered = row.get("offered_rate")
    return rate is None or (offered is not None and math.isclose(offered, rate))


def _by_round(
    rounds: list[Row], scenario: str, mode: str, rate: float | None = None
) -> dict[int, Row]:
    return {
        r["round"]: r
        for r in rounds
        if r["scenario"] == scenario and r["mode"] == mode and _same_rate(r, rate)
    }


def per_round_ratios(  # noqa: PLR0913 - which rows pair, keyword-only
    rounds: list[Row],
    numerator: str,
    denominator: str,
    *,
    mode: str,
    key: str,
    rate: float | None = None,
) -> list[float]:
    """``numerator``'s figure / ``denominator``'s figure, one ratio per round both ran in
    (a round without a figure has none)."""
    nums = _by_round(rounds, numerator, mode, rate)
    dens = _by_round(rounds, denominator, mode, rate)
    ratios = []
    for index in sorted(nums.keys() & dens.keys()):
        value = _ratio(_value(nums[index], key), _value(dens[index], key))
        if value is not None:
            ratios.append(value)
    return ratios


def _estimate_fields(estimate: intervals.Estimate | None) -> dict[str, Any]:
    if estimate is None:
        return {"median": None, "low": None, "high": None, "rounds": 0, "coverage": None}
    return {
        "median": estimate.median,
        "low": estimate.low,
        "high": estimate.high,
        "rounds": estimate.rounds,
        "coverage": estimate.coverage,
    }


def _judge(  # noqa: PLR0913 - a verdict's record fields, keyword-only
    label: str,
    ratios: list[float],
    *,
    mode: str,
    metric: str,
    bound: float,
    at_most: bool,
    rate: float | None = None,
) -> dict[str, Any]:
    estimate = intervals.median_interval(ratios)
    return {
        "target": label,
        "mode": mode,
        "metric": metric,
        "rate": rate,
        **_estimate_fields(estimate),
        "ratios": ratios,
        "bound": f"{'<=' if at_most else '>='} {bound:.2f}",
        "bound_value": bound,
        "at_most": at_most,
        "verdict": intervals.verdict(estimate, bound, at_most=at_most),
    }


def evaluate_targets(rounds: list[Row], open_percentiles: dict[float, str]) -> list[dict[str, Any]]:
    """Each target: the median of its per-round ratios, a 95% interval, a verdict.

    ``rounds`` holds one summary per scenario, mode, rate and round (``round``, ``p95``,
    ``p99``, ``achieved_rate``, ``saturated``); ``open_percentiles`` maps each open-loop target
    rate (fixed rates only) to the percentile its rounds compare (:func:`open_loop_percentile`).
    A saturated round's ratio counts like any other (timed from the schedule, its p99 is what a
    caller saw); the target's ``why`` says how many rounds saturated.
    """
    out: list[dict[str, Any]] = []
    for target in TARGETS:
        key = "p99" if target.metric == "p99" else "achieved_rate"
        ratios = per_round_ratios(
            rounds, target.numerator, target.denominator, mode=target.mode, key=key
        )
        verdict = _judge(
            target.label,
            ratios,
            mode=target.mode,
            metric=target.metric,
            bound=target.bound,
            at_most=target.at_most,
        )
        if target.denominator != "echo" and target.floor:
            # The same ratio for the echo floor: what a server costing nothing beyond the gRPC
            # stack would score in this run. A target below it cannot be met on this machine.
            floor = intervals.median_interval(
                per_round_ratios(rounds, "echo", target.denominator, mode=target.mode, key=key)
            )
            verdict["floor"] = _estimate_fields(floor)
        out.append(verdict)
    for rate, percentile in sorted(open_percentiles.items()):
        label = f"observation_cached {percentile} / echo {percentile} at {rate:.0f}/s"
        ratios = per_round_ratios(
            rounds, "observation_cached", "echo", mode="open", key=percentile, rate=rate
        )
        verdict = _judge(
            label,
            ratios,
            mode="open",
            metric=percentile,
            bound=OPEN_LOOP_CACHED_BOUND,
            at_most=True,
            rate=rate,
        )
        why = []
        if percentile != "p99":
            why.append(f"p95: rounds under {OPEN_LOOP_P99_MIN_SAMPLES} calls, too few for a p99")
        for scenario in OPEN_LOOP_PAIR:
            rows = _by_round(rounds, scenario, "open", rate).values()
            if saturated := sum(1 for r in rows if r.get("saturated")):
                why.append(f"{scenario} saturated in {saturated} of {len(rows)} rounds")
        if why:
            verdict["why"] = "; ".join(why)
        out.append(verdict)
    return out


def metrics_cost_note(rows: list[Row]) -> str:
    """The cached path's p99 / echo p99 with metrics on and off (sequential, pooled)."""
    echo = _value(_find(rows, "echo", "sequential"), "p99")
    on = _ratio(_value(_find(rows, "observation_cached", "sequential"), "p99"), echo)
    off = _ratio(_value(_find(rows, "observation_cached_metrics_off", "sequential"), "p99"), echo)
    if on is None or off is None:
        return "metrics cost: n/a (a scenario has no sequential p99)"
    return (
        f"metrics cost (sequential p99, pooled over the rounds): observation_cached / echo = "
        f"{on:.3f} with metrics on, {off:.3f} with metrics off; on / off = {on / off:.3f} "
        "(the target row judges the per-round ratios)"
    )


def target_estimate(target: dict[str, Any]) -> intervals.Estimate | None:
    """The :class:`~benchmarks.intervals.Estimate` stored in a target row (or its floor)."""
    if target.get("median") is None:
        return None
    return intervals.Estimate(
        target["median"],
        target["low"],
        target["high"],
        target["rounds"],
        target.get("coverage"),
    )


def _ms(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _table(
    header: list[str], rows: list[list[str]], right: frozenset[int] | None = None
) -> list[str]:
    """A markdown table; numeric columns (all but the first, unless ``right`` says) align right."""
    numeric = right if right is not None else frozenset(range(1, len(header)))
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    return ["| " + " | ".join(cells) + " |" for cells in (header, align, *rows)]


def _percentiles(row: Row) -> list[str]:
    return [_ms(row["p50"]), _ms(row["p90"]), _ms(row["p99"]), _ms(row["p99_9"]), _ms(row["max"])]


def render_markdown(record: dict[str, Any]) -> str:
    """The run as markdown: one table per load mode, then the targets with pass/miss."""
    run = record["run"]
    rows: list[Row] = record["measurements"]
    packages = run["packages"]
    lines = [
        f"# Benchmark run {run['timestamp']} (profile {run['profile']})",
        "",
        f"git {run['git_sha']}{' (dirty)' if run['git_dirty'] else ''}, {run['cpu_count']} CPUs, "
        f"python {run['python']}, grpcio {packages.get('grpcio')}, feast {packages.get('feast')}. "
        "Latencies in ms from pooled HdrHistograms (µs resolution); "
        "compare ratios within this run only.",
        "",
        f"Machine conditions: {describe(run.get('conditions'))}.",
        "",
        "## Sequential (one call in flight)",
        "",
    ]
    lines += _table(
        ["scenario", "calls", "p50", "p90", "p99", "p99.9", "max", "calls/s", "errors"],
        [
            [
                r["scenario"],
                str(r["count"]),
                *_percentiles(r),
                _rate(r["achieved_rate"]),
                str(r["errors"]),
            ]
            for r in rows
            if r["mode"] == "sequential"
        ],
    )
    lines += [
        "",
        f"## Closed loop (max throughput: {run['closed_loop_connections']} connections x "
        f"{run['closed_loop_in_flight']} in flight; latencies include queueing)",
        "",
    ]
    lines += _table(
        ["scenario", "calls/s", "p50", "p90", "p99", "p99.9", "max", "errors"],
        [
            [r["scenario"], _rate(r["achieved_rate"]), *_percentiles(r), str(r["errors"])]
            for r in rows
            if r["mode"] == "closed"
        ],
    )
    open_header = [
        "scenario",
        "offered/s",
        "achieved/s",
        "calls",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "sender lag p99",
        "errors",
    ]

    def open_table(kind: str) -> list[str]:
        selected = sorted(
            (r for r in rows if r["mode"] == "open" and r.get("rate_kind", "fixed") == kind),
            key=lambda r: (r["scenario"], r["offered_rate"]),
        )
        return _table(
            open_header,
            [
                [
                    r["scenario"],
                    _rate(r["offered_rate"]),
                    _rate(r["achieved_rate"]),
                    str(r["count"]),
                    *_percentiles(r),
                    _ms(r.get("send_lag_p99")),
                    f"{r['errors']}{' (saturated)' if r.get('saturated') else ''}",
                ]
                for r in selected
            ],
        )

    lines += [
        "",
        "## Open loop, fixed rates (each call timed from its scheduled send; rounds pooled)",
        "",
        *open_table("fixed"),
        "",
        "## Open loop, capacity-relative rates (fractions of echo's closed-loop throughput in "
        "this run: they move with the machine, so they have no target and do not compare "
        "across runs)",
        "",
        *open_table("relative"),
    ]
    if record.get("footprint"):
        from benchmarks.footprint import Footprint, markdown

        lines += ["", *markdown([Footprint(**row) for row in record["footprint"]])]
    lines += [
        "",
        "## Targets (median of per-round ratios [95% interval])",
        "",
        "Each round runs the scenarios of a comparison back to back in a shuffled order; a"
        " ratio divides two figures of the same round. `pass`: the whole interval is inside"
        " the bound; `miss`: wholly outside; `undecided`: the bound lies inside the interval"
        " (this run cannot tell, the bound sits within the machine's noise). `echo floor`: the"
        " same ratio with the echo floor in place of our server (against Feast's servers)."
        " Footprint targets: the median of one value per start (seconds, MB), not a ratio.",
        "",
    ]
    lines += _table(
        ["target", "mode", "ratio [95% interval]", "rounds", "bound", "verdict", "echo floor"],
        [
            [
                t["target"],
                t["mode"],
                intervals.format_estimate(target_estimate(t)),
                str(t["rounds"]),
                t["bound"],
                t["verdict"] + (f" ({t['why']})" if t.get("why") else ""),
                intervals.format_estimate(target_estimate(t["floor"])) if t.get("floor") else "-",
            ]
            for t in record["targets"]
        ],
        right=frozenset({2, 3, 6}),
    )
    verdicts = [t["verdict"] for t in record["targets"]]
    lines += [
        "",
        ", ".join(f"{verdicts.count(v)} {v}" for v in intervals.VERDICTS if v in verdicts),
    ]
    notes = record.get("notes", [])
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def plot_p99(record: dict[str, Any], path: Path) -> None:
    """p99 against offered rate (open loop), one line per scenario, log latency axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5), dpi=110)
    by_scenario: dict[str, list[tuple[float, float]]] = {}
    for row in record["measurements"]:
        if row["mode"] == "open" and row["p99"] is not None and not math.isnan(row["p99"]):
            by_scenario.setdefault(row["scenario"], []).append((row["offered_rate"], row["p99"]))
    for scenario, points in sorted(by_scenario.items()):
        points.sort()
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=scenario)
    axis.set_xlabel("offered rate (calls/s)")
    axis.set_ylabel("p99 latency (ms, log scale)")
    axis.set_yscale("log")
    axis.set_title(
        f"p99 vs offered rate, open loop ({record['run']['timestamp']}, {record['run']['profile']})"
    )
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_outputs(record: dict[str, Any], out_dir: Path) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    markdown = render_markdown(record)
    (out_dir / "results.md").write_text(markdown)
    plot_p99(record, out_dir / "p99_vs_rate.png")
    return markdown
