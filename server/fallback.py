"""The compute fallback: the latest observation computed from raw market data, kept ready.

What enters: the raw files under ``data_dir`` (``market_data.files``: 5-minute bars and daily
macro) -- or, with ``USDCOP_FALLBACK_SOURCE=postgres``, the same L0 tables in the PostgreSQL
offline store (``offline_store.read``: each symbol's latest window of bars, read through the
primary key, and the macro prints) -- and the positions pushed through this process. What
leaves: per symbol, a precomputed ``FallbackRow`` (15 float32 values + event times) that the
request path reads with one dict lookup.

The rows are computed by ``canonical.builder.CanonicalFeatureBuilder.latest`` (the same code
that builds the offline tables) at start-up and again whenever the files change; a background
task polls the files' (mtime, size) every ``fallback_refresh_s``. The computation runs in a
separate process (one spawned worker, shared by every fallback of this process): in a thread,
its thousands of small numpy steps held the GIL and the event loop waited for it, so calls
answered from the cache during a refresh saw p99 5.4 -> 9.8 ms and max 58 ms. Nothing here
runs on the request path. A failed refresh keeps the previous rows. The worker dies with the
process that spawned it (``server.lifetime``: parent-death SIGKILL, set in its initializer).

State view: the position is the last one pushed through this process for the symbol (with the
push's time_normalized and event time); without a push, the builder's rule value for the last
bar (with the bar's time_normalized and event time).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from canonical import contract
from canonical.builder import CanonicalFeatureBuilder, InsufficientHistory
from market_data import files, schema
from offline_store.connection import PostgresAddress
from server.lifetime import die_with_parent

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


def _file_signature(paths: tuple[Path, ...]) -> _FileSignature:
    try:
        stats = [os.stat(path) for path in paths]
    except OSError:
        return None
    return tuple((s.st_mtime_ns, s.st_size) for s in stats)


def _postgres_signature(address: PostgresAddress) -> _FileSignature:
    """Row counts and latest keys of the L0 tables; None when the database cannot be read."""
    from offline_store.read import raw_signature

    try:
        with address.connect(connect_timeout=2) as conn:
            return raw_signature(conn)
    except Exception as exc:  # any database error: keep the rows we have, retry next poll
        logger.warning("fallback: cannot read %s: %s", address, type(exc).__name__)
        return None


_compute_pool: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    """The process's one compute worker, started on first use. ``spawn``: forking a process
    that runs gRPC is unsafe, and a fresh interpreter holds nothing of the server."""
    global _compute_pool  # noqa: PLW0603 -- one worker per server process, made lazily
    if _compute_pool is None:
        _compute_pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            # SIGKILL: the worker holds nothing worth a clean exit; without this, a SIGKILLed
            # server leaves it (~170 MB) and its resource tracker running forever.
            initializer=die_with_parent,
            initargs=(signal.SIGKILL, os.getpid()),
        )
    return _compute_pool


def _discard_pool() -> None:
    global _compute_pool  # noqa: PLW0603
    if _compute_pool is not None:
        _compute_pool.shutdown(wait=False, cancel_futures=True)
        _compute_pool = None


def shutdown_compute_pool() -> None:
    """Stop the compute worker and wait for it (at the end of ``python -m server``)."""
    global _compute_pool  # noqa: PLW0603
    if _compute_pool is not None:
        _compute_pool.shutdown(wait=True, cancel_futures=True)
        _compute_pool = None


def compute_rows(data_dir: Path, symbols: tuple[str, ...]) -> dict[str, FallbackRow]:
    """Fallback rows of ``symbols`` from the raw files in ``data_dir`` (blocking; runs in the
    compute worker process).

    A symbol without enough history (or absent from the bars) gets no row.
    """
    bars_frame = files.read_bars(files.bars_path(data_dir))
    macro_frame = files.read_macro(files.macro_path(data_dir))
    return _rows_from(bars_frame, macro_frame, symbols)


def compute_rows_postgres(
    address: PostgresAddress, symbols: tuple[str, ...]
) -> dict[str, FallbackRow]:
    """Fallback rows of ``symbols`` from the PostgreSQL L0 tables: each symbol's latest window
    (the builder's ``min_bars``), which gives the same row as the whole history, bit for bit."""
    from offline_store.read import read_bars, read_macro

    window = CanonicalFeatureBuilder().min_bars
    with address.connect() as conn:
        bars_frame = read_bars(conn, symbols, last=window)
        macro_frame = read_macro(conn)
    return _rows_from(bars_frame, macro_frame, symbols)


def _rows_from(
    bars_frame: pd.DataFrame, macro_frame: pd.DataFrame, symbols: tuple[str, ...]
) -> dict[str, FallbackRow]:
    macro = schema.macro_from_frame(macro_frame)
    builder = CanonicalFeatureBuilder()
    rows: dict[str, FallbackRow] = {}
    for symbol in symbols:
        try:
            bars = schema.bars_from_frame(bars_frame, symbol)
            latest = builder.latest(bars, macro)
        except (InsufficientHistory, schema.SchemaError, ValueError, KeyError) as exc:
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
        self._data_dir = data_dir
        self._postgres = postgres
        self._symbols = symbols
        self._refresh_s = refresh_s
        self._computed: dict[str, FallbackRow] = {}
        self._rows: dict[str, FallbackRow] = {}
        self._pushed: dict[str, PushedState] = {}
        self._signature: _FileSignature = None

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols this fallback computes rows for."""
        return self._symbols

    @property
    def loaded(self) -> bool:
        """True once rows exist for at least one symbol."""
        return bool(self._rows)

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
        loop = asyncio.get_running_loop()
        if self._postgres is None:
            signature = await asyncio.to_thread(_file_signature, self._paths())
        else:
            signature = await asyncio.to_thread(_postgres_signature, self._postgres)
        if signature is None or signature == self._signature:
            return False
        try:
            if self._postgres is None:
                computed = await loop.run_in_executor(
                    _pool(), compute_rows, self._data_dir, self._symbols
                )
            else:
                computed = await loop.run_in_executor(
                    _pool(), compute_rows_postgres, self._postgres, self._symbols
                )
        except BrokenProcessPool:
            # The worker died (e.g. killed): keep the previous rows, start a new worker next time.
            logger.warning("fallback: the compute worker died; retrying at the next refresh")
            _discard_pool()
            return False
        except Exception:
            # A bad file must not take the server down; keep serving the previous rows.
            logger.exception("fallback: could not load %s", self._postgres or self._data_dir)
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

    def _paths(self) -> tuple[Path, ...]:
        return (files.bars_path(self._data_dir), files.macro_path(self._data_dir))

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
