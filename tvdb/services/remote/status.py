"""HTTP status (+ provider code/type) → the typed errors of tvdb.errors, for every remote service.

    429 rate_limit_exceeded            → RateLimitExceeded(retry_after)      transient
    429 type insufficient_quota, 402   → QuotaExhausted                      permanent
    408                                → ServiceTimeoutError                 transient
    409, ≥ 500                         → ServiceUnavailableError             transient
    other 4xx (400/401/403/404/422)    → PermanentServiceError               permanent

The real clients and the fault wrappers for local services both use this, so a fault raises the
same error whichever implementation ran. Sources: contracts.md §1.5 (OpenAI), §2.4 (LlamaCloud).
"""

from __future__ import annotations

from collections.abc import Mapping

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
) -> ServiceError:
    """The typed error for an HTTP error response; `message` must already be free of secrets."""
    label = code or type
    text = f"{service} HTTP {status}" + (f" {label}" if label else "") + f": {message}"
    code = code or type
    if status == 402 or (status == 429 and (type == "insufficient_quota" or code in QUOTA_CODES)):
        return QuotaExhausted(text, service=service, status=status, request_id=request_id, code=code)
    if status == 429:
        return RateLimitExceeded(
            text, retry_after=retry_after, window=type if type in ("requests", "tokens") else None,
            service=service, status=status, request_id=request_id, code=code,
        )
    if status == 408:
        return ServiceTimeoutError(text, retry_after=retry_after, service=service, status=status,
                                   request_id=request_id, code=code)
    if status == 409 or status >= 500:
        return ServiceUnavailableError(text, retry_after=retry_after, service=service, status=status,
                                       request_id=request_id, code=code)
    return PermanentServiceError(text, service=service, status=status, request_id=request_id, code=code)
