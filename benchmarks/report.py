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
"""observation_cached p99 / echo p99 at each open-loop rate up to half of echo's saturation."""


Row = dict[str, Any]


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


def evaluate_targets(
    rows: list[dict[str, Any]], echo_saturation: float | None
) -> list[dict[str, Any]]:
    """Each target's ratio within this run, and whether it passes."""
    out: list[dict[str, Any]] = []
    for target in TARGETS:
        num = _find(rows, target.numerator, target.mode)
        den = _find(rows, target.denominator, target.mode)
        key = "p99" if target.metric == "p99" else "achieved_rate"
        value = _ratio(_value(num, key), _value(den, key))
        verdict = _verdict(target.label, target.mode, value, target.bound, target.at_most)
        if target.denominator != "echo" and target.floor:
            # The same ratio for the echo floor: what a server costing nothing beyond the gRPC
            # stack would score in this run. A target below it cannot be met on this machine.
            floor = _find(rows, "echo", target.mode)
            verdict["floor"] = _ratio(_value(floor, key), _value(den, key))
        out.append(verdict)
    if echo_saturation:
        for row in rows:
            if row["scenario"] != "observation_cached" or row["mode"] != "open":
                continue
            if row["offered_rate"] > echo_saturation / 2 + 1e-9:
                continue
            echo = _find(rows, "echo", "open", row["offered_rate"])
            value = _ratio(row["p99"], _value(echo, "p99"))
            label = f"observation_cached p99 / echo p99 at {row['offered_rate']:.0f}/s"
            out.append(_verdict(label, "open", value, OPEN_LOOP_CACHED_BOUND, True))
    return out


def metrics_cost_note(rows: list[Row]) -> str:
    """The cached path's p99 / echo p99 with metrics on and off (sequential, this run)."""
    echo = _value(_find(rows, "echo", "sequential"), "p99")
    on = _ratio(_value(_find(rows, "observation_cached", "sequential"), "p99"), echo)
    off = _ratio(_value(_find(rows, "observation_cached_metrics_off", "sequential"), "p99"), echo)
    if on is None or off is None:
        return "metrics cost: n/a (a scenario has no sequential p99)"
    return (
        f"metrics cost (sequential p99): observation_cached / echo = {on:.3f} with metrics on, "
        f"{off:.3f} with metrics off; on / off = {on / off:.3f} (target <= 1.05)"
    )


def _verdict(
    label: str, mode: str, value: float | None, bound: float, at_most: bool
) -> dict[str, Any]:
    if value is None:
        verdict = "n/a"
    else:
        verdict = "pass" if (value <= bound if at_most else value >= bound) else "MISS"
    return {
        "target": label,
        "mode": mode,
        "value": value,
        "bound": f"{'<=' if at_most else '>='} {bound:.2f}",
        "verdict": verdict,
    }


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
    lines += ["", "## Open loop (fixed rates; each call timed from its scheduled send)", ""]
    open_rows = sorted(
        (r for r in rows if r["mode"] == "open"), key=lambda r: (r["scenario"], r["offered_rate"])
    )
    lines += _table(
        [
            "scenario",
            "offered/s",
            "achieved/s",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "sender lag p99",
            "errors",
        ],
        [
            [
                r["scenario"],
                _rate(r["offered_rate"]),
                _rate(r["achieved_rate"]),
                *_percentiles(r),
                _ms(r.get("send_lag_p99")),
                f"{r['errors']}{' (saturated)' if r.get('saturated') else ''}",
            ]
            for r in open_rows
        ],
    )
    lines += [
        "",
        "## Targets (ratios within this run)",
        "",
        "`echo floor`: the same ratio with the echo floor in place of our server (against Feast's"
        " servers), i.e. the best any server on this gRPC stack could score in this run.",
        "",
    ]
    lines += _table(
        ["target", "mode", "value", "bound", "verdict", "echo floor"],
        [
            [
                t["target"],
                t["mode"],
                "-" if t["value"] is None else f"{t['value']:.3f}",
                t["bound"],
                t["verdict"],
                "-" if t.get("floor") is None else f"{t['floor']:.3f}",
            ]
            for t in record["targets"]
        ],
        right=frozenset({2, 5}),
    )
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
