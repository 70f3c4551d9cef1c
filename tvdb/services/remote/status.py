"""HTTP status (+ provider code/type) → the typed errors of tvdb.errors, for every remote service.

    429 rate_limit_exceeded            → RateLimitExceeded(retry_after, rate_limits)   transient
    429 type insufficient_quota, 402   → QuotaExhausted                                permanent
    408                                → ServiceTimeoutError                           transient
    409, ≥ 500                         → ServiceUnavailableError                       transient
    other 4xx (400/401/403/404/422)    → PermanentServiceError                         permanent

The real clients and the fault wrappers for local services both use this, so a fault raises the
same error whichever implementation ran. Sources: contracts.md §1.5 (OpenAI), §2.4 (LlamaCloud).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tvdb.domain import RateLimits
from tvdb.errors import (
    PermanentServiceError,
    QuotaExhausted,
    RateLimitExceeded,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)

# `type: insufficient_quota` with one of these codes means billing, never a rate limit (contracts §1.5).
QUOTA_CODES = frozenset({
    "insufficient_quota", "credit_balance_exhausted", "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded", "organization_usage_limit_exceeded",
})

_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_COUNT = re.compile(r"[0-9]+")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string ("2ms", "1.5s", "19m5.228s", "6m0s"), as OpenAI's
    `x-ratelimit-reset-*` headers send them (contracts.md §1.6); None when `text` is not one."""
    text = text.strip()
    if text == "0":
        return 0.0
    parts = _GO_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


def parse_rate_limits(headers: Mapping[str, str]) -> RateLimits | None:
    """The `x-ratelimit-*` headers of a response; None when it has no `x-ratelimit-remaining-*`
    header (a proxy, a local server). A value that is not a count or a duration counts as not sent."""
    def count(name: str) -> int | None:
        raw = headers.get(name)
        # ASCII digits only: headers arrive as latin-1, and "²".isdigit() is True but int("²") fails
        return int(raw) if raw is not None and _COUNT.fullmatch(raw.strip()) else None

    def duration(name: str) -> float | None:
        raw = headers.get(name)
        return parse_go_duration(raw) if raw is not None else None

    limits = RateLimits(
        count("x-ratelimit-limit-requests"), count("x-ratelimit-limit-tokens"),
        count("x-ratelimit-remaining-requests"), count("x-ratelimit-remaining-tokens"),
        duration("x-ratelimit-reset-requests"), duration("x-ratelimit-reset-tokens"),
    )
    if limits.remaining_requests is None and limits.remaining_tokens is None:
        return None
    return limits


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, else `retry-after` (float seconds); None when absent or not a number.

    The HTTP-date form of `retry-after` is not used by these APIs and is ignored.
    """
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / scale
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


def error_for_status(
    service: str,
    status: int,
    *,
    message: str,
    code: str | None = None,
    type: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    rate_limits: RateLimits | None = None,
) -> ServiceError:
    """The typed error for an HTTP error response; `message` must already be free of secrets.
    `rate_limits` (the response's `x-ratelimit-*` headers) travels with a 429 rate limit."""
    label = code or type
    text = f"{service} HTTP {status}" + (f" {label}" if label else "") + f": {message}"
    code = code or type
    if status == 402 or (status == 429 and (type == "insufficient_quota" or code in QUOTA_CODES)):
        return QuotaExhausted(text, service=service, status=status, request_id=request_id, code=code)
    if status == 429:
        return RateLimitExceeded(
            text, retry_after=retry_after, window=type if type in ("requests", "tokens") else None,
            rate_limits=rate_limits, service=service, status=status, request_id=request_id, code=code,
        )
    if status == 408:
        return ServiceTimeoutError(text, retry_after=retry_after, service=service, status=status,
                                   request_id=request_id, code=code)
    if status == 409 or status >= 500:
        return ServiceUnavailableError(text, retry_after=retry_after, service=service, status=status,
                                       request_id=request_id, code=code)
    return PermanentServiceError(text, service=service, status=status, request_id=request_id, code=code)
