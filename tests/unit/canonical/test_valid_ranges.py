"""The contract's validity ranges hold for every row the canonical builder emits over the
generated year, and the range check rejects what it must."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canonical import contract
from canonical.builder import FeatureRows


def test_every_generated_row_of_the_year_is_within_the_contract_ranges(table: FeatureRows) -> None:
    assert len(table) > 10_000  # a year of session bars, not a handful
    values = table.values.astype(np.float64)
    low = np.array([lo for lo, _ in contract.FEATURE_BOUNDS])
    high = np.array([hi for _, hi in contract.FEATURE_BOUNDS])
    outside = ~((values >= low) & (values <= high))
    bad = {contract.FEATURE_NAMES[i]: int(n) for i, n in enumerate(outside.sum(axis=0)) if n}
    assert bad == {}
    # The bounds are not vacuous: the data spans a real part of each bounded indicator.
    rsi = values[:, contract.FEATURE_INDEX["rsi_9"]]
    assert rsi.min() < 30 and rsi.max() > 70


def test_out_of_range_names_the_first_bad_feature() -> None:
    names = contract.TECHNICAL.features
    good = (0.001, -0.002, 0.003, 55.0, 0.004, 25.0)
    assert contract.out_of_range(names, good) is None
    assert contract.out_of_range(names, (0.0, 0.0, 0.0, 1e30, 0.0, 25.0)) == "rsi_9"
    assert contract.out_of_range(names, (0.0, 0.0, 0.0, 50.0, -0.1, 25.0)) == "atr_pct"
    assert contract.out_of_range(names, (math.nan, 0.0, 0.0, 50.0, 0.1, 25.0)) == "log_ret_5m"
    assert contract.out_of_range(names, (0.0, math.inf, 0.0, 50.0, 0.1, 25.0)) == "log_ret_1h"


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("rsi_9", 0.0, 100.0),
        ("adx_14", 0.0, 100.0),
        ("position", -1.0, 1.0),
        ("time_normalized", 0.0, 1.0),
    ],
)
def test_documented_ranges(name: str, low: float, high: float) -> None:
    assert (contract.VALID_RANGES[name].low, contract.VALID_RANGES[name].high) == (low, high)


def test_atr_pct_is_non_negative_and_every_feature_has_a_range() -> None:
    assert contract.VALID_RANGES["atr_pct"].low == 0.0
    assert set(contract.VALID_RANGES) == set(contract.FEATURE_NAMES)
    assert len(contract.FEATURE_BOUNDS) == contract.N_FEATURES
