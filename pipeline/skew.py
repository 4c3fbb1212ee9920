"""Served-vs-offline skew: did the server serve what training reads for the same instant?

What enters: the recorded served log (``pipeline.served_log``) of ``[start, end]``, the
offline tables (files or PostgreSQL) with the recorded pushes, and the raw bars and macro
prints. What leaves: a :class:`SkewReport`: per feature, how many served values differ from
the offline row of the same symbol and view event time (what a training set reads), and from
the builder's recomputation over the raw data (``canonical.offline_tables`` rebuilt now);
served rows with no offline row at their event time are counted apart, not as mismatches.

Equality is bit for bit on the float32: a store answer is Feast's materialization of the
offline row, so any difference is skew; a fallback answer comes from the same builder and is
expected equal too (except a position pushed to this process and not yet recorded offline).
The state view of an answer whose state came from a push is compared with the push's recorded
event (its position and time_normalized), since no grid row exists at a push's time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from canonical import contract
from canonical.offline_tables import apply_state_events, build_offline_tables
from offline_store.store import OfflineStore
from pipeline.served_log import feature_column, read_served_log


@dataclass(frozen=True)
class FeatureSkew:
    """One feature over the report's rows."""

    feature: str
    view: str
    compared: int
    """Served values that had an offline value to compare with."""
    mismatched_offline: int
    """... that differ from the offline row (bit for bit)."""
    mismatched_recomputed: int
    """... that differ from the builder's recomputation over the raw data."""


@dataclass(frozen=True)
class SkewReport:
    """The whole report (``text()`` for people, ``as_json()`` for tools)."""

    start: str
    end: str
    rows: int
    """Served answers in the window."""
    from_store: int
    """... whose three views all came from the online store."""
    missing_offline: dict[str, int] = field(default_factory=dict)
    """Per view: served rows with no offline row at their event time (not compared)."""
    features: tuple[FeatureSkew, ...] = ()

    @property
    def mismatched(self) -> int:
        return sum(f.mismatched_offline + f.mismatched_recomputed for f in self.features)

    @property
    def compared(self) -> int:
        return sum(f.compared for f in self.features)

    def text(self) -> str:
        lines = [
            f"skew {self.start} .. {self.end}: {self.rows} served answers "
            f"({self.from_store} entirely from the online store)",
            f"{'feature':<22} {'view':<20} {'compared':>9} {'!=offline':>10} {'!=recomputed':>13}",
        ]
        for f in self.features:
            lines.append(
                f"{f.feature:<22} {f.view:<20} {f.compared:>9} {f.mismatched_offline:>10} "
                f"{f.mismatched_recomputed:>13}"
            )
        missing = ", ".join(f"{view} {n}" for view, n in self.missing_offline.items() if n)
        if missing:
            lines.append(f"no offline row at the served event time (not compared): {missing}")
        verdict = "no skew" if self.mismatched == 0 else f"{self.mismatched} values differ"
        lines.append(f"skew: {self.compared} values compared, {verdict}")
        return "\n".join(lines)

    def as_json(self) -> str:
        out = asdict(self)
        out["compared"] = self.compared
        out["mismatched"] = self.mismatched
        return json.dumps(out, indent=2)


def skew_report(store: OfflineStore, start: datetime, end: datetime) -> SkewReport:
    """The report of the answers served in ``[start, end]`` (module docstring)."""
    served = read_served_log(store.data_dir, start, end)
    report = SkewReport(start.isoformat(), end.isoformat(), rows=len(served), from_store=0)
    if served.empty:
        return report
    events = store.read_events()
    stored, recomputed = _offline_and_recomputed(store, served, events)
    from_store = np.ones(len(served), dtype=bool)
    features: list[FeatureSkew] = []
    missing: dict[str, int] = {}
    for view in contract.VIEWS:
        from_store &= (served[f"{view.name}__source"] == "online_store").to_numpy()
        first = feature_column(view.name, view.features[0])
        keys = pd.DataFrame(
            {
                "symbol": served["symbol"].to_numpy(),
                "event_timestamp": pd.to_datetime(served[f"{first}__timestamp"], utc=True)
                .dt.as_unit("ns")
                .to_numpy(),
            }
        )
        offline = _lookup(keys, stored[view.name], view.features)
        again = _lookup(keys, recomputed[view.name], view.features)
        if view is contract.STATE:
            pushed = _lookup(keys, events, view.features)
            at_push = ~np.isnan(pushed[:, 0])
            offline[at_push] = pushed[at_push]
            again[at_push] = pushed[at_push]
        present = ~np.isnan(offline[:, 0])
        missing[view.name] = int((~present).sum())
        for i, feature in enumerate(view.features):
            got = served[feature_column(view.name, feature)].to_numpy(dtype=np.float32)
            features.append(
                FeatureSkew(
                    feature=feature,
                    view=view.name,
                    compared=int(present.sum()),
                    mismatched_offline=_differ(got, offline[:, i], present),
                    mismatched_recomputed=_differ(got, again[:, i], present),
                )
            )
    order = {name: i for i, name in enumerate(contract.FEATURE_NAMES)}
    features.sort(key=lambda f: order[f.feature])
    return SkewReport(
        report.start,
        report.end,
        rows=len(served),
        from_store=int(from_store.sum()),
        missing_offline=missing,
        features=tuple(features),
    )


def _offline_and_recomputed(
    store: OfflineStore, served: pd.DataFrame, events: pd.DataFrame
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    symbols = sorted(served["symbol"].unique())
    tables = store.read_feature_tables(symbols)
    bars, macro = store.read_raw(symbols)
    bars = bars[bars["symbol"].isin(symbols)]
    created = pd.Timestamp.now(tz="UTC").to_pydatetime()
    rebuilt = build_offline_tables(bars, macro, created)
    state = contract.STATE.name
    rebuilt[state] = apply_state_events(rebuilt[state], events)
    return tables, rebuilt


def _lookup(keys: pd.DataFrame, table: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    """The table's float32 features at each (symbol, event time) of ``keys``; NaN rows where
    the table has none (contract features are finite: a NaN cannot be a stored value)."""
    right = table[["symbol", "event_timestamp", *features]].copy()
    right["event_timestamp"] = pd.to_datetime(right["event_timestamp"], utc=True).dt.as_unit("ns")
    right = right.drop_duplicates(["symbol", "event_timestamp"], keep="last")
    left = keys.copy()
    left["event_timestamp"] = pd.to_datetime(left["event_timestamp"], utc=True).dt.as_unit("ns")
    joined = left.merge(right, on=["symbol", "event_timestamp"], how="left")
    values: np.ndarray = joined[list(features)].to_numpy(dtype=np.float32)
    return values


def _differ(served: np.ndarray, expected: np.ndarray, present: np.ndarray) -> int:
    """How many present values differ bit for bit (a NaN equals the same NaN)."""
    a = served.astype(np.float32).view(np.uint32)
    b = expected.astype(np.float32).view(np.uint32)
    return int(((a != b) & present).sum())
