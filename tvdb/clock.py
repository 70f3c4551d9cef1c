"""Injectable time: every component that reads the time or sleeps takes a `Clock`.

Tests pass a `FakeClock` so that windows, expiries and backoff run instantly and exactly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic clock, for durations."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to; `sleep` advances it instead of waiting."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._mono = 0.0
        self.sleeps: list[float] = []

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += dt.timedelta(seconds=seconds)
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class VirtualClock:
    """Real time plus the seconds slept so far: `sleep` returns at once and moves both clocks on.

    A replay uses it, so recorded 429s, retry-after waits and poll intervals cost no wall time while
    everything that compares instants (pacing, backoff, timeouts) sees the time pass."""

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base or SystemClock()
        self.slept = 0.0

    def now(self) -> dt.datetime:
        return self._base.now() + dt.timedelta(seconds=self.slept)

    def monotonic(self) -> float:
        return self._base.monotonic() + self.slept

    async def sleep(self, seconds: float) -> None:
        self.slept += max(0.0, seconds)
        await asyncio.sleep(0)


def iso(ts: dt.datetime) -> str:
    """Timestamps in the database: ISO 8601 UTC with microseconds, so text order is time order."""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
