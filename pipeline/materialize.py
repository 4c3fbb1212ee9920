"""Incremental materialization (offline tables -> Redis) driven by an injected clock.

What enters: a FeatureStore with applied views, ``now`` (tz-aware) and optionally the earliest
event time of rows added since the last run. What leaves: each view's latest rows in ``[start,
now]`` written to Redis, and one :class:`ViewMaterialization` per view saying which window ran.

Semantics of ``feast materialize-incremental``, except for the clock: per view,
``start = view.most_recent_end_time`` or, the first time, ``now - view.ttl``, and ``end = now``;
a view with ``start >= end`` is skipped. Feast's own ``materialize_incremental`` takes the first
start from the wall clock, so tests and the live mode call ``store.materialize(start, end,
feature_views=[name])`` per view instead.

Freshness is honest: the first window reaches back one TTL only, so history that ended last
Friday writes nothing on Sunday (the views would be expired anyway).

``since`` covers rows whose event time precedes the last run's end (the live mode's catch-up
bars, appended after a run that already ended at ``now``): the window then starts at the earliest
of those rows, but never more than one TTL before ``now`` (older rows are expired anyway).
Overlap is harmless: Feast skips a row that is not newer than the stored one.

``refill`` is for an online store that may have lost what the registry says was materialized
(the quick start's embedded Redis starts empty, the registry on disk survives): every window
then reaches back one TTL, whatever the registry says.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from canonical import contract

if TYPE_CHECKING:
    from feast import FeatureStore


VIEW_NAMES: tuple[str, ...] = tuple(view.name for view in contract.VIEWS)


@dataclass(frozen=True)
class ViewMaterialization:
    """What materialization did for one feature view."""

    view: str
    """Feature view name."""
    start: datetime
    """Window start (inclusive)."""
    end: datetime
    """Window end (inclusive): the injected ``now``."""
    ran: bool
    """False when the window was empty (``start >= end``) and Feast was not called."""
    seconds: float = 0.0
    """Wall time of Feast's materialization of this view, seconds (0 when it did not run)."""
    rows_written: int | None = None
    """Rows Feast handed to the online store for this view; None when it could not be counted."""


def materialize_incremental(
    store: FeatureStore,
    now: datetime,
    *,
    since: datetime | None = None,
    refill: bool = False,
    views: Sequence[str] = VIEW_NAMES,
) -> tuple[ViewMaterialization, ...]:
    """Materialize every view in ``views`` up to ``now`` (see the module docstring)."""
    _require_aware("now", now)
    if since is not None:
        _require_aware("since", since)
    done = []
    writes = OnlineWriteCounter(store)
    for name in views:
        view = store.get_feature_view(name)
        if view.ttl is None:
            raise ValueError(f"feature view {name} has no TTL; the contract gives every view one")
        oldest_fresh: datetime = now - view.ttl
        start: datetime = view.most_recent_end_time or oldest_fresh
        if refill:
            start = min(start, oldest_fresh)
        elif since is not None:
            start = min(start, max(since, oldest_fresh))
        ran = start < now
        seconds, rows = 0.0, 0 if writes.counting else None
        if ran:
            began = time.perf_counter()
            before = writes.rows.get(name, 0)
            # Feast prints a progress banner per call; our ViewMaterialization reports instead.
            with contextlib.redirect_stdout(io.StringIO()):
                store.materialize(start_date=start, end_date=now, feature_views=[name])
            seconds = time.perf_counter() - began
            rows = writes.rows.get(name, 0) - before if writes.counting else None
        done.append(
            ViewMaterialization(
                view=name, start=start, end=now, ran=ran, seconds=seconds, rows_written=rows
            )
        )
    return tuple(done)


class OnlineWriteCounter:
    """Counts the rows Feast hands to its online store, per feature view.

    Feast's ``materialize`` returns nothing; its compute engine calls the provider's online
    store's ``online_write_batch(config, table, data, progress)`` with the rows. Wrapping that
    method on this store's instance (once) counts them; if Feast's internals differ from this
    (``_get_provider`` is private), counting is off and ``rows_written`` stays None.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.rows: dict[str, int] = {}
        self.counting = False
        try:
            online_store = store._get_provider().online_store
        except AttributeError:
            return
        existing = getattr(online_store, "_usdcop_write_counter", None)
        if isinstance(existing, OnlineWriteCounter):
            self.rows, self.counting = existing.rows, True
            return
        write = online_store.online_write_batch

        def counted(config: Any, table: Any, data: Any, progress: Any) -> Any:
            name = str(getattr(table, "name", ""))
            self.rows[name] = self.rows.get(name, 0) + len(data)
            return write(config, table, data, progress)

        setattr(online_store, "online_write_batch", counted)  # noqa: B010 -- this instance only
        setattr(online_store, "_usdcop_write_counter", self)  # noqa: B010
        self.counting = True


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be tz-aware (UTC), got naive {moment!r}")
