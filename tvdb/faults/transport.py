"""`FaultTransport`: an httpx2 async transport wrapper that applies a fault plan to a real client's traffic.

Status faults answer with the exact body the real service sends (tvdb.emulator.bodies) without
reaching the inner transport; `timeout` and `disconnect` raise the httpx2 errors a dead network
raises; `malformed_body` answers 200 with truncated JSON; `bad_vector` corrupts the vectors of the
inner transport's real answer. The SDK then raises what it would raise in production, and our
client maps that to the typed error, so the whole path is exercised.

For LlamaParse, `channel=llamaparse_channel` counts uploads as calls and job-status requests as
`request: poll`; other requests (cancel) pass uncounted. The job kinds rewrite what the service later
says about the job the faulted upload created: `stuck` keeps it PENDING, `job_failed` makes it
FAILED with the fault's message, `partial` fails its first `pages` pages.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from tvdb.emulator.bodies import MALFORMED_BODY, request_id, status_fault
from tvdb.faults.plan import JOB_KINDS, Channel, Fault, FaultPlan, FaultSchedule, Service
from tvdb.faults.wrappers import as_schedule, corrupt_embedding_body
from tvdb.http import AsyncBaseTransport, ReadTimeout, RemoteProtocolError, Request, Response

Sleep = Callable[[float], Awaitable[None]]
_DROP_ON_REWRITE = ("content-encoding", "content-length", "transfer-encoding")
_JOB_GET = re.compile(r"/api/v2/parse/([A-Za-z0-9_-]+)$")


def llamaparse_channel(request: Request) -> Channel | None:
    """Uploads (a new job) are calls; a job's status/result GET is a poll; anything else uncounted."""
    path = request.url.path.rstrip("/")
    if request.method == "POST" and path in ("/api/v2/parse/upload", "/api/v2/parse"):
        return "call"
    if request.method == "GET" and _JOB_GET.search(path) and not path.endswith("/versions"):
        return "poll"
    return None


def _rewrite_job(body: dict[str, Any], fault: Fault) -> dict[str, Any]:
    """What the service would say about a job that `fault` (a job kind) hit."""
    job = body.get("job")
    if not isinstance(job, dict) or job.get("status") == "CANCELLED":
        return body
    if fault.kind == "stuck":
        return {"job": {**job, "status": "PENDING", "usage": {"credits": None}}}
    if fault.kind == "job_failed":
        return {"job": {**job, "status": "FAILED", "usage": {"credits": 0.0},
                        "error_message": fault.message or "INTERNAL_ERROR: the job failed (injected fault)"}}
    pages = (body.get("markdown") or {}).get("pages")
    if isinstance(pages, list):
        for page in pages[:fault.pages]:
            if isinstance(page, dict):
                number = page.get("page_number", 0)
                page.clear()
                page.update({"page_number": number, "success": False,
                             "error": "PAGE_PARSING_FAILED (injected fault)"})
    return body


class FaultTransport(AsyncBaseTransport):
    """Wraps `inner`; every request counts as one call to `service` in the plan's schedule, or on the
    channel `channel(request)` says (None: not counted, no fault)."""

    def __init__(
        self,
        inner: AsyncBaseTransport,
        plan: FaultPlan | FaultSchedule,
        service: Service,
        *,
        sleep: Sleep = asyncio.sleep,
        channel: Callable[[Request], Channel | None] | None = None,
    ) -> None:
        self.inner = inner
        self.schedule = as_schedule(plan)
        self.service: Service = service
        self._sleep = sleep
        self._channel = channel
        self._job_faults: dict[str, Fault] = {}

    async def handle_async_request(self, request: Request) -> Response:
        channel = self._channel(request) if self._channel is not None else "call"
        if channel is None:
            return await self.inner.handle_async_request(request)
        decision = self.schedule.next(self.service, channel)
        if decision.latency_s:
            await self._sleep(decision.latency_s)
        fault = decision.fault
        if fault is not None and fault.kind in JOB_KINDS:
            return await self._job_fault(request, fault)
        if fault is None:
            if channel == "poll" and self._job_faults:
                match = _JOB_GET.search(request.url.path.rstrip("/"))
                hit = self._job_faults.get(match[1]) if match else None
                if hit is not None:
                    return await self._rewritten(request, lambda body: _rewrite_job(body, hit))
            return await self.inner.handle_async_request(request)
        if fault.kind == "status":
            wire = status_fault(fault)
            return Response(wire.status, content=wire.body, request=request, headers={
                "content-type": "application/json", "x-request-id": request_id(), **wire.headers})
        if fault.kind == "timeout":
            if fault.latency_s:
                await self._sleep(fault.latency_s)
            raise ReadTimeout("The read operation timed out (injected fault)", request=request)
        if fault.kind == "disconnect":
            raise RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if fault.kind == "malformed_body":
            return Response(200, content=MALFORMED_BODY[self.service], request=request, headers={
                "content-type": "application/json", "x-request-id": request_id()})
        # bad_vector: a real answer with corrupted vectors
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        # the body is decoded now, so its encoding/length headers no longer apply
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP_ON_REWRITE]
        if response.status_code == 200:
            body = corrupt_embedding_body(body, fault.vector)
        return Response(response.status_code, headers=headers, content=body, request=request)

    async def _job_fault(self, request: Request, fault: Fault) -> Response:
        """Send the upload; remember its job so that later answers about it show the fault."""

        def remember(body: dict[str, Any]) -> dict[str, Any]:
            if isinstance(body.get("id"), str):
                self._job_faults[body["id"]] = fault
            return body

        return await self._rewritten(request, remember)

    async def _rewritten(self, request: Request, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP_ON_REWRITE]
        if response.status_code == 200:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if isinstance(data, dict):
                body = json.dumps(edit(data)).encode()
        return Response(response.status_code, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()
