"""echo_ab's table judges each variant against the first as the harness judges targets."""

from __future__ import annotations

from typing import Any

from benchmarks.echo_ab import ab_table
from client.load.histograms import new_histogram, record_seconds


def _round(latency_ms: float) -> Any:
    histogram = new_histogram()
    for _ in range(200):
        record_seconds(histogram, latency_ms / 1000)
    return histogram


def test_each_variant_gets_its_per_round_p99_ratio_to_the_first() -> None:
    drift = [1.0, 1.5, 0.8, 1.2, 1.1, 0.9]  # the machine's mood moves both alike
    histograms = {
        "base": [_round(1.0 * d) for d in drift],
        "uvloop": [_round(0.8 * d) for d in drift],
    }
    table = ab_table(
        ["base", "uvloop"], histograms, {"base": 1.2, "uvloop": 1.0}, rounds=6, calls=200
    ).splitlines()
    assert table[0].startswith("| variant | calls | p50 ms | p99 ms | p99.9 ms | p99 / base p99")
    base = next(line for line in table if line.startswith("| base |"))
    uvloop = next(line for line in table if line.startswith("| uvloop |"))
    assert "| 1.000 [1.000, 1.000] |" in base
    # 0.8 within every round (to HdrHistogram's 3 significant digits), whatever the drift.
    ratio = uvloop.split("|")[6].strip()
    median, interval = ratio.split(" ", 1)
    assert abs(float(median) - 0.8) < 0.002
    low, high = (float(x) for x in interval.strip("[]").split(", "))
    assert 0.798 <= low <= high <= 0.802
    assert uvloop.endswith("| 758 |")  # 1.0 s / (6 rounds x 220 calls), µs
