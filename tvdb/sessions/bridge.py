"""Where client libraries meet the session: the patched httpx2/httpx transport methods and the
explicit transports (`Session.http_transport()`, `Session.httpx_transport()`) both call `Bridge`.

While a session is open with interception on, these are replaced (and restored on close):

    httpx2.HTTPTransport.handle_request        httpx2.AsyncHTTPTransport.handle_async_request
    httpx.HTTPTransport.handle_request         httpx.AsyncHTTPTransport.handle_async_request   (if installed)

so every client built on the default transports (the openai SDK on httpx2, the llama-cloud SDK on
httpx, the user's own clients) is seen. A request tvdb serves (tvdb.sessions.routes) goes to the
session's engine; any other goes to the original method untouched, or raises the library's
ConnectError with `block_network`. Custom transports (a MockTransport, aiohttp) are not touched.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Any

from tvdb.sessions.engine import Engine, Loop, Outgoing, Tags, TransportFailure
from tvdb.sessions.routes import Endpoint, Routes
from tvdb.sessions.wire import Wire

# (class, method name, original function) of each patched method, while a session is open; patching a
# class is process-wide by nature, so at most one session may be open (checked by `install`).
_INSTALLED: list[tuple[type, str, Any]] = []


def libraries() -> list[Any]:
    """httpx2, and legacy httpx when it is installed (imported here: the patch must be in place before
    the llama-cloud SDK builds a client)."""
    import httpx2

    libs: list[Any] = [httpx2]
    if importlib.util.find_spec("httpx") is not None:
        import httpx

        libs.append(httpx)
    return libs


class Bridge:
    """Turns a client library's request into an engine call and the answer into that library's Response."""

    def __init__(self, engine: Engine, loop: Loop, routes: Routes, *, block_network: bool,
                 tags: Callable[[], Tags]) -> None:
        self.engine = engine
        self.loop = loop
        self.routes = routes
        self.block_network = block_network
        self.tags = tags

    def classify(self, request: Any) -> Endpoint | None:
        return self.routes.classify(request.method, str(request.url))

    def refuse(self, lib: Any, request: Any) -> Exception:
        exc: Exception = lib.ConnectError(
            f"tvdb.session(block_network=True): {request.method} {request.url.scheme}://{request.url.host}"
            f"{request.url.path} is not an OpenAI embeddings or LlamaParse request, so it is blocked",
            request=request)
        return exc

    def _call(self, endpoint: Endpoint, request: Any, body: bytes) -> Any:
        if self.loop.loop.is_closed():
            from tvdb.errors import ConfigError

            raise ConfigError("this client was built on a tvdb.session that is closed: build clients inside "
                              "`with tvdb.session(...) as s:` (or open a new session)")
        out = Outgoing(request.method, str(request.url), tuple(request.headers.multi_items()), body,
                       request.extensions.get("timeout"))
        try:
            attempt = int(request.headers.get("x-stainless-retry-count", "0")) + 1
        except ValueError:
            attempt = 1
        return self.loop.submit(self.engine.dispatch(endpoint, out, self.tags(), attempt))

    def serve(self, lib: Any, endpoint: Endpoint, request: Any) -> Any:
        future = self._call(endpoint, request, request.read())
        try:
            return _response(lib, request, future.result())
        except TransportFailure as exc:
            raise _library_error(lib, exc, request) from None

    async def aserve(self, lib: Any, endpoint: Endpoint, request: Any) -> Any:
        future = self._call(endpoint, request, await request.aread())
        try:
            return _response(lib, request, await asyncio.wrap_future(future))
        except TransportFailure as exc:
            raise _library_error(lib, exc, request) from None


def _response(lib: Any, request: Any, wire: Wire) -> Any:
    return lib.Response(wire.status, headers=wire.for_client(), content=wire.body, request=request)


def _library_error(lib: Any, exc: TransportFailure, request: Any) -> Exception:
    cls = getattr(lib, exc.name, None)
    if not (isinstance(cls, type) and issubclass(cls, lib.TransportError)):
        cls = lib.TransportError
    error: Exception = cls(str(exc), request=request)
    return error


def originals() -> dict[tuple[Any, str], Any]:
    """The transport methods as they are now: what requests tvdb does not serve are sent with. Taken
    before a cassette is opened, so that vcrpy never records (or blocks) another host's traffic."""
    out: dict[tuple[Any, str], Any] = {}
    for lib in libraries():
        out[(lib, "handle_request")] = lib.HTTPTransport.__dict__["handle_request"]
        out[(lib, "handle_async_request")] = lib.AsyncHTTPTransport.__dict__["handle_async_request"]
    return out


def network_method(*, own_cassette: bool) -> Any:
    """httpx2's `AsyncHTTPTransport.handle_async_request` that a session sends its real requests with.

    `own_cassette`: the session's cassette is open, so the method installed now is that cassette's
    (it records or replays, then calls the network). Otherwise the method vcrpy took at its import,
    i.e. the network itself, even while another vcrpy cassette (pytest-recording's) is patched in:
    that cassette would record the request with its API key, or answer it from its file while the
    ledger bills it as real. Falls back to the installed method if vcrpy does not expose it."""
    import httpx2

    current = httpx2.AsyncHTTPTransport.__dict__["handle_async_request"]
    if own_cassette:
        return current
    import vcr.patch

    network = getattr(vcr.patch, "_Httpx2AsyncHttpTransport_handle_async_request", None)
    return network if callable(network) and not hasattr(network, "__tvdb_session__") else current


def install(bridge: Bridge, passthrough: dict[tuple[Any, str], Any]) -> None:
    """Patch the default transports of every installed library; `passthrough` (from `originals()`) sends
    the requests tvdb does not serve. Raises RuntimeError if a session is already open."""
    if _INSTALLED:
        raise RuntimeError("another tvdb.session is open in this process: sessions do not nest")
    for lib in libraries():
        sync_now = lib.HTTPTransport.__dict__["handle_request"]
        async_now = lib.AsyncHTTPTransport.__dict__["handle_async_request"]
        lib.HTTPTransport.handle_request = _sync_patch(bridge, lib, passthrough[(lib, "handle_request")])
        lib.AsyncHTTPTransport.handle_async_request = _async_patch(
            bridge, lib, passthrough[(lib, "handle_async_request")])
        _INSTALLED.append((lib.HTTPTransport, "handle_request", sync_now))
        _INSTALLED.append((lib.AsyncHTTPTransport, "handle_async_request", async_now))


def uninstall() -> None:
    while _INSTALLED:
        cls, name, original = _INSTALLED.pop()
        setattr(cls, name, original)


def _sync_patch(bridge: Bridge, lib: Any, original: Any) -> Any:
    def handle_request(self: Any, request: Any) -> Any:
        endpoint = bridge.classify(request)
        if endpoint is None:
            if bridge.block_network:
                raise bridge.refuse(lib, request)
            return original(self, request)
        return bridge.serve(lib, endpoint, request)

    handle_request.__tvdb_session__ = True  # type: ignore[attr-defined]
    return handle_request


def _async_patch(bridge: Bridge, lib: Any, original: Any) -> Any:
    async def handle_async_request(self: Any, request: Any) -> Any:
        endpoint = bridge.classify(request)
        if endpoint is None:
            if bridge.block_network:
                raise bridge.refuse(lib, request)
            return await original(self, request)
        return await bridge.aserve(lib, endpoint, request)

    handle_async_request.__tvdb_session__ = True  # type: ignore[attr-defined]
    return handle_async_request


def transport_class(lib: Any) -> Any:
    """The explicit transport of `lib` (sync and async in one object), for `Session.http_transport()`."""

    class SessionTransport(lib.BaseTransport, lib.AsyncBaseTransport):  # type: ignore[misc]
        """Serves OpenAI embeddings and LlamaParse requests through the session; sends any other request
        with a default transport (or refuses it with `block_network`)."""

        def __init__(self, bridge: Bridge) -> None:
            self.bridge = bridge
            self._sync: Any = None
            self._async: Any = None

        def handle_request(self, request: Any) -> Any:
            endpoint = self.bridge.classify(request)
            if endpoint is not None:
                return self.bridge.serve(lib, endpoint, request)
            if self.bridge.block_network:
                raise self.bridge.refuse(lib, request)
            self._sync = self._sync or lib.HTTPTransport()
            return self._sync.handle_request(request)

        async def handle_async_request(self, request: Any) -> Any:
            endpoint = self.bridge.classify(request)
            if endpoint is not None:
                return await self.bridge.aserve(lib, endpoint, request)
            if self.bridge.block_network:
                raise self.bridge.refuse(lib, request)
            self._async = self._async or lib.AsyncHTTPTransport()
            return await self._async.handle_async_request(request)

        def close(self) -> None:
            if self._sync is not None:
                self._sync.close()

        async def aclose(self) -> None:
            if self._async is not None:
                await self._async.aclose()

    return SessionTransport
