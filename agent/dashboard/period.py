"""Which days the figures cover: ``[since, until]``, whole days in ``[agent] time_zone``.

The same rules for the page's ``?since=&until=`` and ``voice-agent report --since --until``,
so both refuse the same mistakes with the same words. Pure: dates in, dates out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_DAYS = 30
"""The period when none is given: the last 30 days, today included."""
MAX_DAYS = 366
"""The longest period one page or report covers (a year, leap day included)."""


class PeriodError(ValueError):
    """A ``since``/``until`` the user gave that makes no period; the message says why."""


@dataclass(frozen=True)
class Period:
    since: date
    """The first day, included."""
    until: date
    """The last day, included."""

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def each_day(self) -> Iterator[date]:
        for offset in range(self.days):
            yield self.since + timedelta(days=offset)

    def utc_bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """``[start, end)`` as naive UTC (how rows store times): midnight at the start of
        ``since`` to midnight at the end of ``until``, where the business is."""
        return _utc_midnight(self.since, zone), _utc_midnight(self.until + timedelta(days=1), zone)


def _utc_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC).replace(tzinfo=None)


def parse_period(
    since: str | None, until: str | None, today: date, names: tuple[str, str] = ("since", "until")
) -> Period:
    """The period named by two optional ``YYYY-MM-DD`` texts; raises ``PeriodError``.

    No ``until``: today. No ``since``: the ``DEFAULT_DAYS`` days that end on ``until``.
    ``names``: what the messages call the two (the page's fields, the command's options).
    """
    last = _parse_day(names[1], until) if until else today
    first = _parse_day(names[0], since) if since else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise PeriodError(f"{names[0]} ({first}) is after {names[1]} ({last})")
    period = Period(first, last)
    if period.days > MAX_DAYS:
        raise PeriodError(f"{period.days} days from {first} to {last}; at most {MAX_DAYS}")
    return period


def _parse_day(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise PeriodError(f"{name} is not a date like 2025-01-31: {shown!r}") from None


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The business's calendar day of a naive-UTC time."""
    return moment.replace(tzinfo=UTC).astimezone(zone).date()


def local_time(moment: datetime, zone: ZoneInfo) -> datetime:
    """A naive-UTC time as an aware time where the business is."""
    return moment.replace(tzinfo=UTC).astimezone(zone)
