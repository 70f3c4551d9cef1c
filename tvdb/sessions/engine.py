"""The session's engine: every request a session serves goes through `Engine.dispatch`, on the
session's own event loop thread (so sync and async clients, on any thread or loop, share one
ledger connection, one router and one emulator).

    request ─► ServiceRouter.route (mode; hybrid: breaker, real_until_pct, budget)
            ─► ServiceCaller (reserve the estimate → send → usage row; settle from `usage`)
            ─► FaultTransport (the scenario fault plan, in every mode)
            ─► mock: the in-process emulator · real: out to the service (the request's own key)
               · replay/record: the same real path, answered or recorded by the cassette (vcrpy)

An HTTP error answer goes back to the client as it came (the SDK raises its own exception class);
its ledger row is an `error` row and its reservation is released (an error status is not billed).
A parse job is billed when its status says it is over: the upload's row is written then, with the
job's `usage.credits` (or, if the session ends first, at the reserved estimate).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.domain import Implementation, Mode
from tvdb.errors import (
    PermanentServiceError,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    TransientServiceError,
)
from tvdb.http import AsyncBaseTransport, Request, Response, TransportError
from tvdb.ledger.guard import CallScope
from tvdb.ledger.prices import LLAMAPARSE, OPENAI, PriceTable
from tvdb.ledger.usage import price_call
from tvdb.sessions import wire as w
from tvdb.sessions.routes import Endpoint
from tvdb.sessions.wire import Wire

T = TypeVar("T")
log = logging.getLogger(__name__)
ATTEMPT: contextvars.ContextVar[int] = contextvars.ContextVar("tvdb_session_attempt", default=1)
MOCK_KEYS = {OPENAI: "sk-tvdb-mock-needs-no-key", LLAMAPARSE: "llx-tvdb-mock-needs-no-key"}
_STAGE = {"embeddings": "embed", "parse_upload": "parse", "parse_create": "parse"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A request as the client built it: the body read, the headers as sent (the key among them)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    timeout: Any = None  # the client's `timeout` request extension

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass(frozen=True, slots=True)
class Tags:
    """What the rows written inside `Session.scope()` carry."""

    correlation_id: str | None = None
    job_id: str | None = None
    stage: str | None = None


class TransportFailure(Exception):
    """A request failed below HTTP (refused, timed out, dropped); `name` is the httpx exception class
    (ConnectError, ReadTimeout, …) the bridge raises in the client's own library."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class SdkAttempts:
    """The retry policy of a session: none of its own (the user's SDK retries); each request is one
    attempt, numbered from the SDK's `x-stainless-retry-count` so retries show as attempt > 1."""

    async def run(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        return await attempt(ATTEMPT.get())


class _Answered:
    wire: Wire


class AnsweredTransient(TransientServiceError, _Answered):
    """The service answered with a transient error status (429 rate limit, 408, 409, 5xx)."""


class AnsweredPermanent(PermanentServiceError, _Answered):
    """The service answered with a permanent error status (400, 401, 402, 404, 422, a quota 429)."""


class Unsent(ServiceError):
    """A request the cassette refused (a replay miss, a write-protected cassette): nothing went out, so
    nothing is reserved as spent; `original` is raised to the client as it is."""

    def __init__(self, service: str, original: Exception) -> None:
        self.original = original
        super().__init__(f"{service}: {original}", service=service, code=type(original).__name__)


def answered(service: str, wire: Wire) -> ServiceError:
    data = wire.json()
    error = data.get("error") if isinstance(data, dict) else None
    code = kind = None
    if isinstance(error, dict):
        code, kind = error.get("code"), error.get("type")
    quota = kind == "insufficient_quota" or wire.status == 402
    transient = not quota and (wire.status in (408, 409, 429) or wire.status >= 500)
    cls: type[AnsweredTransient] | type[AnsweredPermanent] = AnsweredTransient if transient else AnsweredPermanent
    exc = cls(f"{service} answered HTTP {wire.status}", service=service, status=wire.status,
              request_id=wire.header("x-request-id"), code=str(code) if code else None)
    exc.wire = wire
    return exc


def transport_error(service: str, exc: Exception) -> ServiceError:
    """The typed error of a request that got no answer; `maybe_billed` unless it never left."""
    name = type(exc).__name__
    if name in ("ConnectError", "ConnectTimeout"):
        return ServiceUnavailableError(f"{service}: {exc}", service=service)
    if "Timeout" in name:
        return ServiceTimeoutError(f"{service}: {exc}", service=service, maybe_billed=True)
    return ServiceUnavailableError(f"{service}: {exc}", service=service, maybe_billed=True)


class Loop:
    """An event loop on a daemon thread; `submit` runs a coroutine there from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tvdb-session", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@dataclass
class _PendingJob:
    done: Any  # Completed[Wire] of the create request, committed when the job is over
    tier: str


class Engine:
    """Owns, on the session loop: the ledger connection, the caller and router, the emulator, the fault
    transports and the forwarding transport. Built by `setup()` on that loop."""

    def __init__(self, settings: Settings, *, run_id: str, scenario: str | None, clock: Clock,
                 replay: bool, faults: Any, forward: Callable[[Any, Any], Awaitable[Any]]) -> None:
        self.settings = settings
        self.run_id = run_id
        self.scenario = scenario
        self.clock = clock
        self.replay = replay
        self.fault_plan = faults
        self._forward_fn = forward
        self._pending: dict[str, _PendingJob] = {}
        self._sticky: dict[str, Implementation] = {}  # parse job / file id → where it lives
        self._file_pages: dict[str, int] = {}

    async def setup(self) -> None:
        from tvdb.db import open_storage
        from tvdb.emulator.inprocess import app
        from tvdb.faults.transport import FaultTransport, llamaparse_channel
        from tvdb.faults.wrappers import as_schedule
        from tvdb.http import AsyncHTTPTransport
        from tvdb.services.calls import ServiceCaller
        from tvdb.services.factory import build_budget
        from tvdb.sessions.lanes import build_router

        self.db = open_storage(self.settings)
        self.prices = PriceTable.load(self.settings.prices)
        self.caller = ServiceCaller(db=self.db, prices=self.prices, clock=self.clock, retry=SdkAttempts(),
                                    budget=build_budget(self.db, self.settings, self.clock))
        self.router = build_router(self.settings, self.caller, self.clock, replay=self.replay)
        self.emulator = app()
        self.forward = AsyncHTTPTransport()
        targets = _Targets(self.emulator.transport(), self.forward, self._forward_fn)
        schedule = as_schedule(self.fault_plan) if self.fault_plan is not None else None
        self.faulted: dict[str, Any] = {OPENAI: targets, LLAMAPARSE: targets}
        if schedule is not None:
            self.faulted = {
                OPENAI: FaultTransport(targets, schedule, "openai", sleep=self.clock.sleep),
                LLAMAPARSE: FaultTransport(targets, schedule, "llamaparse", sleep=self.clock.sleep,
                                           channel=llamaparse_channel),
            }

    async def teardown(self) -> None:
        """Bill parse jobs still running at their estimate, release the network, close the ledger."""
        for job_id in list(self._pending):
            pending = self._pending.pop(job_id)
            pending.done.commit(self.db, self.caller.budget)
        await self.forward.aclose()
        self.db.close()

    # -- dispatch ---------------------------------------------------------------------------
    async def dispatch(self, endpoint: Endpoint, out: Outgoing, tags: Tags, attempt: int) -> Wire:
        """The answer to `out`. Raises TransportFailure (no answer), or a TvdbError the client should
        see as it is: CostLimitExceeded / LocalRequestLimitExceeded (refused before sending),
        CassetteMiss (replay), PriceUnknownError."""
        ATTEMPT.set(attempt)
        stage = tags.stage or _STAGE.get(endpoint.kind, "parse")
        scope = CallScope(self.run_id, self.scenario, stage, (tags.job_id,) if tags.job_id else (),
                          tags.correlation_id)
        try:
            if endpoint.kind == "embeddings":
                return await self._embeddings(out, scope)
            if endpoint.kind in ("parse_upload", "parse_create"):
                return await self._parse(endpoint, out, scope)
            return await self._unmetered(endpoint, out)
        except ServiceError as exc:
            if isinstance(exc, _Answered):
                return exc.wire
            if isinstance(exc, Unsent):
                raise exc.original from None
            cause = exc.__cause__
            if cause is not None and type(cause).__module__.split(".")[0] in ("httpx2", "httpx"):
                raise TransportFailure(type(cause).__name__, str(cause)) from None
            raise

    async def _embeddings(self, out: Outgoing, scope: CallScope) -> Wire:
        from tvdb.services.calls import CallSpec

        model, tokens = w.embedding_estimate(out.body)

        def spec_for(impl: Any, prov: Any) -> CallSpec[Wire]:
            target = impl.implementation
            return CallSpec(
                service=OPENAI, implementation=prov.implementation, model=model, unit="tokens",
                estimate_units=tokens, send=lambda: self._send(target, OPENAI, out),
                actual_units=lambda answer: w.prompt_tokens(answer, tokens), usage_of=w.embedding_usage,
                request_id_of=lambda answer: answer.header("x-request-id"), http_status_of=lambda answer: answer.status,
                provenance=prov.reason,
                run_budget_usd=self.settings.budget.max_usd, replayed=lambda answer: answer.replayed,
            )

        done = await self.router.call(self.router.embedder, scope, spec_for)
        done.commit(self.db, self.caller.budget)
        return done.value

    async def _parse(self, endpoint: Endpoint, out: Outgoing, scope: CallScope) -> Wire:
        from tvdb.services.calls import CallSpec

        tier = self.settings.parse.tier
        want = None
        if endpoint.kind == "parse_upload":
            estimate = w.upload_estimate(out.body, out.header("content-type"), tier)
        else:
            estimate = w.create_estimate(out.body, tier, self._file_pages)
            file_id = str(w.json_body(out.body).get("file_id"))
            want = self._sticky.get(file_id)  # a file lives where it was uploaded
        if want is Implementation.REPLAY:
            want = Implementation.REAL

        def spec_for(impl: Any, prov: Any) -> CallSpec[Wire]:
            target = impl.implementation
            return CallSpec(
                service=LLAMAPARSE, implementation=prov.implementation, model=estimate.tier, unit="pages",
                estimate_units=estimate.pages, send=lambda: self._send(target, LLAMAPARSE, out),
                actual_units=lambda _: estimate.pages, usage_of=lambda _: {"estimated": True},
                request_id_of=lambda answer: answer.header("x-request-id"), http_status_of=lambda answer: answer.status,
                provenance=prov.reason,
                run_budget_usd=self.settings.budget.max_usd, replayed=lambda answer: answer.replayed,
            )

        done = await self.router.call(self.router.parser, scope, spec_for, want=want,
                                      why="the file was uploaded there" if want else "")
        job = w.job_of(done.value)
        job_id = job.get("id")
        if not isinstance(job_id, str):
            done.commit(self.db, self.caller.budget)
            return done.value
        self._sticky[job_id] = done.row.implementation
        self._pending[job_id] = _PendingJob(done, estimate.tier)
        self._settle(job_id, job)
        return done.value

    def _settle(self, job_id: str, job: dict[str, Any]) -> None:
        """Write the create request's row once the job is over, at the credits it was billed."""
        pending = self._pending.get(job_id)
        status = job.get("status")
        if pending is None or status not in w.TERMINAL:
            return
        credits = w.job_credits(job)
        if credits is None and status == "COMPLETED":
            return  # "null until billing has recorded it": a later poll (or the session's end) bills it
        del self._pending[job_id]
        done = pending.done
        row = done.row
        price = self.prices.lookup(LLAMAPARSE, pending.tier, day=row.ts.date())
        per_page = price.credits_per_unit if price is not None else None
        units = float(credits) / float(per_page) if credits is not None and per_page else row.units
        row = replace(row, units=units, usage={"credits": credits, "status": status, "job_id": job_id},
                      pricing=price_call(self.prices, service=LLAMAPARSE, model=pending.tier, units=units,
                                         implementation=row.implementation, day=row.ts.date()))
        if status != "COMPLETED":
            row = replace(row, status="error", error_code="job_" + str(status).lower())
        replace(done, row=row).commit(self.db, self.caller.budget)

    async def _unmetered(self, endpoint: Endpoint, out: Outgoing) -> Wire:
        """Free requests (file uploads, job status polls, cancel, list): no ledger row. They go where
        their job or file lives; others follow the mode (hybrid: real unless the circuit is open)."""
        lane = self.router.parser
        target = self._sticky.get(endpoint.job_id) if endpoint.job_id else None
        if target is None:
            target = _default_target(lane, self.replay)
        try:
            answer = await self._send(target, LLAMAPARSE, out)
        except ServiceError as exc:
            if isinstance(exc, _Answered):
                answer = exc.wire
            elif lane.mode is Mode.HYBRID and endpoint.kind == "files" and target is not Implementation.MOCK:
                target = Implementation.MOCK
                answer = await self._send(target, LLAMAPARSE, out)
            else:
                raise
        data = answer.json() if answer.status == 200 else None
        if endpoint.kind == "files" and out.method == "POST" and isinstance(data, dict) and "id" in data:
            self._sticky[str(data["id"])] = target
            self._file_pages[str(data["id"])] = w.file_pages(out.body, out.header("content-type"))
        if endpoint.kind == "parse_job" and endpoint.job_id and answer.status == 200:
            self._settle(endpoint.job_id, w.job_of(answer))
        return answer

    async def _send(self, target: Implementation, service: str, out: Outgoing) -> Wire:
        """One request to `target` through the fault plan; raises the typed error of an error status or
        of no answer (tvdb.errors), the answer attached to the former."""
        headers = list(out.headers)
        if target is Implementation.MOCK:  # the emulator checks keys; mock mode needs none
            headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
            headers.append(("authorization", f"Bearer {MOCK_KEYS[service]}"))
        extensions: dict[str, Any] = {"tvdb_target": target}
        if out.timeout is not None:
            extensions["timeout"] = out.timeout
        request = Request(out.method, out.url, headers=headers, content=out.body, extensions=extensions)
        from tvdb.errors import CassetteError

        try:
            response = await self.faulted[service].handle_async_request(request)
            body = await response.aread()
            await response.aclose()
        except TransportError as exc:
            raise transport_error(service, exc) from exc
        except CassetteError as exc:
            raise Unsent(service, exc) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("vcr."):  # vcrpy's own refusal (CannotOverwriteExisting…)
                raise Unsent(service, exc) from exc
            raise
        answer = Wire(response.status_code, tuple(response.headers.multi_items()), body)
        if answer.status >= 400:
            raise answered(service, answer)
        return answer


def _default_target(lane: Any, replay: bool) -> Implementation:
    if lane.mode is Mode.MOCK or lane.real is None:
        return Implementation.MOCK
    if lane.mode is Mode.HYBRID and lane.breaker.state == "open":
        return Implementation.MOCK
    return Implementation.REPLAY if replay else Implementation.REAL


class _Targets(AsyncBaseTransport):
    """The innermost transport: the emulator for `mock`, the forwarding transport otherwise (through
    the cassette when one is in use: `forward_fn` is what was installed on httpx2 before the session's
    own interception, i.e. vcrpy's stub while a cassette is open)."""

    def __init__(self, emulator: Any, forward: Any, forward_fn: Callable[[Any, Any], Awaitable[Any]]) -> None:
        self.emulator = emulator
        self.forward = forward
        self.forward_fn = forward_fn

    async def handle_async_request(self, request: Request) -> Response:
        target = request.extensions.pop("tvdb_target", Implementation.REAL)
        if target is Implementation.MOCK:
            answer: Response = await self.emulator.handle_async_request(request)
            return answer
        response: Response = await self.forward_fn(self.forward, request)
        return response

    async def aclose(self) -> None:
        return None
