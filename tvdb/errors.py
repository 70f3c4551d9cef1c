"""The one error tree of tvdb, and the one place that maps errors to exit codes.

    TvdbError
    ├── ConfigError                      bad tvdb.yaml / environment / flags          exit 2
    │   └── TokenizerUnavailable         tiktoken vocabulary cannot be loaded
    ├── ScenarioError(path, line, key)   bad scenario file                            exit 2
    ├── DocumentError(code, path)        one document cannot be ingested (job fails)
    ├── SignedUrlError                   a tampered or expired signed URL
    ├── VectorValidationError            a vector of the wrong shape, NaN/inf, bad norm
    ├── ServiceError(service, status, request_id, code)
    │   ├── TransientServiceError(retry_after)      worth retrying
    │   │   ├── RateLimitExceeded(limit, window, rate_limits)  HTTP 429 rate_limit_exceeded
    │   │   │   └── LocalRequestLimitExceeded       tvdb's own hourly request limit
    │   │   ├── ServiceUnavailableError             HTTP 5xx, connection errors
    │   │   ├── ServiceTimeoutError                 no answer in time
    │   │   └── MalformedResponseError              a body that is not what the API documents
    │   ├── QuotaExhausted                           HTTP 429 insufficient_quota / 402: permanent
    │   └── PermanentServiceError                    other 4xx (bad request, auth, model not found)
    │       ├── RequestOverTokenLimit(tokens, limit)  over the account's tokens per minute: 429 forever
    │       └── ParseJobError(error_code)            a parse job that ended FAILED/CANCELLED/timed out
    ├── CostLimitExceeded(spent, reserved, limit, requested, window)              exit 3
    ├── PriceUnknownError(service, model)  no price for a billable call: never $0
    ├── StorageError(path)               disk full / read-only: the run stops, resumable  exit 4
    ├── RunNotFound
    │   └── AmbiguousRunId               a run id prefix that matches several runs
    ├── RunBusy                          another process is working on that run
    └── CassetteError
        └── CassetteMiss

Exit codes (see ``exit_code_for``): 0 all expectations passed, 1 an expectation failed,
2 usage/config/scenario error, 3 a budget refused the run, 4 the disk is full or read-only,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from tvdb.money import format_usd

if TYPE_CHECKING:
    from tvdb.domain import RateLimits

EXIT_OK = 0
EXIT_EXPECTATION_FAILED = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_STORAGE = 4  # the disk is full or read-only: nothing is lost, free space and resume
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, reported without a traceback unless --debug
EXIT_INTERRUPTED = 130
# `code` of the RateLimitExceeded that tvdb's own hourly request limit raises (not an HTTP 429)
LOCAL_REQUEST_LIMIT = "local_request_limit"


class ErrorCode(StrEnum):
    """Why a job failed; stable strings that appear in `--json` output and the database."""

    ENCRYPTED = "encrypted"
    CORRUPT = "corrupt"
    NO_TEXT = "no_text"
    EMPTY = "empty"  # a 0-byte file
    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_LARGE = "too_large"
    BUDGET = "budget"
    RATE_LIMITED = "rate_limited"
    QUOTA = "quota"
    SERVICE_ERROR = "service_error"
    TIMEOUT = "timeout"
    INVALID_VECTOR = "invalid_vector"
    SIGNED_URL = "signed_url"
    PRICE_UNKNOWN = "price_unknown"
    CASSETTE_MISS = "cassette_miss"
    NOT_FOUND = "not_found"
    PARTIAL_PARSE = "partial_parse"
    CANCELLED = "cancelled"
    PIPELINE_ERROR = "pipeline_error"  # a scenario's `pipeline:` hook (the user's own code) raised
    INTERNAL = "internal"


class TvdbError(Exception):
    """Base of every error tvdb raises on purpose. `error_code` is what a job that fails with it records."""

    error_code: ErrorCode = ErrorCode.INTERNAL


class ConfigError(TvdbError):
    """Configuration (tvdb.yaml, environment, flags) is invalid or incomplete. `fix`, when known, says
    what to change (`set TVDB_DAILY_BUDGET_USD to a number of USD like 5 or 0.50, or unset it`)."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        # a key typed where a setting goes is never repeated back (URLs are masked by their makers,
        # which show an example URL on purpose)
        from tvdb.redaction import mask_keys

        super().__init__(mask_keys(message))
        self.fix = None if fix is None else mask_keys(fix)


class OptionError(ConfigError):
    """A command-line option's value is wrong (`--by: unknown group 'colour'; use one of …`): a usage
    error, so `--json` names the `command` and `param` as it does for click's own usage errors."""

    def __init__(self, message: str, *, command: str, param: str, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.command = command
        self.param = param


class TokenizerUnavailable(ConfigError):
    """tiktoken could not load its vocabulary (usually: no network and no cache)."""


class ScenarioError(TvdbError):
    """A scenario file is invalid; names the file, the line and the key when known."""

    def __init__(
        self, message: str, *, path: Path | str | None = None, line: int | None = None, key: str | None = None,
        more: tuple[ScenarioError, ...] = (),
    ) -> None:
        from tvdb.redaction import redact  # a key typed into the file (as a value, a key, a path) never shows

        self.message = redact(message)
        self.path = Path(path) if path is not None else None
        self.line = line
        self.key = None if key is None else redact(key)
        # Further problems found in the same pass, so a user fixes them all at once instead of one per run.
        self.more = more
        where = ""
        if self.path is not None:
            where = redact(f"{self.path}:{line}: " if line is not None else f"{self.path}: ")
        what = f"{self.key}: " if self.key else ""
        text = f"{where}{what}{message}"
        if more:
            text += "".join(f"\n{other}" for other in more)
            text += f"\n({1 + len(more)} problems)"
        super().__init__(text)

    @property
    def problems(self) -> list[dict[str, object]]:
        """Every problem found: [{"line", "key", "message"}, ...], the first one first."""
        return [{"line": e.line, "key": e.key, "message": e.message} for e in (self, *self.more)]


class DocumentError(TvdbError):
    """One document cannot be ingested; fails its own job with `code`, never the run."""

    def __init__(self, code: ErrorCode, message: str, *, path: str | None = None) -> None:
        self.code = code
        self.error_code = code
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class SignedUrlError(TvdbError):
    """A signed URL was tampered with or has expired."""

    code = error_code = ErrorCode.SIGNED_URL


class VectorValidationError(TvdbError):
    """An embedding vector has the wrong dimension, a NaN/inf, or a norm far from 1."""

    code = error_code = ErrorCode.INVALID_VECTOR


class ServiceError(TvdbError):
    """A call to a (real or local) service failed.

    `status` is the HTTP status when there was one; `code` the provider's error code
    (e.g. ``rate_limit_exceeded``); `request_id` the provider's ``x-request-id``.
    `maybe_billed` is True when the provider may have processed, and billed, the request although
    we have no usable answer: a timeout or a lost connection after the request was sent, a 200
    whose body cannot be read. False only when it provably was not processed: refused before
    sending, connection refused, or an error status the provider does not bill. The budget then
    counts the call's estimate as spent (`assumed`) instead of releasing it (tvdb.ledger.guard).
    """

    error_code: ErrorCode = ErrorCode.SERVICE_ERROR
    transient: bool = False
    # units the service says it billed for the failed request (a parse job's credits as pages):
    # the ledger then settles at that amount instead of releasing or assuming
    billed_units: float | None = None

    def __init__(
        self,
        message: str,
        *,
        service: str,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        maybe_billed: bool = False,
    ) -> None:
        self.message = message
        self.maybe_billed = maybe_billed
        self.service = service
        self.status = status
        self.request_id = request_id
        self.code = code
        super().__init__(message)


class TransientServiceError(ServiceError):
    """A failure that may succeed later; `retry_after` is in seconds when the service said so."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class RateLimitExceeded(TransientServiceError):
    """HTTP 429 `rate_limit_exceeded`, or a local request limit: `limit` requests per `window`.

    `rate_limits` holds the 429's own `x-ratelimit-*` headers when it sent them: they name the
    account's limits even when no request has succeeded yet."""

    error_code = ErrorCode.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        limit: int | None = None,
        window: str | None = None,
        retry_after: float | None = None,
        rate_limits: RateLimits | None = None,
        **kwargs: object,
    ) -> None:
        self.limit = limit
        self.window = window
        self.rate_limits = rate_limits
        super().__init__(message, retry_after=retry_after, **kwargs)


class LocalRequestLimitExceeded(RateLimitExceeded):
    """tvdb's own hourly request limit refused a call before it was sent (no HTTP 429 involved).

    A budget matter, not a flaky service: it is never retried, and `on_budget_exceeded` decides."""

    error_code = ErrorCode.BUDGET


class ServiceUnavailableError(TransientServiceError):
    """HTTP 5xx or a dropped connection."""


class ServiceTimeoutError(TransientServiceError):
    """The service did not answer in time."""

    error_code = ErrorCode.TIMEOUT


class MalformedResponseError(TransientServiceError):
    """The service answered with a body that does not match its documented shape."""


class QuotaExhausted(ServiceError):
    """Out of credits or quota (`insufficient_quota`, HTTP 402): permanent, never retried."""

    error_code = ErrorCode.QUOTA


class PermanentServiceError(ServiceError):
    """A 4xx other than 408/409/429: bad request, bad key, unknown model. Never retried."""


class RequestOverTokenLimit(PermanentServiceError):
    """A request (or one input) of `tokens` tokens, more than the account may send in a minute
    (`limit`, its `x-ratelimit-limit-tokens`). The API answers such a request 429 however long one
    waits, so it is never retried as it is: the embed driver splits it, and an input over the limit
    on its own fails with this error. `status` is 429 when it was sent, None when refused unsent."""

    error_code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, tokens: int, limit: int, **kwargs: object) -> None:
        self.tokens = tokens
        self.limit = limit
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ParseJobError(PermanentServiceError):
    """A parse job the service accepted that did not complete: FAILED (`service_error`, or `encrypted`
    for a protected PDF), CANCELLED (`cancelled`), timed out and cancelled by us (`timeout`), or too
    many failed pages (`partial_parse`). Never retried: a new upload would be billed again."""

    def __init__(
        self, message: str, *, error_code: ErrorCode, billed_units: float | None = None,
        maybe_billed: bool = False, **kwargs: object,
    ) -> None:
        self.error_code = error_code
        self.billed_units = billed_units
        super().__init__(message, maybe_billed=maybe_billed, **kwargs)  # type: ignore[arg-type]


class CostLimitExceeded(TvdbError):
    """A budget refused a call before any money was spent. Amounts in USD.

    `fix` says how to let the call through (which setting to raise, to what); `requested_by` names
    what `requested` is the cost of when that is not plain (one request covering several documents)."""

    error_code = ErrorCode.BUDGET

    def __init__(
        self, *, spent: float, reserved: float, limit: float, requested: float, window: str, fix: str = "",
        requested_by: str = "",
    ) -> None:
        self.spent = spent
        self.reserved = reserved
        self.limit = limit
        self.requested = requested
        self.window = window
        self.fix = fix
        self.requested_by = requested_by
        by = f" ({requested_by})" if requested_by else ""
        super().__init__(
            f"{window} budget {format_usd(limit)} would be exceeded: spent {format_usd(spent)}, "
            f"reserved {format_usd(reserved)}, requested {format_usd(requested)}{by}" + (f"; {fix}" if fix else "")
        )

    def requested_for(self, what: str) -> CostLimitExceeded:
        """The same refusal, saying that `requested` is the estimated cost of `what`."""
        return CostLimitExceeded(spent=self.spent, reserved=self.reserved, limit=self.limit,
                                 requested=self.requested, window=self.window, fix=self.fix, requested_by=what)


class PriceUnknownError(TvdbError):
    """No price is known for a billable call; real spending is blocked rather than priced at $0."""

    error_code = ErrorCode.PRICE_UNKNOWN

    def __init__(self, service: str, model: str) -> None:
        self.service = service
        self.model = model
        super().__init__(f"no price known for {service} {model!r}; add it to the price table before real use")


class StorageError(TvdbError):
    """tvdb cannot write its database or object store at `path`: the disk is full, read-only, or
    failing (SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR, ENOSPC, EROFS…). Stops the run; what was
    done is kept, and `resume_command` (when known) continues once there is space."""

    def __init__(self, path: str, reason: str, *, resume_command: str | None = None,
                 fix: str = "free some space (or make it writable)", action: str = "cannot write") -> None:
        self.path = path
        self.reason = reason
        self.resume_command = resume_command
        self.fix = fix  # what to do about it: a database server that is down needs a different fix
        # "cannot write" for a disk; a server that does not answer is "cannot reach", even for `tvdb runs`.
        self.action = action
        then = f", then continue with: {resume_command}" if resume_command else ", then run the command again"
        super().__init__(f"{action} {path}: {reason}; nothing done is lost: {fix}{then}")

    def with_resume(self, command: str) -> StorageError:
        return StorageError(self.path, self.reason, resume_command=command, fix=self.fix, action=self.action)


class RunNotFound(TvdbError):
    """No run with that id in the database."""


class AmbiguousRunId(RunNotFound):
    """A run id prefix (or correlation ID prefix) that matches more than one."""


class RunBusy(TvdbError):
    """Another live process is working on that run (two resumes would pay twice)."""


class CassetteError(TvdbError):
    """A cassette cannot be read, written or matched."""


class CassetteMiss(CassetteError):
    """A replayed request has no recorded interaction in the cassette: the document's job fails with
    `cassette_miss` (the message names the closest recorded request and how to re-record)."""

    error_code = ErrorCode.CASSETTE_MISS


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an error that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, CostLimitExceeded):
        return EXIT_BUDGET
    if isinstance(exc, StorageError):
        return EXIT_STORAGE
    return EXIT_USAGE
