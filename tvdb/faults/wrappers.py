"""Faults for local services, raising exactly the typed errors the real clients raise for the same fault.

`FaultyEmbedder(inner, plan)` and `FaultyParser(inner, plan)` satisfy the `Embedder` / `Parser`
protocols, so a scenario's `faults:` behave the same in mock, real and hybrid mode.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from tvdb.domain import EmbeddingRequest, EmbeddingResult, Implementation, ParseRequest, ParseResult
from tvdb.errors import (
    ErrorCode,
    MalformedResponseError,
    ParseJobError,
    ServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)
from tvdb.faults.plan import Fault, FaultPlan, FaultSchedule

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tvdb.services.protocols import Embedder, Parser

Sleep = Callable[[float], Awaitable[None]]
S = TypeVar("S", bound="Embedder | Parser")
FAULT_REQUEST_ID = "req_fault_injected"


def as_schedule(plan: FaultPlan | FaultSchedule) -> FaultSchedule:
    return plan if isinstance(plan, FaultSchedule) else plan.schedule()


def fault_error(fault: Fault, service: str) -> ServiceError:
    """The typed error a real client raises when the service answers with `fault` (not bad_vector)."""
    from tvdb.emulator.bodies import status_fault
    from tvdb.services.remote.status import error_for_status

    if fault.kind == "status":
        wire = status_fault(fault)
        body = json.loads(wire.body)
        err = body.get("error") if isinstance(body.get("error"), dict) else {"message": body.get("detail")}
        return error_for_status(
            service, wire.status, message=str(err.get("message")), code=err.get("code"), type=err.get("type"),
            request_id=FAULT_REQUEST_ID, retry_after=fault.retry_after,
        )
    # as with the real clients: a timeout or a disconnect after sending, or an unreadable 200, may
    # have been billed
    if fault.kind == "timeout":
        return ServiceTimeoutError(f"{service}: request timed out (injected fault)", service=service,
                                   maybe_billed=True)
    if fault.kind == "disconnect":
        return ServiceUnavailableError(
            f"{service}: server disconnected without sending a response (injected fault)", service=service,
            maybe_billed=True)
    return MalformedResponseError(
        f"{service}: response body is not valid JSON (injected fault)", service=service, status=200,
        request_id=FAULT_REQUEST_ID, maybe_billed=True)


def corrupt_vectors(vectors: npt.NDArray[np.float32], how: Literal["nan", "wrong_dimension"]) -> Any:
    """A copy of `vectors` with a NaN in the first value, or one dimension short in every row."""
    import numpy as np

    if how == "wrong_dimension":
        return np.ascontiguousarray(vectors[:, :-1])
    out = vectors.copy()
    if out.size:
        out.flat[0] = np.nan
    return out


def corrupt_embedding_body(body: bytes, how: Literal["nan", "wrong_dimension"]) -> bytes:
    """An OpenAI embeddings response body with its vectors corrupted (base64 or float format)."""
    import numpy as np

    data = json.loads(body)
    for item in data.get("data", []):
        emb = item.get("embedding")
        if isinstance(emb, str):
            vec = np.frombuffer(base64.b64decode(emb), dtype="<f4")[None, :]
            item["embedding"] = base64.b64encode(corrupt_vectors(vec, how).astype("<f4").tobytes()).decode()
        elif isinstance(emb, list):
            vec = np.asarray(emb, dtype=np.float32)[None, :]
            item["embedding"] = [float(x) for x in corrupt_vectors(vec, how)[0]]
        if how == "nan":
            break  # one bad value is enough; a wrong dimension hits every row
    return json.dumps(data).encode()  # NaN becomes the `NaN` literal that json.loads accepts


class _Faulty(Generic[S]):
    """Counts each call to the inner service in the schedule and applies its latency first."""

    def __init__(self, inner: S, plan: FaultPlan | FaultSchedule, *, sleep: Sleep = asyncio.sleep) -> None:
        self.inner = inner
        self.schedule = as_schedule(plan)
        self.service: str = inner.service
        self.implementation: Implementation = inner.implementation
        self.identity: str = inner.identity  # faults change outcomes, not what a success returns
        self._sleep = sleep

    async def _decide(self) -> Fault | None:
        decision = self.schedule.next(self.service)
        if decision.latency_s:
            await self._sleep(decision.latency_s)
        return decision.fault


class FaultyEmbedder(_Faulty["Embedder"]):
    """An `Embedder` that applies `plan`'s faults for the inner embedder's service before calling it."""

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        fault = await self._decide()
        if fault is None:
            return await self.inner.embed(request)
        if fault.kind == "bad_vector":
            result = await self.inner.embed(request)
            return replace(result, vectors=corrupt_vectors(result.vectors, fault.vector))
        if fault.kind == "timeout" and fault.latency_s:
            await self._sleep(fault.latency_s)
        raise fault_error(fault, self.service)


class FaultyParser(_Faulty["Parser"]):
    """A `Parser` that applies `plan`'s faults for the inner parser's service before calling it.

    The job kinds end as the real client ends them: `stuck` → ParseJobError(timeout), `job_failed`
    → ParseJobError (`encrypted` for a PDF_IS_PROTECTED message), `partial` → the first `pages`
    pages come back empty with a warning each. `max_page_failure_ratio` is `parse.`'s setting.
    """

    def __init__(self, inner: Parser, plan: FaultPlan | FaultSchedule, *, sleep: Sleep = asyncio.sleep,
                 max_page_failure_ratio: float = 1.0) -> None:
        super().__init__(inner, plan, sleep=sleep)
        self.max_page_failure_ratio = max_page_failure_ratio

    async def parse(self, request: ParseRequest) -> ParseResult:
        fault = await self._decide()
        if fault is None or fault.kind == "bad_vector":
            return await self.inner.parse(request)
        if fault.kind == "partial":
            from tvdb.services.parse_pages import fail_pages

            result = await self.inner.parse(request)
            failed = {p.number: "PAGE_PARSING_FAILED (injected fault)" for p in result.document.pages[:fault.pages]}
            document = fail_pages(result.document, failed, self.max_page_failure_ratio, request.filename)
            return replace(result, document=document)
        if fault.kind in ("stuck", "job_failed"):
            from tvdb.services.parse_pages import job_failed_error

            if fault.kind == "stuck":
                raise ParseJobError(f"{self.service}: the parse job of {request.filename} stayed PENDING "
                                    "(injected fault)", error_code=ErrorCode.TIMEOUT, service=self.service)
            raise job_failed_error(self.service, fault.message or "INTERNAL_ERROR: the job failed (injected fault)",
                                   filename=request.filename, job_id=FAULT_REQUEST_ID)
        if fault.kind == "timeout" and fault.latency_s:
            await self._sleep(fault.latency_s)
        raise fault_error(fault, self.service)
