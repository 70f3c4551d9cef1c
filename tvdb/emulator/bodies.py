"""Error bodies exactly as the real services send them, shared by the emulator and the fault transport.

OpenAI: `{"error": {"message", "type", "param", "code"}}` (contracts.md §1.3, §1.5; the SDK reads
`e.code`/`e.type` from it). LlamaCloud: FastAPI-style `{"detail": "..."}` (§2.4).
Pure functions: no I/O, stdlib only.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass, field

from tvdb.faults.plan import Fault
from tvdb.services.remote.status import QUOTA_CODES

RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
API_KEYS_URL = "https://platform.openai.com/account/api-keys"
API_REFERENCE_URL = "https://platform.openai.com/docs/api-reference"
ERROR_CODES_URL = "https://platform.openai.com/docs/guides/error-codes/api-errors"
EMULATOR_ORG = "org-tvdbemulator"

QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    f"For more information on this error, read the docs: {ERROR_CODES_URL}."
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
OVERLOADED_MESSAGE = "The engine is currently overloaded, please try again later"
INVALID_INPUT_MESSAGE = f"'$.input' is invalid. Please check the API reference: {API_REFERENCE_URL}."
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if "
    "you're accessing the API from your browser and are prompted for a username. You can obtain an API "
    f"key from {API_KEYS_URL}."
)
DIMENSIONS_MESSAGE = "This model does not support specifying dimensions."


@dataclass(frozen=True, slots=True)
class WireError:
    """An HTTP error response: status, extra headers, JSON body bytes."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def request_id() -> str:
    """A fresh id in the real format (`req_` + 32 hex)."""
    return "req_" + secrets.token_hex(16)


def openai_error(
    status: int, message: str, *, type: str, code: str | None = None, param: str | None = None,
    headers: dict[str, str] | None = None,
) -> WireError:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return WireError(status, json.dumps(body).encode(), dict(headers or {}))


def mask_key(key: str) -> str:
    """How the API echoes a bad key: never the whole value (the first 3 and last 4 characters at most)."""
    if len(key) < 12:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def invalid_api_key(key: str | None) -> WireError:
    if not key:
        return openai_error(401, NO_KEY_MESSAGE, type="invalid_request_error", code="invalid_api_key")
    return openai_error(
        401, f"Incorrect API key provided: {mask_key(key)}. You can find your API key at {API_KEYS_URL}.",
        type="invalid_request_error", code="invalid_api_key",
    )


def model_not_found(model: str) -> WireError:
    return openai_error(
        404, f"The model `{model}` does not exist or you do not have access to it.",
        type="invalid_request_error", code="model_not_found",
    )


def invalid_input() -> WireError:
    return openai_error(400, INVALID_INPUT_MESSAGE, type="invalid_request_error")


def context_length(limit: int, requested: int) -> WireError:
    return openai_error(
        400,
        f"This model's maximum context length is {limit} tokens, however you requested {requested} tokens "
        f"({requested} in your prompt; 0 for the completion). "
        "Please reduce your prompt; or completion length.",
        type="invalid_request_error",
    )


def too_many_tokens(requested: int, limit: int) -> WireError:
    return openai_error(
        400, f"Requested {requested} tokens, max {limit} tokens per request",
        type="max_tokens_per_request", code="max_tokens_per_request",
    )


def invalid_type(param: str, expected: str, value: object) -> WireError:
    """400 for a field of the wrong JSON type, e.g. `dimensions: true`."""
    got = {bool: "a boolean", str: "a string", float: "a number", list: "an array", dict: "an object"}.get(
        type(value), "a value")
    return openai_error(400, f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
                        type="invalid_request_error", code="invalid_type", param=param)


def dimensions_unsupported() -> WireError:
    return openai_error(400, DIMENSIONS_MESSAGE, type="invalid_request_error")


def go_duration(seconds: float) -> str:
    """`x-ratelimit-reset-*` values are Go durations: "6ms", "2.812s", "1m0s"."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.3f}".rstrip("0").rstrip(".") + "s"


def retry_after_headers(seconds: float | None) -> dict[str, str]:
    """`retry-after` (seconds) and `retry-after-ms`, both read by the SDK (contracts.md §1.7)."""
    if seconds is None:
        return {}
    # whole seconds in `retry-after` (as servers send it), the exact value in `retry-after-ms`
    return {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))}


def rate_limited(
    model: str, *, window: str, limit: int, used: int, requested: int, retry_after: float | None,
) -> WireError:
    """429 `rate_limit_exceeded`; `window` is "requests" (RPM) or "tokens" (TPM)."""
    what = "requests per min (RPM)" if window == "requests" else "tokens per min (TPM)"
    wait = f" Please try again in {go_duration(retry_after)}." if retry_after is not None else ""
    message = (
        f"Rate limit reached for {model} in organization {EMULATOR_ORG} on {what}: Limit {limit}, "
        f"Used {used}, Requested {requested}.{wait} Visit {RATE_LIMITS_URL} to learn more."
    )
    return openai_error(429, message, type=window, code="rate_limit_exceeded",
                        headers=retry_after_headers(retry_after))


def insufficient_quota(code: str = "insufficient_quota") -> WireError:
    return openai_error(429, QUOTA_MESSAGE, type="insufficient_quota", code=code)


def openai_status_fault(fault: Fault, model: str = "text-embedding-3-small") -> WireError:
    """The real body for a `status` fault: 429 rate limit or quota, 5xx, 401, 404, other 4xx."""
    status = fault.status or 500
    headers = retry_after_headers(fault.retry_after)
    quota = fault.type == "insufficient_quota" or fault.code in QUOTA_CODES
    if status == 429 and quota:
        err = insufficient_quota(fault.code or "insufficient_quota")
        return WireError(429, err.body, {**err.headers, **headers})
    if status == 429:
        window = fault.type if fault.type in ("requests", "tokens") else "requests"
        return rate_limited(model, window=window, limit=3000, used=3000, requested=1,
                            retry_after=fault.retry_after)
    defaults: dict[int, tuple[str, str, str | None]] = {
        500: (SERVER_ERROR_MESSAGE, "server_error", None),
        503: (OVERLOADED_MESSAGE, "server_error", None),
        401: (NO_KEY_MESSAGE, "invalid_request_error", "invalid_api_key"),
        404: (f"The model `{model}` does not exist or you do not have access to it.",
              "invalid_request_error", "model_not_found"),
        400: (INVALID_INPUT_MESSAGE, "invalid_request_error", None),
    }
    message, type_, code = defaults.get(
        status, (SERVER_ERROR_MESSAGE, "server_error", None) if status >= 500
        else (f"HTTP {status}", "invalid_request_error", None))
    return openai_error(status, fault.message or message, type=fault.type or type_,
                        code=fault.code if fault.code is not None else code, headers=headers)


def llamaparse_status_fault(fault: Fault) -> WireError:
    """LlamaCloud errors are `{"detail": "..."}` (contracts.md §2.4)."""
    status = fault.status or 500
    default = {
        401: "Invalid authentication token",
        402: "You've exceeded the maximum number of credits for your plan",
        404: "Not Found",
        429: "Too Many Requests",
    }.get(status, "Internal Server Error" if status >= 500 else f"HTTP {status}")
    body = json.dumps({"detail": fault.message or default}).encode()
    return WireError(status, body, retry_after_headers(fault.retry_after))


def status_fault(fault: Fault) -> WireError:
    return openai_status_fault(fault) if fault.service == "openai" else llamaparse_status_fault(fault)


# Bodies that no client can parse; what "malformed_body" faults send with a 200.
MALFORMED_BODY = {
    "openai": b'{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": "AAAA',
    "llamaparse": b'{"id": "pjb-',
}
