"""The emulator without a socket: an ASGI app, and httpx2 / httpx transports that answer in-process.

    emu = tvdb.emulator.app()                          # OpenAI at /v1, LlamaParse at /api
    client = openai.OpenAI(api_key="sk-x", base_url="http://emulator/v1",
                           http_client=httpx2.Client(transport=emu.transport()))
    uvicorn.run(emu)                                   # or any ASGI server: `await emu(scope, receive, send)`

The same services and routing as `tvdb emulate` (tvdb.emulator.server): a request's path picks the
service by prefix, an unknown path is a 404 in OpenAI's error envelope, an emulator bug a 500.
A `disconnect` reply raises the library's RemoteProtocolError and a `hang` its ReadTimeout (at once:
in-process there is no client timer to wait for); `delay_s` is slept. Host and scheme are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from tvdb.emulator.base import EmulatedService, EmulatorRequest, Reply
from tvdb.emulator.bodies import openai_error, request_id

log = logging.getLogger(__name__)
_JSON = {"content-type": "application/json"}


def dispatch(services: Sequence[EmulatedService], request: EmulatorRequest) -> Reply:
    """The reply of the service mounted at the request's path prefix (404 when none is)."""
    for service in services:
        if request.path == service.prefix or request.path.startswith(service.prefix + "/"):
            try:
                return service.handle(request)
            except Exception:  # an emulator bug must answer 500, not kill the connection
                log.exception("emulated %s failed on %s %s", service.name, request.method, request.path)
                err = openai_error(500, "The server had an error while processing your request. Sorry "
                                   "about that!", type="server_error")
                return Reply(500, {**_JSON, "x-request-id": request_id()}, err.body)
    err = openai_error(404, f"Invalid URL ({request.method} {request.path})", type="invalid_request_error")
    return Reply(404, {**_JSON, "x-request-id": request_id()}, err.body)


class Emulator:
    """Wire-exact OpenAI embeddings and LlamaParse v2, in-process. Thread-safe (each service is)."""

    def __init__(self, services: Sequence[EmulatedService]) -> None:
        self.services = list(services)

    def dispatch(self, request: EmulatorRequest) -> Reply:
        return dispatch(self.services, request)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes, query: str = "") -> Reply:
        """One request (header names any case) to its `Reply`."""
        return self.dispatch(EmulatorRequest(method, path, {k.lower(): v for k, v in headers.items()}, body, query))

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """ASGI 3 (HTTP only; `lifespan` is acknowledged)."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        reply = await asyncio.to_thread(self.dispatch, EmulatorRequest(
            scope["method"], scope["path"], headers, body, scope.get("query_string", b"").decode("latin-1")))
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.action != "respond":
            return  # no response: the server closes the connection
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()]})
        await send({"type": "http.response.body", "body": reply.body})

    def transport(self) -> Any:
        """An httpx2 transport (sync and async) answering from this emulator."""
        import httpx2

        return _transport_class(httpx2)(self)

    def httpx_transport(self) -> Any:
        """The same for legacy `httpx` (the llama-cloud SDK's library). Raises ImportError without httpx."""
        import httpx

        return _transport_class(httpx)(self)


def _transport_class(lib: Any) -> Any:
    class EmulatorTransport(lib.BaseTransport, lib.AsyncBaseTransport):  # type: ignore[misc]
        def __init__(self, emulator: Emulator) -> None:
            self.emulator = emulator

        def _answer(self, request: Any, body: bytes) -> Reply:
            return self.emulator.handle(request.method, request.url.path, dict(request.headers), body,
                                        request.url.query.decode("latin-1"))

        def _response(self, request: Any, reply: Reply) -> Any:
            if reply.action == "disconnect":
                raise lib.RemoteProtocolError("Server disconnected without sending a response.", request=request)
            if reply.action == "hang":
                raise lib.ReadTimeout("The read operation timed out", request=request)
            return lib.Response(reply.status, headers=dict(reply.headers), content=reply.body, request=request)

        def handle_request(self, request: Any) -> Any:
            reply = self._answer(request, request.read())
            if reply.delay_s and reply.action == "respond":
                time.sleep(reply.delay_s)
            return self._response(request, reply)

        async def handle_async_request(self, request: Any) -> Any:
            body = await request.aread()
            reply = await asyncio.to_thread(self._answer, request, body)
            if reply.delay_s and reply.action == "respond":
                await asyncio.sleep(reply.delay_s)
            return self._response(request, reply)

    return EmulatorTransport


def app(*, latency_s: float = 0.0, faults: Any = None, instant_jobs: bool = True,
        clock: Callable[[], float] = time.monotonic, **llamaparse: Any) -> Emulator:
    """Both services, ready to use in-process: OpenAI embeddings at `/v1`, LlamaParse v2 at `/api`.

    `latency_s`: added to every answer; `faults`: a fault plan (a list of `faults:` entries or a
    `FaultPlan`) applied by the services themselves; `instant_jobs`: parse jobs complete at once (the
    first status poll sees COMPLETED) instead of after simulated processing time. Further keywords go to
    `LlamaParseEmulator` (e.g. `credits_limit`). Raises pydantic ValidationError for a bad fault plan."""
    from tvdb.emulator.llamaparse import LlamaParseEmulator
    from tvdb.emulator.openai import OpenAIEmulator
    from tvdb.faults.plan import FaultPlan

    plan = FaultPlan.of(list(faults)) if isinstance(faults, list | tuple) else faults
    if instant_jobs:
        llamaparse.setdefault("per_page_s", 0.0)
        llamaparse.setdefault("queue_s", 0.0)
    return Emulator([OpenAIEmulator(latency_s=latency_s, faults=plan, clock=clock),
                     LlamaParseEmulator(latency_s=latency_s, faults=plan, clock=clock, **llamaparse)])
