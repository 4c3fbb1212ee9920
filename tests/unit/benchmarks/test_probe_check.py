"""A server's first answer is checked before anything is measured: the right number of values,
from the source its scenario claims to measure."""

from __future__ import annotations

from typing import Any

from benchmarks.runner import _check_probe


def _observation(source: str, freshness: str = "FRESHNESS_FRESH") -> dict[str, Any]:
    return {
        "n_values": 15,
        "sources": [source] * 3,
        "freshness": [freshness] * 3,
        "fallback_reasons": ["FALLBACK_REASON_UNSPECIFIED"] * 3,
    }


def test_a_right_answer_has_no_problem() -> None:
    assert _check_probe("observation_redis", _observation("VALUE_SOURCE_ONLINE_STORE")) == []
    fallback = _observation("VALUE_SOURCE_COMPUTE_FALLBACK")
    assert _check_probe("observation_fallback", fallback) == []
    assert _check_probe("feast_listen", {"n_values": 15, "all_present": True}) == []


def test_a_wrong_answer_says_what_is_wrong() -> None:
    served_by_fallback = _observation("VALUE_SOURCE_COMPUTE_FALLBACK")
    (problem,) = _check_probe("observation_redis", served_by_fallback)
    assert "expected the online store" in problem
    stale = _observation("VALUE_SOURCE_ONLINE_STORE", freshness="FRESHNESS_STALE")
    assert _check_probe("observation_cached", stale) == [
        f"freshness {['FRESHNESS_STALE'] * 3}, expected fresh data"
    ]
    short = {**_observation("VALUE_SOURCE_ONLINE_STORE"), "n_values": 14}
    assert _check_probe("observation_invalidated", short) == ["14 values instead of 15"]
    missing = _check_probe("feast_serve", {"n_values": 15, "all_present": False})
    assert missing == ["Feast reported features that are not PRESENT"]
    wrong_source = _check_probe("observation_fallback", _observation("VALUE_SOURCE_ONLINE_STORE"))
    assert wrong_source and "expected the compute fallback" in wrong_source[0]
