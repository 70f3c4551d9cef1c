"""Local receivers on loopback for alert delivery tests: an HTTP server and an aiosmtpd handler."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword


class Receiver:
    """An HTTP server on 127.0.0.1 that records POSTs and answers with scripted statuses."""

    def __init__(self, statuses: list[int], delay_s: float = 0.0) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.statuses = statuses
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append((self.path, dict(self.headers), json.loads(body)))
                time.sleep(delay_s)
                status = receiver.statuses[min(len(receiver.requests), len(receiver.statuses)) - 1]
                try:
                    self.send_response(status)
                    self.send_header("content-type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"ok" if status == 200 else b"error")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    def __init__(self, replies: list[str] | None = None) -> None:
        self.messages: list[Any] = []
        self.replies = replies or ["250 OK"]
        self.data_calls = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.data_calls += 1
        reply = self.replies[min(self.data_calls, len(self.replies)) - 1]
        if reply.startswith("250"):
            self.messages.append(envelope)
        return reply


def authenticator_for(expected: str) -> Any:
    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == expected
        return AuthResult(success=ok, handled=False)

    return authenticator
