"""The compute fallback: the latest observation computed from raw market data, kept ready.

What enters: L0 of the offline store (``offline_store.store``): the raw files under
``data_dir`` (``market_data.files``: 5-minute bars and daily macro) -- or, with
``USDCOP_FALLBACK_SOURCE=postgres``, the same L0 tables in the PostgreSQL offline store (each
symbol's latest window of bars, read through the primary key, and the macro prints) -- and the
positions pushed through this process. What leaves: per symbol, a precomputed ``FallbackRow``
(15 float32 values + event times) that the request path reads with one dict lookup.

The rows are computed by ``canonical.builder.CanonicalFeatureBuilder.latest`` (the same code
that builds the offline tables) at start-up and again whenever L0 changes; a background task
polls the store's L0 signature (the files' mtime and size, or the tables' row counts and latest
keys) every ``fallback_refresh_s``. The computation runs in a thread of this process: the files
are read into numpy by ``market_data.columnar`` (pyarrow, no pandas) and ``latest`` reads only
the last window, about 3 ms of GIL per symbol, so the request path barely notices it (a spawned
worker process used to cost ~130-190 MB resident plus a 13 MB resource tracker). The PostgreSQL
source reads through pandas, imported on its first refresh. Nothing here runs on the request
path. A failed refresh keeps the previous rows.

State view: the position is the last one pushed through this process for the symbol (with the
push's time_normalized and event time); without a push, the builder's rule value for the last
bar (with the bar's time_normalized and event time).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from canonical import contract
from core.tasks import stop_tasks
from offline_store.connection import PostgresAddress
from offline_store.factory import open_store
from offline_store.store import OfflineStore

if TYPE_CHECKING:
    from market_data.series import Bars, MacroDaily

# The computation's modules (canonical.builder, market_data.columnar: numpy, pyarrow) are
# imported by the functions below, in the refresh thread: the server reports SERVING without
# waiting for them (server.app).

logger = logging.getLogger(__name__)

_POSITION_INDEX = contract.FEATURE_INDEX["position"]
_TIME_NORMALIZED_INDEX = contract.FEATURE_INDEX["time_normalized"]


@dataclass(frozen=True)
class FallbackRow:
    """One symbol's fallback observation."""

    values: tuple[float, ...]
    """15 float32-representable values in contract order."""
    event_time_ns: int
    """Event time of the technical and macro views (last bar's open + 5 min), Unix ns."""
    state_event_time_ns: int
    """Event time of the state view (the push's, or the last bar's), Unix ns."""

    def event_time_of(self, view_name: str) -> int:
        return self.state_event_time_ns if view_name == contract.STATE.name else self.event_time_ns


@dataclass(frozen=True)
class PushedState:
    position: float
    time_normalized: float
    event_time_ns: int


_FileSignature = tuple[object, ...] | None


def _signature(store: OfflineStore) -> _FileSignature:
    """The store's L0 signature; None when L0 cannot be read now."""
    try:
        return store.raw_signature()
    except Exception as exc:  # any database error: keep the rows we have, retry next poll
        logger.warning("fallback: cannot read %s: %s", store.describe(), type(exc).__name__)
        return None


def _import_computation() -> None:
    import canonical.builder  # noqa: F401  (numpy)
    import market_data.columnar  # noqa: F401


def compute_rows(source: OfflineStore | Path, symbols: tuple[str, ...]) -> dict[str, FallbackRow]:
    """Fallback rows of ``symbols`` from the store's L0 (a data folder: its raw files; blocking,
    runs in a thread): each symbol's latest window (the builder's ``min_bars``, which gives the
    same row as the whole history, bit for bit). A symbol without enough history (or absent
    from the bars) gets no row."""
    from canonical.builder import CanonicalFeatureBuilder

    store = open_store(source) if isinstance(source, Path) else source
    bars, macro = store.read_raw_window(symbols, CanonicalFeatureBuilder().min_bars)
    return _rows_from(bars, macro, symbols)


def _rows_from(
    bars_of: dict[str, Bars], macro: MacroDaily, symbols: tuple[str, ...]
) -> dict[str, FallbackRow]:
    from canonical.builder import CanonicalFeatureBuilder, InsufficientHistory
    from market_data.series import SchemaError

    builder = CanonicalFeatureBuilder()
    rows: dict[str, FallbackRow] = {}
    for symbol in symbols:
        try:
            bars = bars_of.get(symbol)
            if bars is None:
                raise KeyError(f"no bars for symbol {symbol!r}")
            latest = builder.latest(bars, macro)
        except (InsufficientHistory, SchemaError, ValueError, KeyError) as exc:
            logger.warning("fallback: no row for %s: %s", symbol, exc)
            continue
        event_time_ns = int(latest.event_time_ns[-1])
        rows[symbol] = FallbackRow(
            values=tuple(float(v) for v in latest.values[-1]),
            event_time_ns=event_time_ns,
            state_event_time_ns=event_time_ns,
        )
    return rows


class ComputeFallback:
    """Holds the fallback rows and keeps them current in the background."""

    def __init__(
        self,
        data_dir: Path,
        symbols: tuple[str, ...],
        refresh_s: float,
        *,
        postgres: PostgresAddress | None = None,
    ) -> None:
        self._store = open_store(data_dir, postgres)
        self._symbols = symbols
        self._refresh_s = refresh_s
        self._computed: dict[str, FallbackRow] = {}
        self._rows: dict[str, FallbackRow] = {}
        self._pushed: dict[str, PushedState] = {}
        self._signature: _FileSignature = None
        self._attempted = False
        self._refresh_task: asyncio.Task[None] | None = None

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols this fallback computes rows for."""
        return self._symbols

    @property
    def loaded(self) -> bool:
        """True once rows exist for at least one symbol."""
        return bool(self._rows)

    @property
    def attempted(self) -> bool:
        """True once the first refresh finished (with rows or without)."""
        return self._attempted

    def row(self, symbol: str) -> FallbackRow | None:
        """The symbol's fallback row, or None when none could be computed (request path)."""
        return self._rows.get(symbol)

    def note_push(
        self, symbol: str, position: float, time_normalized: float, event_time_ns: int
    ) -> None:
        """Remember a state written through PushState; it replaces the state view's values."""
        previous = self._pushed.get(symbol)
        if previous is None or event_time_ns > previous.event_time_ns:
            self._pushed[symbol] = PushedState(position, time_normalized, event_time_ns)
            self._rebuild()

    async def refresh(self) -> bool:
        """Recompute the rows (in a thread) when the raw files changed; True when rows changed."""
        if not self._attempted:
            # The computation's modules, in the thread, whatever the files hold: the server
            # reported SERVING without them, and PushState needs the builder too.
            await asyncio.to_thread(_import_computation)
        try:
            return await self._refresh()
        finally:
            self._attempted = True

    async def _refresh(self) -> bool:
        signature = await asyncio.to_thread(_signature, self._store)
        if signature is None or signature == self._signature:
            return False
        try:
            computed = await asyncio.to_thread(compute_rows, self._store, self._symbols)
        except Exception:
            # A bad file must not take the server down; keep serving the previous rows.
            logger.exception("fallback: could not load %s", self._store.describe())
            self._signature = signature
            return False
        self._signature = signature
        self._computed = computed
        self._rebuild()
        logger.info("fallback: loaded rows for %s", ", ".join(sorted(computed)) or "no symbol")
        return True

    async def run_refresh_loop(self) -> None:
        """Poll the raw files every ``refresh_s`` until cancelled."""
        while True:
            await asyncio.sleep(self._refresh_s)
            await self.refresh()

    def start(self) -> None:
        """``run_refresh_loop`` as a task until ``aclose``."""
        if self._refresh_task is None:
            self._refresh_task = asyncio.create_task(
                self.run_refresh_loop(), name="fallback-refresh"
            )

    async def aclose(self) -> None:
        """Stop the refresh loop (a refresh in its thread finishes there, unawaited)."""
        task, self._refresh_task = self._refresh_task, None
        await stop_tasks(task)

    def _rebuild(self) -> None:
        rows: dict[str, FallbackRow] = {}
        for symbol, computed in self._computed.items():
            pushed = self._pushed.get(symbol)
            if pushed is None:
                rows[symbol] = computed
                continue
            values = list(computed.values)
            values[_POSITION_INDEX] = pushed.position
            values[_TIME_NORMALIZED_INDEX] = pushed.time_normalized
            rows[symbol] = replace(
                computed, values=tuple(values), state_event_time_ns=pushed.event_time_ns
            )
        self._rows = rows  # one assignment: readers see the old or the new dict, never a mix
