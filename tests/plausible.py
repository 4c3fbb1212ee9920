"""Store values for tests: float32-exact, distinct, and inside the contract's validity ranges
(also when doubled), so the server serves them instead of treating them as corrupt."""

from __future__ import annotations

from canonical import contract

PLAUSIBLE_VALUES: tuple[float, ...] = (
    0.0009765625,  # log_ret_5m
    0.001953125,  # log_ret_1h
    -0.00390625,  # log_ret_4h
    45.5,  # rsi_9
    0.0029296875,  # atr_pct
    30.25,  # adx_14
    1.5,  # dxy_z
    0.0078125,  # dxy_change_1d
    -0.75,  # vix_z
    0.625,  # embi_z
    -0.03125,  # brent_change_1d
    6.5,  # rate_spread
    0.015625,  # usdmxn_change_1d
    0.5,  # position
    0.25,  # time_normalized
)

assert len(PLAUSIBLE_VALUES) == contract.N_FEATURES
assert contract.out_of_range(contract.FEATURE_NAMES, PLAUSIBLE_VALUES) is None
assert contract.out_of_range(contract.FEATURE_NAMES, tuple(2 * v for v in PLAUSIBLE_VALUES)) is None
