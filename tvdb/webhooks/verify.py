"""Checks of one webhook delivery, before anything is stored (contracts.md §2.6, §4).

`LC-Signature: sha256=<64 hex>` must equal HMAC-SHA256(secret, raw body), compared in constant
time over the bytes exactly as received (never a re-serialised body). Missing, malformed, forged or
truncated signatures → 401; a body over `max_bytes` → 413. The v2 payload is undocumented, so any
JSON object, or a JSON-encoded string holding one (`webhook_output_format: string`, the default),
is accepted; the job id and event type are read where present. The scheme has no timestamp, so
replay protection is de-duplication: on the event id when there is one, else the body's sha256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 1 << 20
_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
# what an event type says about the job's state
EVENT_STATUS = {"parse.success": "COMPLETED", "parse.partial_success": "COMPLETED", "parse.error": "FAILED",
                "parse.cancelled": "CANCELLED", "parse.pending": "PENDING", "parse.running": "RUNNING"}


@dataclass(frozen=True, slots=True)
class Event:
    """An accepted delivery. `dedupe_key` is `event:<id>` or `sha256:<hex of the body>`."""

    dedupe_key: str
    event_type: str | None
    job_id: str | None
    status: str | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verdict:
    """HTTP status to answer, why (for the log; never secret), and the event when accepted."""

    status: int
    reason: str
    event: Event | None = None


def expected_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> Verdict:
    """Check one delivery (`headers` lower-cased). 200 + event, or 401/413/400 and nothing else."""
    if len(body) > max_bytes:
        return Verdict(413, f"body of {len(body)} bytes is over the {max_bytes}-byte cap")
    given = headers.get("lc-signature")
    if not given:
        return Verdict(401, "no LC-Signature header")
    if not _SIGNATURE.fullmatch(given.strip()):
        return Verdict(401, "malformed LC-Signature (expected sha256=<64 hex digits>)")
    if not hmac.compare_digest(expected_signature(secret, body).encode(), given.strip().lower().encode()):
        return Verdict(401, "LC-Signature does not match the body (forged, truncated or another secret)")
    try:
        payload: Any = json.loads(body)
        if isinstance(payload, str):  # `webhook_output_format: string`: a JSON-encoded string
            payload = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return Verdict(400, "the body is not JSON")
    if not isinstance(payload, dict):
        return Verdict(400, "the payload is not a JSON object")
    return Verdict(200, "accepted", _event(payload, body))


def _event(payload: dict[str, Any], body: bytes) -> Event:
    raw_job = payload.get("job")
    job: dict[str, Any] = raw_job if isinstance(raw_job, dict) else {}
    event_type = next((v for k in ("event_type", "event", "type") if isinstance(v := payload.get(k), str)), None)
    job_id = next((v for v in (payload.get("job_id"), job.get("id"), payload.get("id") if job else None)
                   if isinstance(v, str) and v), None)
    status = payload.get("status") if isinstance(payload.get("status"), str) else job.get("status")
    if not isinstance(status, str):
        status = EVENT_STATUS.get(event_type or "")
    event_id = payload.get("event_id")
    key = f"event:{event_id}" if isinstance(event_id, str) and event_id else \
        "sha256:" + hashlib.sha256(body).hexdigest()
    return Event(key, event_type, job_id, status, payload)
