"""Requests- and tokens-per-minute limits over a sliding 60-second window, as the OpenAI API reports them.

Admitted requests count; refused ones do not. The state behind the `x-ratelimit-*` headers
(contracts.md §1.6): limit, remaining (decreasing as the window fills), and reset (Go duration until
the window is empty again). Thread-safe; the clock (monotonic seconds) is injectable.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tvdb.emulator.bodies import go_duration

WINDOW_S = 60.0
# What an account with no configured limit reports (the real captures show these tier figures).
DEFAULT_RPM = 10_000
DEFAULT_TPM = 10_000_000


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of one request: admitted, or refused on `window` ("requests"/"tokens")."""

    admitted: bool
    headers: dict[str, str]
    window: str | None = None
    limit: int = 0
    used: int = 0
    retry_after: float | None = None


class SlidingWindowLimiter:
    def __init__(self, rpm: int | None = None, tpm: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._lock = threading.Lock()
        self._events: deque[tuple[float, int]] = deque()
        self._tokens = 0

    def _purge(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - WINDOW_S:
            self._tokens -= self._events.popleft()[1]

    def _headers(self, now: float) -> dict[str, str]:
        rpm, tpm = self.rpm or DEFAULT_RPM, self.tpm or DEFAULT_TPM
        reset = self._events[-1][0] + WINDOW_S - now if self._events else 0.0
        return {
            "x-ratelimit-limit-requests": str(rpm),
            "x-ratelimit-limit-tokens": str(tpm),
            "x-ratelimit-remaining-requests": str(max(0, rpm - len(self._events))),
            "x-ratelimit-remaining-tokens": str(max(0, tpm - self._tokens)),
            "x-ratelimit-reset-requests": go_duration(reset),
            "x-ratelimit-reset-tokens": go_duration(reset),
        }

    def admit(self, tokens: int) -> Admission:
        """Count a request of `tokens` tokens if the limits allow it now; otherwise say how long to wait."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            if self.rpm is not None and len(self._events) + 1 > self.rpm:
                wait = self._events[0][0] + WINDOW_S - now
                return Admission(False, self._headers(now), "requests", self.rpm, len(self._events), wait)
            if self.tpm is not None and self._tokens + tokens > self.tpm:
                freed, wait = 0, WINDOW_S
                for t, n in self._events:
                    freed += n
                    if self._tokens - freed + tokens <= self.tpm:
                        wait = t + WINDOW_S - now
                        break
                return Admission(False, self._headers(now), "tokens", self.tpm, self._tokens, wait)
            self._events.append((now, tokens))
            self._tokens += tokens
            return Admission(True, self._headers(now))
