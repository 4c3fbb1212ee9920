"""One year of generated USDCOP bars and macro prints, and the batch feature rows over them."""

from __future__ import annotations

from datetime import date

import pytest

from canonical.builder import CanonicalFeatureBuilder, FeatureRows
from market_data.generator import generate_bars, generate_macro
from market_data.schema import (
    Bars,
    MacroDaily,
    bars_from_frame,
    macro_from_frame,
    validate_bars,
    validate_macro,
)

END = date(2025, 12, 31)


@pytest.fixture(scope="session")
def bars() -> Bars:
    return bars_from_frame(validate_bars(generate_bars(end=END, seed=11)), "USDCOP")


@pytest.fixture(scope="session")
def macro() -> MacroDaily:
    return macro_from_frame(validate_macro(generate_macro(end=END, seed=11)))


@pytest.fixture(scope="session")
def builder() -> CanonicalFeatureBuilder:
    return CanonicalFeatureBuilder()


@pytest.fixture(scope="session")
def table(bars: Bars, macro: MacroDaily, builder: CanonicalFeatureBuilder) -> FeatureRows:
    return builder.batch(bars, macro)
