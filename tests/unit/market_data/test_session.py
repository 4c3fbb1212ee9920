from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from market_data.session import BARS_PER_SESSION, is_session_bar, session_bar_opens, weekdays


def test_session_bar_opens() -> None:
    opens = session_bar_opens(date(2025, 3, 3))  # a Monday
    assert len(opens) == BARS_PER_SESSION == 60
    assert opens[0] == datetime(2025, 3, 3, 13, 0, tzinfo=UTC)
    assert opens[-1] == datetime(2025, 3, 3, 17, 55, tzinfo=UTC)
    assert all(b - a == timedelta(minutes=5) for a, b in pairwise(opens))
    assert session_bar_opens(date(2025, 3, 1)) == []  # Saturday
    assert session_bar_opens(date(2025, 3, 2)) == []  # Sunday


def test_is_session_bar() -> None:
    assert is_session_bar(datetime(2025, 3, 3, 13, 0, tzinfo=UTC))
    assert is_session_bar(datetime(2025, 3, 3, 17, 55, tzinfo=UTC))
    assert not is_session_bar(datetime(2025, 3, 3, 18, 0, tzinfo=UTC))
    assert not is_session_bar(datetime(2025, 3, 3, 12, 55, tzinfo=UTC))
    assert not is_session_bar(datetime(2025, 3, 3, 13, 2, tzinfo=UTC))
    assert not is_session_bar(datetime(2025, 3, 1, 14, 0, tzinfo=UTC))
    bogota = timezone(timedelta(hours=-5))
    assert is_session_bar(datetime(2025, 3, 3, 8, 0, tzinfo=bogota))  # 13:00 UTC
    with pytest.raises(ValueError, match="tz-aware"):
        is_session_bar(datetime(2025, 3, 3, 13, 0))


def test_weekdays() -> None:
    days = weekdays(date(2025, 2, 28), date(2025, 3, 4))
    assert days == [date(2025, 2, 28), date(2025, 3, 3), date(2025, 3, 4)]
    assert weekdays(date(2025, 3, 4), date(2025, 3, 3)) == []
