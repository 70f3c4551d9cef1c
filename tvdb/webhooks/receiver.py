"""`WebhookReceiver`: a loopback HTTP server for LlamaCloud's signed webhook deliveries.

    POST /   verified by tvdb.webhooks.verify; 2xx for an accepted or already-seen delivery
             (acknowledged and ignored), 401/413/400 for a refused one (nothing stored)

The real parser (`parse.webhook: true`) puts `webhook_config()` on each upload and awaits
`wait(job_id, grace_s)`; a delivery for a job nobody waits for is acknowledged and logged.
`tvdb webhook serve` runs the same server in the foreground. Deliveries are read with a bounded
size and a socket timeout, so a client that sends less than its Content-Length is cut off (400).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tvdb.webhooks.verify import MAX_BODY_BYTES, Event, Verdict, verify

if TYPE_CHECKING:
    from tvdb.config import Settings

log = logging.getLogger(__name__)
FINAL_EVENTS = ["parse.success", "parse.partial_success", "parse.error", "parse.cancelled"]
_SEEN_CAP = 100_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 5.0  # a delivery that stops sending mid-body is dropped, not waited on forever

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook %s " + format, self.address_string(), *args)

    def _answer(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 — the stdlib's name
        receiver = self.server.receiver
        try:
            length = int(self.headers.get("content-length") or "")
        except ValueError:
            self.close_connection = True
            return self._answer(411, "a Content-Length is required")
        if length > receiver.max_bytes:
            self.close_connection = True
            return self._answer(413, f"over the {receiver.max_bytes}-byte cap")
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            body = b""
        if len(body) < length:
            self.close_connection = True
            return self._answer(400, "the body is shorter than its Content-Length")
        verdict = receiver.receive({k.lower(): v for k, v in self.headers.items()}, body)
        self._answer(verdict.status, verdict.reason)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: WebhookReceiver


class WebhookReceiver:
    """Verifies and de-duplicates deliveries signed with `secret`; `wait` hands a job's end to a waiter.

    `public_url` is what uploads carry as `webhook_url` (default: this server's loopback URL; the
    real service needs a public HTTPS address that forwards here). `on_event` sees each new event.
    """

    def __init__(
        self, secret: str, *, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None,
        max_bytes: int = MAX_BODY_BYTES, on_event: Callable[[Event], None] | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a webhook receiver needs a signing secret")
        self._secret = secret
        self.max_bytes = max_bytes
        self.on_event = on_event
        self.events: list[Event] = []
        self.refused = 0
        self.duplicates = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._final: dict[str, str] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[str]]]] = {}
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.receiver = self
        self._thread: threading.Thread | None = None
        self.public_url = public_url

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def webhook_config(self) -> dict[str, Any]:
        """The `webhook_configurations` entry an upload carries (final events, signed, JSON object)."""
        return {"webhook_url": self.public_url or self.url, "webhook_events": list(FINAL_EVENTS),
                "webhook_signing_secret": self._secret, "webhook_output_format": "json"}

    # -- deliveries ---------------------------------------------------------------------------

    def receive(self, headers: dict[str, str], body: bytes) -> Verdict:
        """Verify, de-duplicate, record, and wake whoever waits for the job."""
        verdict = verify(self._secret, headers, body, max_bytes=self.max_bytes)
        event = verdict.event
        if event is None:
            with self._lock:
                self.refused += 1
            log.warning("webhook delivery refused (%d): %s", verdict.status, verdict.reason)
            return verdict
        with self._lock:
            if event.dedupe_key in self._seen:
                self.duplicates += 1
                log.info("webhook delivery %s seen before: acknowledged and ignored", event.dedupe_key)
                return Verdict(200, "duplicate: already received")
            self._seen[event.dedupe_key] = None
            while len(self._seen) > _SEEN_CAP:
                self._seen.popitem(last=False)
            self.events.append(event)
            final = event.status in ("COMPLETED", "FAILED", "CANCELLED")
            waiters = self._waiters.pop(event.job_id or "", []) if final else []
            if final and event.job_id:
                self._final[event.job_id] = str(event.status)
        if final and not waiters:
            log.info("webhook %s for job %s: nobody waits for it (acknowledged)", event.event_type, event.job_id)
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future, str(event.status))
        if self.on_event is not None:
            self.on_event(event)
        return verdict

    async def wait(self, job_id: str, timeout_s: float) -> str | None:
        """The job's final status once its event arrives, or None after `timeout_s` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        with self._lock:
            if job_id in self._final:
                return self._final[job_id]
            self._waiters.setdefault(job_id, []).append((loop, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            with self._lock:
                entries = self._waiters.get(job_id, [])
                self._waiters[job_id] = [w for w in entries if w[1] is not future]
                if not self._waiters[job_id]:
                    del self._waiters[job_id]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="tvdb-webhooks", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)


def _resolve(future: asyncio.Future[str], status: str) -> None:
    if not future.done():
        future.set_result(status)


def start_receiver(settings: Settings) -> WebhookReceiver:
    """The in-process receiver of a run with `parse.webhook: true`: the configured secret
    (LLAMA_CLOUD_WEBHOOK_SECRET) or a fresh random one for this run, on a free loopback port."""
    secret = settings.llama_cloud_webhook_secret
    value = secret.get_secret_value() if secret is not None else secrets.token_hex(32)
    return WebhookReceiver(value, public_url=settings.parse.webhook_url).start()
