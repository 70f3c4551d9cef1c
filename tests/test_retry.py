"""The one retry policy: what it retries, how long it waits (FakeClock), when it gives up, and the ledger
rows ServiceCaller writes for each attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.openai_support import metered_caller, usage_rows
from tvdb.clock import FakeClock
from tvdb.config import RetrySettings
from tvdb.domain import Implementation
from tvdb.errors import (
    CostLimitExceeded,
    MalformedResponseError,
    PermanentServiceError,
    QuotaExhausted,
    RateLimitExceeded,
    ServiceTimeoutError,
    ServiceUnavailableError,
    TvdbError,
)
from tvdb.ledger.guard import CallScope
from tvdb.services.calls import CallSpec, RetryPolicy
from tvdb.services.retry import ServiceRetryPolicy


def failing(errors: list[BaseException], result: str = "ok") -> tuple[Callable[[int], object], list[int]]:
    """An attempt function that raises `errors` in turn, then returns `result`; records attempt numbers."""
    seen: list[int] = []

    async def attempt(n: int) -> str:
        seen.append(n)
        if errors:
            raise errors.pop(0)
        return result

    return attempt, seen


def policy(clock: FakeClock, **settings: float) -> ServiceRetryPolicy:
    return ServiceRetryPolicy(RetrySettings(**settings), sleep=clock.sleep, rng=random.Random(1))  # type: ignore[arg-type]


def rate_limited(after: float | None) -> RateLimitExceeded:
    return RateLimitExceeded("429", retry_after=after, service="openai", status=429, code="rate_limit_exceeded")


def test_satisfies_the_protocol() -> None:
    checked: RetryPolicy = ServiceRetryPolicy(RetrySettings(), sleep=FakeClock().sleep)
    assert isinstance(checked, ServiceRetryPolicy)


async def test_retry_after_is_honoured_exactly() -> None:
    clock = FakeClock()
    attempt, seen = failing([rate_limited(1.0), rate_limited(0.25)])
    assert await policy(clock).run(attempt) == "ok"  # type: ignore[arg-type]
    assert seen == [1, 2, 3]
    assert clock.sleeps == [1.0, 0.25]


async def test_exponential_backoff_with_jitter_when_no_retry_after() -> None:
    clock = FakeClock()
    errors: list[BaseException] = [ServiceUnavailableError("503", service="openai", status=503) for _ in range(6)]
    attempt, seen = failing(errors)
    result = await policy(clock, max_attempts=7, initial_backoff_s=0.5, max_backoff_s=4.0).run(attempt)  # type: ignore[arg-type]
    assert result == "ok" and seen == [1, 2, 3, 4, 5, 6, 7]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # min(0.5 · 2^(n-1), 4)
    assert len(clock.sleeps) == 6
    for slept, base in zip(clock.sleeps, bases, strict=True):
        assert 0.75 * base <= slept <= base  # the SDK's jitter: base · (1 − 0.25·U)
    assert len(set(clock.sleeps[3:])) == 3  # jittered, not constant


@pytest.mark.parametrize("error", [
    ServiceTimeoutError("timeout", service="openai"),
    MalformedResponseError("bad body", service="openai", status=200),
    ServiceUnavailableError("connection reset", service="openai"),
])
async def test_every_transient_error_is_retried(error: TvdbError) -> None:
    clock = FakeClock()
    attempt, seen = failing([error])
    assert await policy(clock).run(attempt) == "ok"  # type: ignore[arg-type]
    assert seen == [1, 2]


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    clock = FakeClock()
    errors: list[BaseException] = [rate_limited(0.5) for _ in range(3)]
    last = errors[-1]
    attempt, seen = failing(errors)
    with pytest.raises(RateLimitExceeded) as info:
        await policy(clock, max_attempts=3).run(attempt)  # type: ignore[arg-type]
    assert info.value is last
    assert seen == [1, 2, 3] and clock.sleeps == [0.5, 0.5]


async def test_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    clock = FakeClock()
    attempt, seen = failing([rate_limited(121.0)])
    with pytest.raises(RateLimitExceeded):
        await policy(clock, max_retry_after_s=120).run(attempt)  # type: ignore[arg-type]
    assert seen == [1] and clock.sleeps == []


@pytest.mark.parametrize("error", [
    QuotaExhausted("insufficient_quota", service="openai", status=429, code="insufficient_quota"),
    PermanentServiceError("model_not_found", service="openai", status=404, code="model_not_found"),
    CostLimitExceeded(spent=1, reserved=0, limit=1, requested=0.1, window="daily"),
    ValueError("a bug is not a service failure"),
])
async def test_permanent_errors_are_never_retried(error: BaseException) -> None:
    clock = FakeClock()
    attempt, seen = failing([error])
    with pytest.raises(type(error)):
        await policy(clock).run(attempt)  # type: ignore[arg-type]
    assert seen == [1] and clock.sleeps == []


async def test_service_caller_writes_one_row_per_failed_attempt_and_cost_only_for_the_success(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock, max_attempts=4)
    errors: list[BaseException] = [rate_limited(1.0), ServiceUnavailableError("500", service="openai", status=500,
                                                                              request_id="req_500")]

    async def send() -> int:
        if errors:
            raise errors.pop(0)
        return 1_000_000

    spec: CallSpec[int] = CallSpec(service="openai", implementation=Implementation.REAL,
                                   model="text-embedding-3-small", unit="tokens", estimate_units=1_000_000,
                                   send=send, actual_units=lambda tokens: tokens)
    done = await caller.call(CallScope("run-1", "retry-test", "embed"), spec)
    done.commit(caller.db, caller.budget)
    rows = usage_rows(caller.db)
    assert [(r["attempt"], r["status"], r["http_status"], r["error_code"]) for r in rows] == [
        (1, "error", 429, "rate_limit_exceeded"), (2, "error", 500, "ServiceUnavailableError"), (3, "ok", 200, None)]
    assert rows[1]["request_id"] == "req_500"
    assert [r["cost_usd"] for r in rows] == [0, 0, 0.02]  # C08: 1M tokens of 3-small cost exactly $0.02
    assert clock.sleeps[0] == 1.0


async def test_retry_log_line_names_only_what_the_service_said(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    bare = ServiceUnavailableError("503", service="llamaparse", status=503)
    attempt, _ = failing([bare, rate_limited(0.5)])
    with caplog.at_level("WARNING", logger="tvdb.services.retry"):
        assert await policy(clock).run(attempt) == "ok"  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [
        "llamaparse attempt 1 failed (ServiceUnavailableError, HTTP 503); retrying in 0.483s",
        "openai attempt 2 failed (RateLimitExceeded, HTTP 429, code rate_limit_exceeded); retrying in 0.500s",
    ]
