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


def parse_duration(text: str, *, what: str = "duration") -> dt.timedelta:
    """`90d`, `2h`, `30m`, `45s`, `1w`, `1h30m` → timedelta. Raises ConfigError naming `what`."""
    s = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
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
    return dt.timedelta(seconds=total)


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


def _parse_point(text: str, timezone: str, option: str) -> tuple[dt.datetime, bool]:
    """(instant, was_a_date)."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            return local_day_start(dt.date.fromisoformat(raw), timezone), True
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise ConfigError(
            f"{option}: {text!r} is not a date (2026-01-31) or datetime (2026-01-31T14:00, "
            "2026-01-31T14:00+01:00)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value.astimezone(dt.UTC), False


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
            start_ts = now - parse_duration(since, what="--since")
        else:
            start_ts, _ = _parse_point(since, timezone, "--since")
    if until is not None:
        end_ts, is_date = _parse_point(until, timezone, "--until")
        if is_date:
            d = dt.date.fromisoformat(until.strip())
            end_ts = local_day_start(d + dt.timedelta(days=1), timezone)
    if since is None and until is None and default_days is not None and now is not None:
        today = local_day(now, timezone)
        start_ts = local_day_start(today - dt.timedelta(days=default_days - 1), timezone)
        end_ts = local_day_start(today + dt.timedelta(days=1), timezone)
    if start_ts is not None and end_ts is not None and end_ts <= start_ts:
        raise ConfigError("the period is empty: --until must be after --since")
    return Period(start_ts, end_ts)
