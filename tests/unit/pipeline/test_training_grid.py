"""The training-set grid starts on a bar boundary whatever --start says, and bad ranges say so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.training_set import grid


def test_an_off_bar_start_moves_up_to_the_next_bar_boundary() -> None:
    start = datetime(2026, 3, 2, 10, 26, 32, tzinfo=UTC)
    times = grid(start, datetime(2026, 3, 2, 11, 0, tzinfo=UTC), timedelta(minutes=5))
    assert times[0] == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert all(t.minute % 5 == 0 and t.second == 0 for t in times)
    assert len(times) == 7


def test_a_start_on_a_boundary_is_kept() -> None:
    start = datetime(2026, 3, 2, 10, 25, tzinfo=UTC)
    times = grid(start, start + timedelta(hours=1), timedelta(minutes=15))
    assert times[0] == start and len(times) == 5


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2026, 3, 2, 11, tzinfo=UTC), datetime(2026, 3, 2, 10, tzinfo=UTC), "before"),
        (
            datetime(2026, 3, 2, 10, 26, tzinfo=UTC),
            datetime(2026, 3, 2, 10, 29, tzinfo=UTC),
            "no bar boundary",
        ),
    ],
)
def test_a_range_without_a_grid_time_is_refused(
    start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        grid(start, end, timedelta(minutes=5))
