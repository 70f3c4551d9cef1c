"""A circuit breaker per service, on the injected clock.

    closed ──(failure_threshold consecutive transient failures, after retries)──► open
    open ──(cooldown_s later)──► half-open: exactly one trial call is let through
    half-open ──trial succeeds──► closed        half-open ──trial fails──► open again (cooldown anew)

Only failures that say the service itself is unwell count (5xx, timeouts, dropped connections,
429s the retry policy could not outlast); a request the service rightly refuses (400, 422) proves
it is up and counts as a success.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from tvdb.clock import Clock

State = Literal["closed", "open", "half-open"]
Admission = Literal["closed", "trial", "open", "busy"]


class CircuitBreaker:
    """Not thread-safe: one event loop per run drives it."""

    def __init__(self, service: str, *, failure_threshold: int, cooldown_s: float, clock: Clock) -> None:
        self.service = service
        self.threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0  # consecutive
        self.opened_at: dt.datetime | None = None  # wall time, for the reason text
        self._opened_mono = 0.0
        self._trial = False  # a half-open trial call is in flight

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        if self.clock.monotonic() - self._opened_mono >= self.cooldown_s:
            return "half-open"
        return "open"

    def admit(self) -> Admission:
        """closed: go ahead · trial: you are the half-open trial call (report its outcome) ·
        open: do not call · busy: half-open, but another call is the trial."""
        state = self.state
        if state == "closed":
            return "closed"
        if state == "open":
            return "open"
        if self._trial:
            return "busy"
        self._trial = True
        return "trial"

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial = False

    def failure(self) -> None:
        self.failures += 1
        trial, self._trial = self._trial, False
        if trial or self.failures >= self.threshold:
            self.opened_at = self.clock.now()
            self._opened_mono = self.clock.monotonic()

    def abandon(self) -> None:
        """The trial call ended without telling anything about the service (e.g. a budget refusal)."""
        self._trial = False

    def reason(self) -> str:
        """"circuit open since 12:03:41 after 5 failures" (UTC)."""
        since = f"{self.opened_at:%H:%M:%S}" if self.opened_at else "?"
        return f"{self.service} circuit open since {since} after {self.failures} failures"
