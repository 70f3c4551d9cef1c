"""`LlamaParseClient`: the real `Parser`, on LlamaCloud's Parse API v2 over httpx2 (async).

    upload   POST {base}/api/v2/parse/upload   multipart: `configuration` (JSON string), then `file`
    wait     GET  {base}/api/v2/parse/{id}      every poll_interval_s, +1 s per poll, capped at
                                                max_poll_interval_s, until parse.timeout_s (or a
                                                signed webhook says the job ended: tvdb.webhooks)
    result   GET  {base}/api/v2/parse/{id}?expand=markdown&expand=text
    on timeout: POST {base}/api/v2/parse/{id}/cancel, then fail `timeout` naming the job and file

Source: https://developers.llamaindex.ai/llamaparse/parse/guides/api-reference/ (contracts.md §2.3).
One upload is one metered call (`ServiceCaller`): its errors are typed by
tvdb.services.remote.status (429/5xx/connection transient and retried there, i.e. re-uploaded, but
only when the job was never created; 401/422 permanent; 402 QuotaExhausted). Once the job exists, a
status or result request that fails transiently is retried here through the same one retry policy
(tvdb.services.retry) and never re-uploads; if it keeps failing the job fails `service_error`,
counted as possibly billed. FAILED → `encrypted` (PDF_IS_PROTECTED) or `service_error`; CANCELLED
→ `cancelled`; failed pages → warnings, or `partial_parse` past `max_page_failure_ratio`.
Billing: `job.usage.credits` ÷ the tier's credits per page = the pages billed; null credits bill
the estimate (usage `estimated: true`). The API key is sent only in the Authorization header and
never appears in a message, a log line or a row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from tvdb import catalog
from tvdb.clock import Clock
from tvdb.domain import Implementation, Page, ParsedDocument, ParseRequest, ParseResult, RetriedRequest
from tvdb.errors import (
    ConfigError,
    ErrorCode,
    MalformedResponseError,
    ParseJobError,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    TransientServiceError,
)
from tvdb.redaction import redact, redact_url
from tvdb.services.local.formats.pagetext import clean_page_text, is_no_content_placeholder
from tvdb.services.parse_pages import fail_pages, job_failed_error
from tvdb.services.remote.status import error_for_status, parse_retry_after

if TYPE_CHECKING:
    from tvdb.config import Settings
    from tvdb.faults.plan import FaultPlan, FaultSchedule
    from tvdb.http import AsyncBaseTransport, AsyncClient, Response
    from tvdb.services.calls import RetryPolicy
    from tvdb.settings import ParseSettings

SERVICE: Final = "llamaparse"
DEFAULT_BASE_URL = "https://api.cloud.llamaindex.ai"
EU_BASE_URL = "https://api.cloud.eu.llamaindex.ai"
REPLAY_KEY = "llx-fake-replay-needs-no-key"
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
log = logging.getLogger(__name__)


class JobWaiter(Protocol):
    """Something that learns when a job ends without polling (the webhook receiver)."""

    def webhook_config(self) -> dict[str, Any]: ...

    async def wait(self, job_id: str, timeout_s: float) -> str | None:
        """The job's final status from an event, or None when none arrived within `timeout_s`."""
        ...


class LlamaParseClient:
    """The `Parser` for LlamaParse v2. Build it with `build_llamaparse_client(settings, ...)`.

    `http_client` is the injected httpx2 client (its transport may be a `FaultTransport` or a
    cassette); `retry` is the run's one retry policy; `clock` times polls. `status_requests`
    counts the status GETs sent (benchmarks). `await aclose()` at the end.
    """

    service: str = SERVICE
    implementation: Implementation = Implementation.REAL

    def __init__(
        self, *, api_key: str, base_url: str, http_client: AsyncClient, settings: ParseSettings,
        clock: Clock, retry: RetryPolicy | None = None, waiter: JobWaiter | None = None,
        implementation: Implementation = Implementation.REAL,
    ) -> None:
        from tvdb.services.calls import NoRetry

        self.implementation = implementation  # REPLAY when a cassette answers (its rows cost nothing)
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.settings = settings
        self.status_requests = 0
        self._key = api_key
        self._http = http_client
        self._clock = clock
        self._retry: RetryPolicy = retry or NoRetry()
        self._waiter = waiter

    @property
    def identity(self) -> str:
        """The endpoint and what selects the pages and their text: results from another base URL,
        tier version or page range are another source (the reuse key)."""
        s = self.settings
        return (f"LlamaParseClient v2 {self.base_url} version={s.version} max_pages={s.max_pages} "
                f"target_pages={s.target_pages}")

    def __repr__(self) -> str:
        return f"LlamaParseClient(base_url={self.shown_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()
        closer = getattr(self._waiter, "aclose", None)
        if closer is not None:
            await closer()

    # -- the Parser ---------------------------------------------------------------------------

    async def parse(self, request: ParseRequest) -> ParseResult:
        """Upload, wait, fetch: the document's pages (1-based numbers as the service gives them)."""
        job, replayed = await self._upload(request)
        job_id = str(job["id"])
        try:
            final = await self._wait(job_id, request, job)
            status = final.get("status")
            if status == "FAILED":
                raise job_failed_error(SERVICE, self._text(final.get("error_message")) or "no error message",
                                       filename=request.filename, job_id=job_id,
                                       billed_units=self._pages_of(final, request.tier))
            if status == "CANCELLED":
                raise ParseJobError(f"{SERVICE}: parse job {job_id} for {request.filename} was CANCELLED",
                                    error_code=ErrorCode.CANCELLED, service=SERVICE, code="cancelled",
                                    request_id=job_id, billed_units=self._pages_of(final, request.tier),
                                    maybe_billed=True)
            body = await self._polite(lambda: self._get(job_id, expand=("markdown", "text")), job_id, request,
                                      "result")
            if body["job"].get("status") != "COMPLETED":
                raise ParseJobError(f"{SERVICE}: parse job {job_id} for {request.filename} is "
                                    f"{body['job'].get('status')} after it was announced COMPLETED",
                                    error_code=ErrorCode.SERVICE_ERROR, service=SERVICE, request_id=job_id,
                                    maybe_billed=True)
        except ParseJobError:
            raise
        except ServiceError as exc:
            # the job exists and may be billed: never hand a transient error to the caller's retry,
            # which would upload (and pay for) the document again
            raise ParseJobError(f"{SERVICE}: parse job {job_id} for {request.filename}: {exc.message}",
                                error_code=exc.error_code, service=SERVICE, status=exc.status,
                                code=exc.code, request_id=job_id, maybe_billed=True) from None
        result = self._result(request, job_id, body)
        if replayed:  # `--record-mode once/new_episodes` served this job from the cassette: nothing spent
            result = replace(result, usage={**result.usage, "replayed": True})
        return result

    # -- requests -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}

    def _configuration(self, request: ParseRequest) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {"tier": request.tier, "version": s.version}
        ranges = {k: v for k, v in (("max_pages", s.max_pages), ("target_pages", s.target_pages)) if v}
        if ranges:
            config["page_ranges"] = ranges
        if self._waiter is not None:
            config["webhook_configurations"] = [self._waiter.webhook_config()]
        return config

    async def _upload(self, request: ParseRequest) -> tuple[dict[str, Any], bool]:
        """The new job, and whether a recording session answered the upload from its cassette."""
        from tvdb.services.remote.openai_embedder import REPLAYED_HEADER

        config = json.dumps(self._configuration(request))
        files = {"file": (request.filename, request.data, request.media_type.split(";", 1)[0])}
        response = await self._send("POST", "/api/v2/parse/upload", data={"configuration": config},
                                    files=files, upload=True)
        job = self._json(response, "upload")
        if not isinstance(job.get("id"), str) or not job["id"]:
            raise MalformedResponseError(f"{SERVICE}: the upload answer has no job id", service=SERVICE,
                                         status=response.status_code, maybe_billed=True)
        return job, REPLAYED_HEADER in response.headers

    async def _get(self, job_id: str, expand: tuple[str, ...] = ()) -> dict[str, Any]:
        params = [("expand", e) for e in expand]
        response = await self._send("GET", f"/api/v2/parse/{job_id}", params=params)
        body = self._json(response, "status")
        if not isinstance(body.get("job"), dict):
            raise MalformedResponseError(f"{SERVICE}: the status answer for job {job_id} has no `job`",
                                         service=SERVICE, status=response.status_code)
        return body

    async def _cancel(self, job_id: str) -> dict[str, Any] | None:
        try:
            response = await self._send("POST", f"/api/v2/parse/{job_id}/cancel")
            return self._json(response, "cancel")
        except ServiceError as exc:
            log.warning("could not cancel parse job %s: %s", job_id, exc.message)
            return None

    async def _send(self, method: str, path: str, *, upload: bool = False, **kwargs: Any) -> Response:
        """One HTTP request; errors typed. An upload that may have reached the service is `maybe_billed`."""
        from tvdb.http import ConnectError, ConnectTimeout, HTTPError, PoolTimeout, TimeoutException

        try:
            response = await self._http.request(method, self.base_url + path, headers=self._headers(), **kwargs)
        except (ConnectError, ConnectTimeout, PoolTimeout) as exc:
            raise ServiceUnavailableError(f"{SERVICE}: cannot reach {self.shown_url} ({type(exc).__name__})",
                                          service=SERVICE) from None
        except TimeoutException:
            raise ServiceTimeoutError(
                f"{SERVICE}: no answer within {self.settings.request_timeout_s:g}s from {self.shown_url}",
                service=SERVICE, maybe_billed=upload) from None
        except HTTPError as exc:
            raise ServiceUnavailableError(f"{SERVICE}: connection to {self.shown_url} lost ({type(exc).__name__})",
                                          service=SERVICE, maybe_billed=upload) from None
        if response.status_code >= 400:
            raise self._status_error(response)
        return response

    def _status_error(self, response: Response) -> ServiceError:
        detail: Any = None
        try:
            detail = json.loads(response.content).get("detail")
        except (ValueError, AttributeError, UnicodeDecodeError):
            pass
        if isinstance(detail, list):  # FastAPI validation: [{loc, msg, type}]
            parts = [f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
                     if isinstance(d, dict)]
            message = "; ".join(parts) or "invalid request"
        else:
            message = detail if isinstance(detail, str) else response.reason_phrase or "error"
        return error_for_status(SERVICE, response.status_code, message=redact(message, [self._key]),
                                request_id=None, retry_after=parse_retry_after(response.headers))

    def _json(self, response: Response, what: str) -> dict[str, Any]:
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise MalformedResponseError(f"{SERVICE}: the {what} answer is not a JSON object "
                                         f"({len(response.content)} bytes)", service=SERVICE,
                                         status=response.status_code, maybe_billed=what == "upload")
        return body

    @staticmethod
    def _text(value: Any) -> str:
        return redact(value) if isinstance(value, str) else ""

    # -- waiting ------------------------------------------------------------------------------

    async def _polite(self, fn: Callable[[], Awaitable[dict[str, Any]]], job_id: str, request: ParseRequest,
                      kind: str) -> dict[str, Any]:
        """`fn()` under the one retry policy: a transient failure is retried, never re-uploaded. Each
        failed try that is retried goes to `request.on_retried` (a ledger row), when the next starts:
        only then is it known to have been retried."""
        failed: list[RetriedRequest] = []

        async def attempt(n: int) -> dict[str, Any]:
            if failed and request.on_retried is not None:
                request.on_retried(failed.pop())
            at, started = self._clock.now(), self._clock.monotonic()
            try:
                return await fn()
            except ServiceError as exc:
                failed[:] = [RetriedRequest(kind, job_id, n, exc.code or type(exc).__name__, exc.status,
                                            (self._clock.monotonic() - started) * 1000, at, self.implementation)]
                raise

        doing = "polling" if kind == "status" else "fetching the result of"
        try:
            return await self._retry.run(attempt)
        except TransientServiceError as exc:
            raise ParseJobError(f"{SERVICE}: {doing} parse job {job_id} for {request.filename} failed: {exc.message}",
                                error_code=ErrorCode.SERVICE_ERROR, service=SERVICE, status=exc.status,
                                code=exc.code, request_id=job_id, maybe_billed=True) from None

    async def _wait(self, job_id: str, request: ParseRequest, job: dict[str, Any]) -> dict[str, Any]:
        """The job once final: polled (or announced by a webhook); cancelled at the deadline."""
        s, filename = self.settings, request.filename
        if job.get("status") in FINAL:
            return job
        deadline = self._clock.monotonic() + s.timeout_s
        poll_now = False
        if self._waiter is not None:
            status = await self._waiter.wait(job_id, min(s.webhook_grace_s, s.timeout_s))
            if status == "COMPLETED":  # the result request that follows carries the job itself
                return {"id": job_id, "status": status}
            poll_now = True  # another final status needs the job's details; no event: poll as a fallback
        interval, last = s.poll_interval_s, job
        while (remaining := deadline - self._clock.monotonic()) > 0:
            if not poll_now:
                await self._clock.sleep(min(interval, remaining))
            poll_now = False
            self.status_requests += 1
            polled = await self._polite(lambda: self._get(job_id), job_id, request, "status")
            last = dict(polled["job"])
            if last.get("status") in FINAL:
                return last
            interval = min(interval + 1.0, s.max_poll_interval_s)  # linear, as the SDK polls
        cancelled = await self._cancel(job_id)
        state = (cancelled or last).get("status", "unknown")
        raise ParseJobError(
            f"{SERVICE}: parse job {job_id} for {filename} did not finish within parse.timeout_s = "
            f"{s.timeout_s:g}s (last status {last.get('status')}): timeout; cancelled (now {state})",
            error_code=ErrorCode.TIMEOUT, service=SERVICE, code="timeout", request_id=job_id,
            billed_units=self._pages_of(cancelled, None), maybe_billed=True,
        )

    # -- results ------------------------------------------------------------------------------

    def _pages_of(self, job: dict[str, Any] | None, tier: str | None) -> float | None:
        """Billed pages from `usage.credits` (None when the service has not recorded them)."""
        if not isinstance(job, dict):
            return None
        usage = job.get("usage")
        credits = usage.get("credits") if isinstance(usage, dict) else None
        if not isinstance(credits, int | float) or isinstance(credits, bool) or credits < 0:
            return None
        per_page = catalog.PARSE_CREDITS_PER_PAGE.get(tier or str(job.get("tier")))
        return None if not per_page else credits / per_page

    def _result(self, request: ParseRequest, job_id: str, body: dict[str, Any]) -> ParseResult:
        def pages_of(key: str) -> dict[int, dict[str, Any]]:
            part = body.get(key)
            items = part.get("pages") if isinstance(part, dict) else None
            return {p["page_number"]: p for p in items or [] if isinstance(p, dict)
                    and isinstance(p.get("page_number"), int)}

        markdown, text = pages_of("markdown"), pages_of("text")
        if not markdown and not text:
            raise ParseJobError(f"{SERVICE}: parse job {job_id} for {request.filename} COMPLETED without "
                                "markdown or text pages", error_code=ErrorCode.SERVICE_ERROR, service=SERVICE,
                                code="malformed_result", request_id=job_id, maybe_billed=True)
        pages: list[Page] = []
        failed: dict[int, str] = {}
        notes: list[str] = []
        for number in sorted(set(markdown) | set(text)):
            md = markdown.get(number, {})
            if md.get("success") is False:
                failed[number] = self._text(md.get("error")) or "failed"
                pages.append(Page(number, ""))
                continue
            raw = str(md.get("markdown") or "")
            fallback = text.get(number, {}).get("text")
            if not clean_page_text(raw) and isinstance(fallback, str) and fallback:
                raw = fallback  # empty markdown: the text layer may still hold words
            raw = str(raw)
            cleaned = clean_page_text(raw)
            if not cleaned:
                notes.append(f"page {number}: " + ("image-only page (LlamaParse placeholder)"
                                                   if is_no_content_placeholder(raw) else "no text"))
            pages.append(Page(number, cleaned))
        billed = self._pages_of(body["job"], request.tier)
        document = fail_pages(ParsedDocument(tuple(pages), request.media_type, tuple(notes)), failed,
                              self.settings.max_page_failure_ratio, request.filename, job_id=job_id,
                              billed_units=billed)
        usage: dict[str, Any] = {"job_id": job_id, "tier": request.tier, "pages": len(pages),
                                 "credits": body["job"].get("usage", {}).get("credits")}
        if billed is None:
            usage["estimated"] = True  # credits not recorded yet: the ledger bills the estimate
        return ParseResult(document, pages_billed=round(billed) if billed is not None else len(pages),
                           request_id=job_id, usage=usage)


def build_llamaparse_client(
    settings: Settings, clock: Clock, *, retry: RetryPolicy | None = None,
    transport: AsyncBaseTransport | None = None, faults: FaultPlan | FaultSchedule | None = None,
    waiter: JobWaiter | None = None, implementation: Implementation = Implementation.REAL,
) -> LlamaParseClient:
    """The real parser for `settings`: key from `llama_cloud_api_key` / LLAMA_CLOUD_API_KEY, base URL
    from `llama_cloud_base_url` / LLAMA_CLOUD_BASE_URL (default https://api.cloud.llamaindex.ai).

    `transport` replaces the network transport (tests, cassettes); `faults` wraps it in a
    `FaultTransport` (uploads count as calls, status requests as `on: poll`); `implementation=REPLAY`
    is the client a `tvdb replay` answers from its cassette. Raises ConfigError
    when no key is configured.
    """
    from tvdb.http import ACCEPT_ENCODING, AsyncClient, AsyncHTTPTransport, Limits, Timeout

    secret = settings.llama_cloud_api_key
    key = secret.get_secret_value() if secret is not None else None
    if not key and implementation is Implementation.REPLAY:
        key = REPLAY_KEY  # a cassette answers: nothing is sent anywhere, CI needs no secret
    if not key:
        raise ConfigError(
            "real parsing needs a LlamaCloud API key: set LLAMA_CLOUD_API_KEY (or llama_cloud_api_key in "
            "tvdb.yaml); to try real mode offline, start `tvdb emulate` and set LLAMA_CLOUD_BASE_URL to its "
            "address"
        )
    pool = max(10, 2 * settings.parse.concurrency)
    inner: AsyncBaseTransport = transport or AsyncHTTPTransport(
        limits=Limits(max_connections=pool, max_keepalive_connections=pool))
    if faults is not None:
        from tvdb.faults.transport import FaultTransport, llamaparse_channel

        inner = FaultTransport(inner, faults, SERVICE, channel=llamaparse_channel)
    t = settings.parse.request_timeout_s
    client = AsyncClient(transport=inner, timeout=Timeout(t, connect=min(5.0, t)),
                         headers={"Accept-Encoding": ACCEPT_ENCODING})
    return LlamaParseClient(api_key=key, base_url=settings.llama_cloud_base_url or DEFAULT_BASE_URL,
                            http_client=client, settings=settings.parse, clock=clock, retry=retry,
                            waiter=waiter, implementation=implementation)


def build_real_parser(
    settings: Settings, clock: Clock, *, retry: RetryPolicy | None = None,
    faults: FaultPlan | FaultSchedule | None = None, transport: AsyncBaseTransport | None = None,
    implementation: Implementation = Implementation.REAL,
) -> LlamaParseClient:
    """The run's real parser; with `parse.webhook: true` it starts an in-process webhook receiver
    and waits on it (its `aclose` stops the receiver too)."""
    waiter: Any = None
    if settings.parse.webhook:
        from tvdb.webhooks.receiver import start_receiver

        waiter = start_receiver(settings)
    return build_llamaparse_client(settings, clock, retry=retry, faults=faults, transport=transport,
                                   waiter=waiter, implementation=implementation)
