"""Trading session calendar of the 5-minute bars.

What enters: calendar days and bar open times (tz-aware UTC datetimes).
What leaves: the session's bar opens and whether a time is one of them.

A session runs Monday to Friday with bar opens 13:00, 13:05, ..., 17:55 UTC (60 bars);
the last bar closes at 18:00 UTC. Holidays are not modelled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

SESSION_OPEN_UTC = time(13, 0)
"""Open time (UTC) of the first bar of a session."""

BAR_MINUTES = 5
"""Length of one bar in minutes."""

BARS_PER_SESSION = 60
"""Number of bars in one session (13:00..17:55 opens)."""

BAR_NS = BAR_MINUTES * 60 * 1_000_000_000
"""Length of one bar in nanoseconds (a bar's event time is its open plus this)."""

_SESSION_OPEN_MINUTE = SESSION_OPEN_UTC.hour * 60 + SESSION_OPEN_UTC.minute
_LAST_OPEN_MINUTE = _SESSION_OPEN_MINUTE + (BARS_PER_SESSION - 1) * BAR_MINUTES


def is_weekday(day: date) -> bool:
    """True for Monday..Friday."""
    return day.weekday() < 5


def weekdays(start: date, end: date) -> list[date]:
    """Every weekday in ``[start, end]`` (both inclusive), ascending."""
    count = (end - start).days + 1
    days = (start + timedelta(days=offset) for offset in range(max(count, 0)))
    return [day for day in days if is_weekday(day)]


def is_session_bar(open_time: datetime) -> bool:
    """True if ``open_time`` (tz-aware) is the open of one of a weekday session's 60 bars.

    Raises ``ValueError`` for a naive datetime: a bar time without a zone is ambiguous.
    """
    if open_time.tzinfo is None or open_time.utcoffset() is None:
        raise ValueError(f"bar open time must be tz-aware, got naive {open_time!r}")
    utc = open_time.astimezone(UTC)
    minute = utc.hour * 60 + utc.minute
    return (
        is_weekday(utc.date())
        and utc.second == 0
        and utc.microsecond == 0
        and _SESSION_OPEN_MINUTE <= minute <= _LAST_OPEN_MINUTE
        and (minute - _SESSION_OPEN_MINUTE) % BAR_MINUTES == 0
    )


def session_bar_opens(day: date) -> list[datetime]:
    """The 60 bar opens (tz-aware UTC) of ``day``'s session; empty on Saturday and Sunday."""
    if not is_weekday(day):
        return []
    first = datetime.combine(day, SESSION_OPEN_UTC, tzinfo=UTC)
    step = timedelta(minutes=BAR_MINUTES)
    return [first + i * step for i in range(BARS_PER_SESSION)]
