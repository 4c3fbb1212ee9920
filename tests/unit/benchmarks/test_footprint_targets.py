"""The footprint's targets in a bench run: one value per start, judged by the interval."""

from __future__ import annotations

from benchmarks.footprint import Footprint, markdown, targets


def _row(
    workers: int, starts: list[float], totals: list[float], floors: list[float] | None = None
) -> Footprint:
    floor = [] if floors is None else floors
    return Footprint(workers, starts, [100.0], [totals[-1]], totals, floor)


START = "start to SERVING / a bare gRPC server's (--workers 1)"
RSS = "RSS after the burst, MB, all processes (--workers 1)"


def test_both_targets_are_judged_on_workers_1_only() -> None:
    floors = [0.20, 0.21, 0.19, 0.20, 0.22, 0.20]
    rows = [
        _row(1, [0.30, 0.31, 0.29, 0.33, 0.32, 0.30], [110.0, 111.0, 112.0, 110.5, 111.5, 111.0],
             floors),
        _row(2, [0.9] * 6, [400.0] * 6),  # far over both bounds: must not count
    ]  # fmt: skip
    judged = {t["target"]: t for t in targets(rows)}
    start, rss = judged[START], judged[RSS]
    assert start["verdict"] == "pass" and start["rounds"] == 6
    assert 1.4 <= start["median"] <= 1.6  # per pair: ours over the floor's
    assert rss["verdict"] == "pass" and 110.0 <= rss["median"] <= 112.0
    assert {t["mode"] for t in judged.values()} == {"footprint"}


def test_the_start_target_is_judged_per_pair_so_the_machines_level_cancels() -> None:
    # A slow machine: every start takes twice as long, ours and the floor's alike.
    slow = [0.60, 0.62, 0.58, 0.66, 0.64, 0.60]
    floors = [0.40, 0.42, 0.38, 0.40, 0.44, 0.40]
    judged = {t["target"]: t for t in targets([_row(1, slow, [110.0] * 6, floors)])}
    assert judged[START]["verdict"] == "pass"
    # Ours over 2.3 floor starts: a miss, however fast the machine.
    fast = [0.30, 0.31, 0.29, 0.33, 0.32, 0.30]
    floors = [0.07, 0.08, 0.07, 0.08, 0.08, 0.07]
    judged = {t["target"]: t for t in targets([_row(1, fast, [110.0] * 6, floors)])}
    assert judged[START]["verdict"] == "miss"


def test_a_footprint_over_its_bound_is_a_miss_and_noise_across_it_is_undecided() -> None:
    floors = [0.2] * 6
    over = targets(
        [_row(1, [0.7, 0.8, 0.75, 0.72, 0.9, 0.6], [130.0, 131.0, 129.0, 132.0, 130.5, 128.0],
              [0.1] * 6)]
    )  # fmt: skip
    assert [t["verdict"] for t in over] == ["miss", "miss"]
    noisy = targets(
        [_row(1, [0.2, 0.8, 0.3, 0.9, 0.45, 0.4], [100.0, 140.0, 110.0, 130.0, 119.0, 115.0],
              floors)]
    )  # fmt: skip
    assert [t["verdict"] for t in noisy] == ["undecided", "undecided"]
    # Five starts give no 95% interval at all: undecided, however far from the bound.
    few = targets(
        [_row(1, [0.7, 0.8, 0.75, 0.72, 0.9], [130.0, 131.0, 129.0, 132.0, 130.5], [0.1] * 5)]
    )
    assert [t["verdict"] for t in few] == ["undecided", "undecided"]


def test_the_markdown_names_each_worker_count() -> None:
    lines = markdown([_row(1, [0.3] * 5, [110.0] * 5), _row(2, [0.5] * 5, [250.0] * 5)])
    assert any("--workers 1" in line for line in lines)
    assert any("--workers 2" in line for line in lines)


def test_each_start_is_reported_over_its_paired_floor_start() -> None:
    starts = [0.40, 0.36, 0.44, 0.38, 0.50, 0.42]
    floors = [0.20, 0.18, 0.22, 0.19, 0.25, 0.21]
    row = Footprint(1, starts, [100.0], [110.0], [110.0] * 6, floors)
    assert row.start_ratios() == [s / f for s, f in zip(starts, floors, strict=True)]
    line = row.summary()
    # every pair is 2.0: the median and the interval's ends (smallest to largest of 6)
    assert (
        "a bare gRPC server's start 0.205 s (median), ours over it per pair 2.000 [2.000, 2.000]"
        in line
    )
    # a record from before the floor (no floor starts) keeps its old line
    assert "bare gRPC" not in _row(1, starts, [110.0] * 6).summary()
