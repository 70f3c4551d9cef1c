"""Durations (`90d`, `2h`, `1h30m`) and report periods (`--since/--until/--day`) in a time zone.

Dates name calendar days in the configured time zone; datetimes without an offset are read in
that zone too; datetimes with an offset (or `Z`) are taken as given. All results are UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tvdb.errors import ConfigError

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")

MAX_DURATION = dt.timedelta(days=36_500)
"""The longest duration accepted (100 years): longer ones only overflow dates (ConfigError)."""

# Instants must leave a margin of a few days inside datetime's range (years 1–9999): periods add a
# day for inclusive dates, shift into the configured zone and step back a microsecond.
_EARLIEST = dt.datetime(1, 1, 3, tzinfo=dt.UTC)
_LATEST = dt.datetime(9999, 12, 29, tzinfo=dt.UTC)
_RANGE = "0001-01-03 … 9999-12-28"


def parse_duration(text: str, *, what: str = "duration") -> dt.timedelta:
    """`90d`, `2h`, `30m`, `45s`, `1w`, `1h30m` → timedelta. Raises ConfigError naming `what`."""
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0  # a float: "1.5h"; a huge number of digits becomes inf, caught below
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ConfigError(
            f"{what}: {text!r} is not a duration; use a number and a unit w/d/h/m/s, e.g. 90d, 2h, 1h30m"
        )
    if total <= 0:
        raise ConfigError(f"{what}: {text!r} must be longer than zero")
    if total > MAX_DURATION.total_seconds():  # also inf; timedelta() would raise OverflowError
        raise ConfigError(f"{what}: {text!r} is too long (at most {MAX_DURATION.days}d, 100 years)")
    return dt.timedelta(seconds=total)


def check_instant(value: dt.datetime, option: str, text: str | None = None) -> dt.datetime:
    """`value` if it lies within 0001-01-03 … 9999-12-28 UTC, where every period computation is
    safe; else ConfigError naming `option` and `text` (the value as the user wrote it)."""
    if not _EARLIEST <= value <= _LATEST:
        shown = text if text is not None else value.isoformat()
        raise ConfigError(f"{option}: {shown!r} is out of range (use instants within {_RANGE})")
    return value


def shift(value: dt.datetime, delta: dt.timedelta, option: str, text: str) -> dt.datetime:
    """`value + delta`, checked with `check_instant`: a ConfigError naming `option`/`text` instead
    of an OverflowError when the result leaves the supported range."""
    try:
        moved = value + delta
    except OverflowError:
        raise ConfigError(f"{option}: {text!r} is out of range (use instants within {_RANGE})") from None
    return check_instant(moved, option, text)


def _day_start(now: dt.datetime, days: int, timezone: str) -> dt.datetime:
    """The start of the local day `days` days after the one holding `now` (ConfigError naming
    --now when that leaves the supported range)."""
    text = now.isoformat()
    try:
        return check_instant(local_day_start(local_day(now, timezone) + dt.timedelta(days=days), timezone),
                             "--now", text)
    except OverflowError:
        raise ConfigError(f"--now: {text!r} is out of range (use instants within {_RANGE})") from None


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC range [since, until); None = unbounded on that side."""

    since: dt.datetime | None
    until: dt.datetime | None

    def contains(self, ts: dt.datetime) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)


def local_day_start(day: dt.date, timezone: str) -> dt.datetime:
    """Midnight at the start of `day` in `timezone`, as UTC."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(timezone)).astimezone(dt.UTC)


def local_day(ts: dt.datetime, timezone: str) -> dt.date:
    return ts.astimezone(ZoneInfo(timezone)).date()


def _parse_point(
    text: str, timezone: str, option: str, *, duration: bool = False,
) -> tuple[dt.datetime, bool]:
    """(instant, was_a_date). For a date, also checks that its next midnight is in range.

    `duration`: the option also takes a duration back from now, so the error names that form too.
    """
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            value = check_instant(local_day_start(day, timezone), option, text)
            check_instant(local_day_start(day + dt.timedelta(days=1), timezone), option, text)
            return value, True
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(timezone))
        return check_instant(value.astimezone(dt.UTC), option, text), False
    except ValueError:
        also = ", or a duration back from now (30d, 12h, 1h30m)" if duration else ""
        raise ConfigError(
            f"{option}: {text!r} is not a date (2026-01-31) or datetime (2026-01-31T14:00, "
            f"2026-01-31T14:00+01:00){also}"
        ) from None
    except OverflowError:  # year 1 or 9999 moved across midnight or into UTC
        raise ConfigError(f"{option}: {text!r} is out of range (use instants within {_RANGE})") from None


def parse_period(
    *, since: str | None = None, until: str | None = None, day: str | None = None,
    timezone: str = "UTC", now: dt.datetime | None = None, default_days: int | None = 7,
) -> Period:
    """The period of `--since/--until/--day`.

    `--day D` is that whole local day. `--since` takes a date (from its midnight), a datetime, or a
    duration back from `now` (`7d`). `--until` takes a date (inclusive: up to the next midnight) or a
    datetime (exclusive). With none of them: the last `default_days` local days including today
    (None: all time). Raises ConfigError for unreadable input or an empty period.
    """
    if day is not None:
        if since is not None or until is not None:
            raise ConfigError("--day cannot be combined with --since/--until")
        start, is_date = _parse_point(day, timezone, "--day")
        if not is_date:
            raise ConfigError(f"--day: {day!r} must be a date such as 2026-01-31")
        d = dt.date.fromisoformat(day.strip())
        return Period(start, local_day_start(d + dt.timedelta(days=1), timezone))
    start_ts: dt.datetime | None = None
    end_ts: dt.datetime | None = None
    if since is not None:
        if since.strip()[-1:].lower() in _UNITS and not since.strip()[:1].isalpha() and "-" not in since:
            if now is None:
                raise ConfigError("--since: a relative duration needs the current time")
            start_ts = shift(now, -parse_duration(since, what="--since"), "--since", since)
        else:
            start_ts, _ = _parse_point(since, timezone, "--since", duration=True)
    if until is not None:
        end_ts, is_date = _parse_point(until, timezone, "--until")
        if is_date:
            d = dt.date.fromisoformat(until.strip())
            end_ts = local_day_start(d + dt.timedelta(days=1), timezone)
    if since is None and until is None and default_days is not None and now is not None:
        # The hidden --now is the only way `now` gets near the ends of the calendar.
        start_ts = _day_start(now, -(default_days - 1), timezone)
        end_ts = _day_start(now, 1, timezone)
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        raise ConfigError("the period is empty: --until must be after --since")
    return Period(start_ts, end_ts)
