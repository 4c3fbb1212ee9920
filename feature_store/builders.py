"""``CanonicalFeatureBuilder.for_inference()``: the guide's in-process fallback builder.

What enters: the raw market files (``<data_dir>/raw``: the bars and macro prints the pipeline and
the server's fallback read) and an instant or a symbol. What leaves: the 15 features of the last
bar completed at that instant, as ``{name: float}`` in contract order (or a float32 array).

It is :class:`canonical.builder.CanonicalFeatureBuilder` itself (the one builder of the offline
tables and of the server's fallback), so ``build_observation(t)`` equals, bit for bit in float32,
the offline table row with event time ``t`` and the server's fallback row at that instant.
The data folder is ``data_dir``, else ``USDCOP_DATA_DIR``, else ``data`` (the server's default).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from canonical import builder as canonical_builder
from canonical.builder import InsufficientHistory
from canonical.contract import FEATURE_NAMES
from core.settings import DATA_DIR_VARIABLE
from market_data import columnar, files
from market_data.series import Bars, MacroDaily
from market_data.session import BAR_NS

DATA_DIR_ENV: str = DATA_DIR_VARIABLE["env"]
DEFAULT_SYMBOL = "USDCOP"


def _epoch_ns(timestamp: datetime | int | float | np.datetime64 | str) -> int:
    """UTC ns of ``timestamp``: an aware datetime, an ISO string, ns since the epoch, or a
    numpy datetime64 (naive datetimes and strings are taken as UTC)."""
    if isinstance(timestamp, np.datetime64):
        return int(timestamp.astype("datetime64[ns]").astype(np.int64))
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp)
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            return int(np.datetime64(timestamp, "ns").astype(np.int64))
        seconds = int(timestamp.timestamp())
        return seconds * 10**9 + timestamp.microsecond * 1000
    return int(timestamp)


class InferenceFeatureBuilder:
    """The canonical builder bound to the raw files, for one symbol or several."""

    def __init__(self, data_dir: Path, builder: canonical_builder.CanonicalFeatureBuilder) -> None:
        self.data_dir = data_dir
        self._builder = builder
        self._bars: dict[str, Bars] = {}
        self._macro: MacroDaily | None = None

    def _load(self, symbol: str) -> tuple[Bars, MacroDaily]:
        if symbol not in self._bars:
            bars = columnar.read_bars(files.bars_path(self.data_dir), (symbol,))
            if symbol not in bars:
                raise KeyError(f"no bars for symbol {symbol!r} in {self.data_dir}")
            self._bars[symbol] = bars[symbol]
        if self._macro is None:
            self._macro = columnar.read_macro(files.macro_path(self.data_dir))
        return self._bars[symbol], self._macro

    def observation_values(
        self, timestamp: datetime | int | float | np.datetime64 | str, symbol: str = DEFAULT_SYMBOL
    ) -> tuple[int, npt.NDArray[np.float32]]:
        """(event time ns, float32[15]) of the last bar whose close (open + 5 min) is at or
        before ``timestamp``. Raises :class:`InsufficientHistory` when no such row exists."""
        bars, macro = self._load(symbol)
        cutoff = _epoch_ns(timestamp) - BAR_NS
        count = int(np.searchsorted(bars.open_time_ns, cutoff, side="right"))
        if count == 0:
            raise InsufficientHistory(f"{symbol}: no bar closed at or before {timestamp}")
        rows = self._builder.latest(bars.head(count), macro)
        return int(rows.event_time_ns[0]), rows.values[0]

    def build_observation(
        self, timestamp: datetime | int | float | np.datetime64 | str, symbol: str = DEFAULT_SYMBOL
    ) -> dict[str, float]:
        """The 15 features at ``timestamp`` as ``{name: float}`` (each value a float32 exactly)."""
        _, values = self.observation_values(timestamp, symbol)
        return dict(zip(FEATURE_NAMES, (float(v) for v in values), strict=True))

    def build_features(self, symbol: str = DEFAULT_SYMBOL) -> dict[str, float]:
        """The 15 features of ``symbol``'s last bar in the files (what the server's fallback
        serves for it)."""
        bars, _ = self._load(symbol)
        last_close_ns = int(bars.open_time_ns[-1]) + BAR_NS
        return self.build_observation(last_close_ns, symbol)


class CanonicalFeatureBuilder(canonical_builder.CanonicalFeatureBuilder):
    """:class:`canonical.builder.CanonicalFeatureBuilder` with the guide's constructor.

    >>> builder = CanonicalFeatureBuilder.for_inference()           # doctest: +SKIP
    >>> builder.build_observation(timestamp)["rsi_9"]               # doctest: +SKIP
    """

    @classmethod
    def for_inference(cls, data_dir: Path | str | None = None) -> InferenceFeatureBuilder:
        folder = Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")
        return InferenceFeatureBuilder(folder, cls())
