"""Two runs' targets side by side, with both intervals and whether they moved."""

from __future__ import annotations

from typing import Any

from benchmarks.compare import compare, intervals_overlap, movement, verdicts
from benchmarks.intervals import Estimate


def _record(timestamp: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    run = {"timestamp": timestamp, "profile": "quick", "git_sha": "0123456789abcdef"}
    return {"run": run, "targets": targets}


def _target(label: str, median: float, low: float, high: float, verdict: str) -> dict[str, Any]:
    return {
        "target": label,
        "bound": "<= 1.10",
        "median": median,
        "low": low,
        "high": high,
        "rounds": 12,
        "verdict": verdict,
    }


def test_movement_needs_disjoint_intervals() -> None:
    before = Estimate(1.2, 1.15, 1.25, 12)
    assert movement(before, Estimate(1.0, 0.95, 1.05, 12)) == "lower"
    assert movement(before, Estimate(1.4, 1.30, 1.50, 12)) == "higher"
    assert movement(before, Estimate(1.1, 1.05, 1.16, 12)) == "no clear change"
    assert movement(before, Estimate(1.1, None, None, 2)) == "-"
    assert movement(None, before) == "-"


def test_compare_lists_every_target_of_either_run_with_both_intervals() -> None:
    a = _record(
        "A1",
        [
            _target("cached / echo", 1.20, 1.15, 1.25, "miss"),
            _target("only in A", 1.0, 0.9, 1.1, "pass"),
        ],
    )
    b = _record(
        "B1",
        [
            _target("cached / echo", 1.00, 0.95, 1.05, "pass"),
            _target("only in B", 1.0, 0.9, 1.2, "undecided"),
        ],
    )
    lines = compare(a, b).splitlines()
    row = next(line for line in lines if line.startswith("| cached / echo"))
    assert row == (
        "| cached / echo | <= 1.10 | 1.200 [1.150, 1.250] | miss | "
        "1.000 [0.950, 1.050] | pass | 0.833 | lower |"
    )
    only_a = next(line for line in lines if line.startswith("| only in A"))
    assert "| pass | - | - | - | - |" in only_a
    assert any(
        line.startswith("| only in B | <= 1.10 | - | - | 1.000 [0.900, 1.200]") for line in lines
    )


def test_a_record_from_before_the_rounds_shows_its_single_ratio() -> None:
    old = _record("A0", [{"target": "cached / echo", "bound": "<= 1.10", "value": 1.3,
                          "verdict": "MISS"}])  # fmt: skip
    new = _record("B1", [_target("cached / echo", 1.0, 0.95, 1.05, "pass")])
    row = next(line for line in compare(old, new).splitlines() if line.startswith("| cached"))
    assert "1.300 [too few rounds: 1] | MISS |" in row and row.endswith("| 0.769 | - |")


def test_verdicts_agree_only_when_every_run_says_the_same() -> None:
    runs = [
        _record(
            "A", [_target("t1", 1.0, 0.9, 1.05, "pass"), _target("t2", 1.1, 1.0, 1.2, "undecided")]
        ),
        _record(
            "B", [_target("t1", 1.0, 0.95, 1.08, "pass"), _target("t2", 1.1, 1.0, 1.3, "undecided")]
        ),
    ]
    text, same = verdicts(runs)
    assert same
    assert "2 of 2 targets: the same verdict in all 2 runs" in text
    flipped = [*runs, _record("C", [_target("t1", 1.0, 0.9, 1.2, "undecided")])]
    text, same = verdicts(flipped)
    assert not same
    # t1 changed; t2 is missing from run C, which differs too.
    assert "0 of 2 targets" in text and "different: t1, t2" in text
    assert "| t1 | <= 1.10 | pass 1.000 [0.900, 1.050] |" in text
    # t1's intervals share 0.95..1.05: the runs agree within their noise; t2 lacks one in C
    assert text.splitlines()[2].endswith("| NO | yes |")
    assert "intervals without a common value" not in text


def test_intervals_overlap_needs_one_value_in_every_interval() -> None:
    a = Estimate(1.0, 0.9, 1.05, 12)
    assert intervals_overlap([a, Estimate(1.1, 1.04, 1.2, 12)]) == "yes"
    assert intervals_overlap([a, Estimate(1.2, 1.06, 1.3, 12)]) == "no"
    assert intervals_overlap([a, Estimate(1.0, None, None, 4)]) == "-"
    assert intervals_overlap([a, None]) == "-"
    runs = [
        _record("A", [_target("t", 1.0, 0.9, 1.05, "pass")]),
        _record("B", [_target("t", 1.3, 1.2, 1.4, "miss")]),
    ]
    text, same = verdicts(runs)
    assert not same
    assert "| NO | no |" in text and "intervals without a common value: t" in text
