"""`FaultTransport`: an httpx2 async transport wrapper that applies a fault plan to a real client's traffic.

Status faults answer with the exact body the real service sends (tvdb.emulator.bodies) without
reaching the inner transport; `timeout` and `disconnect` raise the httpx2 errors a dead network
raises; `malformed_body` answers 200 with truncated JSON; `bad_vector` corrupts the vectors of the
inner transport's real answer. The SDK then raises what it would raise in production, and our
client maps that to the typed error, so the whole path is exercised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tvdb.emulator.bodies import MALFORMED_BODY, request_id, status_fault
from tvdb.faults.plan import FaultPlan, FaultSchedule, Service
from tvdb.faults.wrappers import as_schedule, corrupt_embedding_body
from tvdb.http import AsyncBaseTransport, ReadTimeout, RemoteProtocolError, Request, Response

Sleep = Callable[[float], Awaitable[None]]
_DROP_ON_REWRITE = ("content-encoding", "content-length", "transfer-encoding")


class FaultTransport(AsyncBaseTransport):
    """Wraps `inner`; every request counts as one call to `service` in the plan's schedule."""

    def __init__(
        self,
        inner: AsyncBaseTransport,
        plan: FaultPlan | FaultSchedule,
        service: Service,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.schedule = as_schedule(plan)
        self.service: Service = service
        self._sleep = sleep

    async def handle_async_request(self, request: Request) -> Response:
        decision = self.schedule.next(self.service)
        if decision.latency_s:
            await self._sleep(decision.latency_s)
        fault = decision.fault
        if fault is None:
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

    async def aclose(self) -> None:
        await self.inner.aclose()
