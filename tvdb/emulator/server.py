"""The emulator's HTTP server: stdlib `ThreadingHTTPServer`, HTTP/1.1 keep-alive, on 127.0.0.1.

    with EmulatorServer([OpenAIEmulator(latency_s=0.01)]) as server:
        client = AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test")
        ...
        server.counts["POST /v1/embeddings"]

Services are mounted by path prefix (OpenAI at /v1, LlamaParse at /api). Each connection is served by
its own thread, so concurrent clients are answered concurrently.
"""

from __future__ import annotations

import gzip
import logging
import re
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tvdb.emulator.base import EmulatedService, EmulatorRequest, Reply
from tvdb.emulator.bodies import openai_error, request_id
from tvdb.words import counted

log = logging.getLogger(__name__)
# 2,048 inputs of 8,192 tokens fit in a few MB of JSON (token arrays included); refuse more unread
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """What the server received (headers lower-cased; the body only by size)."""

    method: str
    path: str
    headers: dict[str, str]
    body_bytes: int
    status: int | None
    query: str = ""
    latency_ms: float = 0.0
    detail: str = ""  # what a request log line adds: "3 inputs, 1,234 tokens" for embeddings


_USAGE_TAIL = re.compile(rb'"prompt_tokens":\s*(\d+)')


def _detail(path: str, status: int, body: bytes) -> str:
    """Inputs and tokens of an answered embeddings request, read from the end of the reply (where `usage`
    sits) so a log line never parses a large body; "" for anything else."""
    if status != 200 or not path.endswith("/embeddings"):
        return ""
    tokens = _USAGE_TAIL.search(body, max(0, len(body) - 256))
    inputs = body.count(b'"object": "embedding"') or body.count(b'"object":"embedding"')
    counts = [counted(inputs, "input", grouped=True)]
    if tokens:
        counts.append(counted(int(tokens.group(1)), "token", grouped=True))
    return ", ".join(counts)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        started = time.perf_counter()
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner = self.server.owner
        length, refusal = _body_length(headers.get("content-length"))
        if refusal is not None:
            # the body cannot be read (or skipped) reliably: answer, then close the connection
            self.close_connection = True
            reply = Reply(400, {"content-type": "application/json; charset=utf-8", "connection": "close",
                                "x-request-id": request_id()}, refusal)
            body = b""
        else:
            body = self.rfile.read(length) if length else b""
            reply = owner.dispatch(EmulatorRequest(self.command, path, headers, body, query))
        owner.record(SeenRequest(self.command, path, headers, len(body),
                                 reply.status if reply.action == "respond" else None, query))
        if reply.delay_s and owner.stopping.wait(reply.delay_s):
            reply = Reply(action="disconnect")  # the server is stopping
        if reply.action != "respond":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        payload = reply.body
        out_headers = dict(reply.headers)
        if owner.gzip_responses and "gzip" in headers.get("accept-encoding", "") and payload:
            payload = gzip.compress(payload, compresslevel=1)
            out_headers["content-encoding"] = "gzip"
        self.send_response(reply.status)
        for name, value in out_headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        if owner.on_request is not None:
            owner.on_request(SeenRequest(self.command, path, {}, len(body), reply.status, "",
                                         (time.perf_counter() - started) * 1000, _detail(path, reply.status,
                                                                                          reply.body)))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


def _body_length(raw: str | None) -> tuple[int, bytes | None]:
    """The body length a `Content-Length` header declares, or the 400 body for one that is not a
    non-negative decimal or is over MAX_BODY_BYTES (read as is, `-5` would block and a huge value
    would allocate it)."""
    if raw is None:
        return 0, None
    text = raw.strip()
    if not text.isdigit() or not text.isascii():
        message = f"Invalid Content-Length header {raw[:40]!r}: expected a non-negative number of bytes."
    elif int(text) > MAX_BODY_BYTES:
        message = (f"Request body of {int(text):,} bytes (Content-Length) is over the limit of "
                   f"{MAX_BODY_BYTES:,} bytes.")
    else:
        return int(text), None
    return 0, openai_error(400, message, type="invalid_request_error").body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    owner: EmulatorServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner.track(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner.untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up mid-response (Ctrl-C, a timeout) is normal traffic, not a server fault
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """Serves `services` on `host:port` (port 0: a free port). Use as a context manager in tests, or
    `serve_forever()` from the CLI. `counts` counts requests per "METHOD /path"; `requests` keeps the
    last 1,000 `SeenRequest`s."""

    def __init__(self, services: Sequence[EmulatedService], *, host: str = "127.0.0.1", port: int = 0,
                 gzip_responses: bool = False, on_request: Callable[[SeenRequest], None] | None = None) -> None:
        self.services = list(services)
        # called after each answered request (method, path, status, latency, detail; never headers or
        # the query, which may carry a key): `tvdb emulate` logs with it
        self.on_request = on_request
        self.gzip_responses = gzip_responses
        self.counts: Counter[str] = Counter()
        self.requests: deque[SeenRequest] = deque(maxlen=1000)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[Any] = set()
        self._thread: threading.Thread | None = None
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The value for OPENAI_BASE_URL."""
        return self.base_url + "/v1"

    @property
    def llama_cloud_base_url(self) -> str:
        """The value for LLAMA_CLOUD_BASE_URL (the SDK appends /api/v2/...)."""
        return self.base_url

    def dispatch(self, request: EmulatorRequest) -> Reply:
        from tvdb.emulator.inprocess import dispatch

        return dispatch(self.services, request)

    def record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.counts[f"{seen.method} {seen.path}"] += 1
            self.requests.append(seen)

    def track(self, sock: Any) -> None:
        with self._lock:
            self._sockets.add(sock)

    def untrack(self, sock: Any) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def count(self, key: str = "POST /v1/embeddings") -> int:
        with self._lock:
            return self.counts[key]

    def start(self) -> EmulatorServer:
        """Serve in a background daemon thread; returns self."""
        # a short poll interval: `stop()` waits for the serving loop to notice, and tests stop often
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="tvdb-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until `stop()` or KeyboardInterrupt."""
        try:
            self._httpd.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections, release the port."""
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
