"""THE retry policy of tvdb (tenacity), used by `ServiceCaller` for every service call, mock or real.

- Retries `TransientServiceError` only (rate limits, 5xx, dropped connections, timeouts, malformed
  bodies). `QuotaExhausted`, `PermanentServiceError`, budget refusals and anything else propagate at
  once: a quota error is permanent, and retrying it would only add failed requests.
- Waits what the service asked for (`retry_after`, from `retry-after-ms` / `retry-after`); when that
  is more than `max_retry_after_s` it gives up at once, as the OpenAI SDK does past 120 s.
- Otherwise exponential backoff with jitter, the SDK's own formula (contracts.md §1.7):
  `min(initial · 2^(n-1), max) · (1 − 0.25·U[0,1))` before retry n.
  U comes from an RNG seeded per run (the scenario's name), so retries keep a scenario reproducible.
- At most `max_attempts` attempts; the last error is re-raised unchanged.

The SDKs' own retries are off (`max_retries=0`), so every attempt reaches `ServiceCaller`, which
writes one usage row per failed attempt. Nothing else in tvdb may loop on errors.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from tvdb.config import RetrySettings
from tvdb.errors import LocalRequestLimitExceeded, ServiceError, TransientServiceError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
log = logging.getLogger(__name__)


def _error(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    return outcome.exception() if outcome is not None and outcome.failed else None


class _RetryAfterTooLong(stop_base):
    """Stop when the service asks for a longer wait than we accept."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = _error(retry_state)
        after = getattr(exc, "retry_after", None)
        return after is not None and after > self.limit_s


def _retryable(exc: BaseException) -> bool:
    # our own budget guard's refusal (an hourly request limit) is a policy decision, not a flaky
    # service: it fails or defers the job (on_budget_exceeded) instead of sleeping here
    return isinstance(exc, TransientServiceError) and not isinstance(exc, LocalRequestLimitExceeded)


class ServiceRetryPolicy:
    """Implements `tvdb.services.calls.RetryPolicy` from `RetrySettings`.

    `sleep` is injected (tests pass `FakeClock.sleep`); `rng` replaces the jitter's source. Without
    it the jitter is drawn from an RNG seeded with `seed` (a run passes its scenario's name), so two
    runs of a scenario back off alike and its faults stay deterministic once retries happen.
    """

    def __init__(
        self,
        settings: RetrySettings | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        seed: str = "",
    ) -> None:
        self.settings = settings or RetrySettings()
        self._sleep = sleep
        self._rng = rng or random.Random(f"tvdb-retry:{seed}")

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1-based) when the service gave no retry-after."""
        s = self.settings
        base = min(s.initial_backoff_s * 2.0 ** (retry_number - 1), s.max_backoff_s)
        return base * (1 - 0.25 * self._rng.random())

    def _wait(self, state: RetryCallState) -> float:
        after = getattr(_error(state), "retry_after", None)
        if after is not None:
            return float(after)
        return self.backoff(state.attempt_number)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = _error(state)
        wait = float(state.next_action.sleep) if state.next_action is not None else 0.0
        if isinstance(exc, ServiceError):
            # only what the service told us: "code None, request None" reads like a bug in a CI log
            facts = [type(exc).__name__]
            facts += [f"{label} {value}" for label, value in
                      (("HTTP", exc.status), ("code", exc.code), ("request", exc.request_id)) if value is not None]
            log.warning("%s attempt %d failed (%s); retrying in %.3fs",
                        exc.service, state.attempt_number, ", ".join(facts), wait)

    async def run(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        """Call `attempt(1)`, `attempt(2)`, … until one succeeds or the policy gives up (re-raises)."""
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=(stop_after_attempt(self.settings.max_attempts)
                  | _RetryAfterTooLong(self.settings.max_retry_after_s)),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for trial in retrying:
            with trial:
                return await attempt(trial.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
