"""Percentile pooling: merged histograms are the histogram of every sample, never an average."""

from __future__ import annotations

import random

from client.load import histograms


def _histogram(samples_us: list[int]) -> object:
    histogram = histograms.new_histogram()
    for value in samples_us:
        histograms.record_seconds(histogram, value / 1e6)
    return histogram


def test_merging_equals_the_histogram_of_the_union() -> None:
    rng = random.Random(3)
    parts = [[rng.randint(200, 5_000) for _ in range(n)] for n in (500, 1200, 37)]
    parts[1] += [80_000] * 20  # one process saw a stall
    merged = histograms.merge(_histogram(p) for p in parts)  # type: ignore[misc]
    union = _histogram([v for part in parts for v in part])
    assert merged.get_total_count() == union.get_total_count() == sum(len(p) for p in parts)
    for percentile in (50.0, 90.0, 99.0, 99.9, 100.0):
        assert merged.get_value_at_percentile(percentile) == union.get_value_at_percentile(
            percentile
        )
    assert histograms.summarize_ms(merged) == histograms.summarize_ms(union)


def test_pooled_p99_is_not_the_average_of_p99s() -> None:
    quiet = _histogram([1_000] * 1000)
    stalled = _histogram([1_000] * 980 + [50_000] * 20)
    pooled = histograms.merge([quiet, stalled])
    average_of_p99s = (
        quiet.get_value_at_percentile(99.0) + stalled.get_value_at_percentile(99.0)
    ) / 2
    # 20 of 2000 samples are slow: exactly the pooled top 1%, so the pooled p99 is ~1 ms,
    # while averaging the two runs' p99s would claim ~25 ms.
    assert abs(pooled.get_value_at_percentile(99.0) - 1_000) <= 1
    assert average_of_p99s > 25_000
    assert pooled.get_value_at_percentile(99.5) >= 49_950


def test_encoding_round_trips_between_processes() -> None:
    original = _histogram([250, 1_000, 1_000, 123_456, 7])
    decoded = histograms.decode(histograms.encode(original))
    assert decoded.get_total_count() == 5
    assert histograms.summarize_ms(decoded) == histograms.summarize_ms(original)
    assert histograms.decode("").get_total_count() == 0


def test_microsecond_resolution_and_clamping() -> None:
    histogram = histograms.new_histogram()
    histograms.record_seconds(histogram, 0.000_537)
    histograms.record_seconds(histogram, 0.0)  # below 1 µs is recorded as 1 µs, not dropped
    summary = histograms.summarize_ms(histogram)
    assert summary["count"] == 2
    assert abs(summary["max"] - 0.537) < 0.001
