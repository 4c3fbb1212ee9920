"""Which 5-minute slots the live mode appends: aligned to the clock, completed, capped."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.live import due_bar_opens

SUNDAY = datetime(2026, 1, 11, 12, 2, 30, tzinfo=UTC)


def test_only_completed_slots_after_the_last_bar() -> None:
    last = datetime(2026, 1, 11, 11, 45, tzinfo=UTC)
    assert due_bar_opens(last, SUNDAY, 12) == [
        datetime(2026, 1, 11, 11, 50, tzinfo=UTC),
        datetime(2026, 1, 11, 11, 55, tzinfo=UTC),  # closed at 12:00 <= 12:02:30
    ]


def test_a_slot_is_due_exactly_when_it_closes() -> None:
    last = datetime(2026, 1, 11, 11, 55, tzinfo=UTC)
    assert due_bar_opens(last, datetime(2026, 1, 11, 12, 4, 59, tzinfo=UTC), 12) == []
    assert due_bar_opens(last, datetime(2026, 1, 11, 12, 5, tzinfo=UTC), 12) == [
        datetime(2026, 1, 11, 12, 0, tzinfo=UTC)
    ]


def test_catch_up_is_capped_to_the_latest_slots() -> None:
    friday_last = datetime(2026, 1, 9, 17, 55, tzinfo=UTC)
    opens = due_bar_opens(friday_last, SUNDAY, 12)
    assert len(opens) == 12
    assert opens[0] == datetime(2026, 1, 11, 11, 0, tzinfo=UTC)
    assert opens[-1] == datetime(2026, 1, 11, 11, 55, tzinfo=UTC)
    assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(opens))


def test_nothing_due_when_up_to_date() -> None:
    assert due_bar_opens(datetime(2026, 1, 11, 11, 55, tzinfo=UTC), SUNDAY, 12) == []


def test_max_bars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_bars"):
        due_bar_opens(SUNDAY, SUNDAY, 0)
