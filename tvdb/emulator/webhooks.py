"""The LlamaParse emulator's webhook deliveries: `parse.*` events, signed with `LC-Signature`.

For each `webhook_configurations` entry of a job, one daemon thread watches the job and POSTs each
event it reaches (`parse.pending`, `parse.running`, then `parse.success`, `parse.partial_success`,
`parse.error` or `parse.cancelled`), filtered by `webhook_events` (null: all), with the entry's
`webhook_headers`. `webhook_output_format` `string` (the default) sends the payload as a
JSON-encoded string, `json` as an object. With a `webhook_signing_secret` the request carries
`LC-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (contracts.md §2.6, §4). A non-2xx answer
or a connection error is retried with exponential backoff (`backoff_s`), at most `attempts` times.
The v2 payload is undocumented: ours is `{event_id, event_type, job_id, status, timestamp, job}`.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from tvdb.emulator.llamaparse import LlamaParseEmulator
    from tvdb.emulator.parsejobs import ParseJob
    from tvdb.http import Client

log = logging.getLogger(__name__)
FINAL_EVENTS = {"COMPLETED": "parse.success", "FAILED": "parse.error", "CANCELLED": "parse.cancelled"}


def sign(secret: str, body: bytes) -> str:
    """The `LC-Signature` value for `body`: `sha256=<hex HMAC-SHA256>` (the receiver's own check)."""
    from tvdb.webhooks.verify import expected_signature

    return expected_signature(secret, body)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery attempt, as the dispatcher saw it (status None: no answer)."""

    event: str
    url: str
    attempt: int
    status: int | None


def event_body(event: str, job: dict[str, Any], output_format: str) -> bytes:
    payload = {"event_id": str(uuid.uuid4()), "event_type": event, "job_id": job["id"],
               "status": job["status"], "timestamp": job["updated_at"], "job": job}
    text = json.dumps(payload)
    return json.dumps(text).encode() if output_format != "json" else text.encode()


class WebhookDispatcher:
    """Delivers a job's events to its webhook configurations until `stopping` is set."""

    def __init__(
        self, emulator: LlamaParseEmulator, stopping: threading.Event, *, attempts: int = 5,
        backoff_s: Sequence[float] = (0.1, 0.3, 1.0, 3.0), poll_s: float = 0.01,
        client: Client | None = None,
    ) -> None:
        self.emulator = emulator
        self.stopping = stopping
        self.attempts = attempts
        self.backoff_s = tuple(backoff_s)
        self.poll_s = poll_s
        self._client = client
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    def start_job(self, job: ParseJob) -> None:
        for config in job.config.get("webhook_configurations") or []:
            threading.Thread(target=self._watch, args=(job, config), daemon=True,
                             name=f"tvdb-webhook-{job.job_id[:8]}").start()

    def _events(self, job: ParseJob, status: str) -> list[str]:
        """Every event the job has reached by `status`, in order (a watcher that starts late, on a
        busy machine, still delivers the earlier ones, as the real service sent them at the time)."""
        events = ["parse.pending"]
        ran = not job.stuck and (job.cancelled_at is None or job.cancelled_at - job.created >= job.queue_s)
        if status != "PENDING" and ran:
            events.append("parse.running")
        if status == "COMPLETED" and any(p.text is None for p in job.outcome.pages):
            events.append("parse.partial_success")
        elif status in FINAL_EVENTS:
            events.append(FINAL_EVENTS[status])
        return events

    def _watch(self, job: ParseJob, config: dict[str, Any]) -> None:
        wanted = config.get("webhook_events")
        seen: set[str] = set()
        while not self.stopping.is_set():
            status = job.status(self.emulator.clock())
            wire = job.wire(self.emulator.clock(), self.emulator.utc)
            for event in self._events(job, status):
                if event in seen:
                    continue
                seen.add(event)
                if wanted is None or event in wanted:
                    self._deliver(event, wire, config)
            if status in FINAL_EVENTS:
                return
            self.stopping.wait(self.poll_s)

    def _backoff(self, state: RetryCallState) -> float:
        """Seconds before attempt `state.attempt_number + 1`: the schedule's entry, its last one beyond it."""
        if not self.backoff_s:
            return 0.0
        return self.backoff_s[min(state.attempt_number - 1, len(self.backoff_s) - 1)]

    def _pause(self, seconds: float) -> None:
        self.stopping.wait(seconds)  # a stopping emulator does not sit out a backoff

    def _deliver(self, event: str, job: dict[str, Any], config: dict[str, Any]) -> None:
        from tenacity import Retrying, retry_if_result, stop_after_attempt

        from tvdb.http import Client, HTTPError

        url = str(config.get("webhook_url") or "")
        body = event_body(event, job, str(config.get("webhook_output_format") or "string"))
        headers = {str(k): str(v) for k, v in (config.get("webhook_headers") or {}).items()}
        headers["content-type"] = "application/json"
        secret = config.get("webhook_signing_secret")
        if secret:
            headers["LC-Signature"] = sign(str(secret), body)
        client = self._client or Client(timeout=5.0)
        tried = [0]

        def post() -> bool:
            tried[0] += 1
            if tried[0] > 1 and self.stopping.is_set():
                return True  # stopped during the backoff: give up quietly, as a stopping server does
            status: int | None = None
            try:
                status = client.post(url, content=body, headers=headers).status_code
            except HTTPError as exc:
                log.debug("webhook %s to %s failed: %s", event, url, type(exc).__name__)
            with self._lock:
                self.deliveries.append(Delivery(event, url, tried[0], status))
            return status is not None and 200 <= status < 300

        try:
            # the delivery schedule is tenacity's: retry until a 2xx, `attempts` at most, `backoff_s` between
            Retrying(stop=stop_after_attempt(self.attempts), wait=self._backoff, sleep=self._pause,
                     retry=retry_if_result(lambda delivered: not delivered),
                     retry_error_callback=lambda _state: False)(post)
        finally:
            if self._client is None:
                client.close()
