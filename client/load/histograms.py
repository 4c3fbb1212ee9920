"""Latency histograms: HdrHistogram at microsecond resolution, pooled by merging.

What enters: latencies in seconds (recorded as whole microseconds). What leaves: percentile
summaries in milliseconds, and an encoded form to ship histograms between processes.

Percentiles of several runs or processes are computed from the MERGED histogram (the
distribution of every sample), never by averaging per-run percentiles: the mean of two p99s is
not the p99 of anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 120_000_000
"""Trackable range: 1 µs to 120 s (a stalled call is recorded, not clipped)."""
SIGNIFICANT_FIGURES = 3
"""Values are kept to 3 significant digits (0.1% relative error)."""

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
)


def new_histogram() -> HdrHistogram:
    """An empty latency histogram (µs units)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def record_seconds(histogram: HdrHistogram, seconds: float) -> None:
    """Record one latency given in seconds (clamped into the trackable range)."""
    micros = int(seconds * 1_000_000 + 0.5)
    histogram.record_value(min(max(micros, LOWEST_US), HIGHEST_US))


def merge(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    """One histogram holding every sample of ``histograms`` (the pooled distribution)."""
    pooled = new_histogram()
    for histogram in histograms:
        pooled.add(histogram)
    return pooled


def encode(histogram: HdrHistogram) -> str:
    """A compact text form (HdrHistogram's base64 encoding) for passing between processes."""
    blob = histogram.encode()
    return blob.decode("ascii") if isinstance(blob, bytes) else str(blob)


def decode(text: str) -> HdrHistogram:
    """Inverse of :func:`encode`."""
    histogram = new_histogram()
    if text:
        histogram.decode_and_add(text)
    return histogram


def summarize_ms(histogram: HdrHistogram) -> dict[str, float | int]:
    """count, p50, p90, p99, p99_9, max and mean in milliseconds."""
    count = int(histogram.get_total_count())
    out: dict[str, float | int] = {"count": count}
    if count == 0:
        for name, _ in PERCENTILES:
            out[name] = float("nan")
        out["max"] = float("nan")
        out["mean"] = float("nan")
        return out
    for name, percentile in PERCENTILES:
        out[name] = histogram.get_value_at_percentile(percentile) / 1000.0
    out["max"] = histogram.get_max_value() / 1000.0
    out["mean"] = float(histogram.get_mean_value()) / 1000.0
    return out


def percentile_ms(histogram: HdrHistogram, percentile: float) -> float:
    """One percentile in milliseconds (NaN for an empty histogram)."""
    if histogram.get_total_count() == 0:
        return float("nan")
    return float(histogram.get_value_at_percentile(percentile)) / 1000.0
