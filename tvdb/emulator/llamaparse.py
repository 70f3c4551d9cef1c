"""LlamaParse (LlamaCloud Parse API v2), emulated: the routes of contracts.md §2.3 as the real API answers.

    POST /api/v2/parse/upload        multipart: `configuration` (a JSON string), then `file`
    POST /api/v1/beta/files          multipart `file` (+ `purpose`) → a file id
    POST /api/v2/parse               JSON: `file_id` (from the route above), tier, version, …
    GET  /api/v2/parse/{job_id}      `job` always; `expand=` (repeated or comma-separated) adds
                                     markdown, text, markdown_full, text_full, metadata, job_metadata
    POST /api/v2/parse/{job_id}/cancel
    GET  /api/v2/parse               the jobs, newest first (`page_size`, `status`)

Auth: `Authorization: Bearer llx-…`, else 401 `{"detail": …}`. A bad configuration (unknown tier,
bad `page_ranges`, unknown key) is 422 `{"detail": [{loc, msg, type}]}`; more credits than the
account has left is 402; more uploads than `uploads_per_window` per `window_s` is 429 (with
`retry-after` when `send_retry_after`). Page texts come from the same `LocalParser` as mock mode;
pages without a text layer read `NO_CONTENT_HERE`; a password-protected PDF ends FAILED with
`PDF_IS_PROTECTED`. `usage.credits` = parsed pages × tier credits, null until COMPLETED.
Faults (tvdb.faults): request kinds on uploads (`request: call`) or status requests (`request: poll`); job
kinds `stuck`, `job_failed`, `partial` on the job an upload creates. Pure request handling.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from tvdb.emulator import bodies
from tvdb.emulator.base import EmulatorRequest, Reply
from tvdb.emulator.parsejobs import (
    CREDITS_PER_PAGE,
    LATEST_VERSIONS,
    InvalidConfiguration,
    Outcome,
    PageResult,
    ParseJob,
    check_configuration,
    parse_upload,
    selected_pages,
)
from tvdb.faults.plan import Fault, FaultPlan, FaultSchedule
from tvdb.faults.wrappers import as_schedule

JSON_CT = "application/json"
DEFAULT_HANG_S = 30.0
EXPANDABLE = frozenset({"text", "markdown", "items", "metadata", "forms", "job_metadata", "usage",
                        "markdown_full", "text_full", "raw_parameters"})
_JOB_PATH = re.compile(r"^/api/v2/parse/([A-Za-z0-9_-]+)(/cancel)?$")
OnJob = Callable[[ParseJob], None]


class LlamaParseEmulator:
    """Thread-safe handler for `/api`. `clock` (monotonic seconds) drives the jobs' timelines.

    `per_page_s`/`queue_s`: simulated processing time; `credits_limit`: the account's credits
    (None: unlimited); `on_job`: called with each new job (the webhook dispatcher hooks in here).
    """

    prefix = "/api"
    name = "llamaparse"

    def __init__(
        self,
        *,
        per_page_s: float = 0.05,
        queue_s: float = 0.05,
        latency_s: float = 0.0,
        credits_limit: float | None = None,
        uploads_per_window: int | None = None,
        window_s: float = 10.0,
        send_retry_after: bool = True,
        faults: FaultPlan | FaultSchedule | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_job: OnJob | None = None,
    ) -> None:
        self.per_page_s = per_page_s
        self.queue_s = queue_s
        self.latency_s = latency_s
        self.credits_limit = credits_limit
        self.credits_used = 0.0
        self.uploads_per_window = uploads_per_window
        self.window_s = window_s
        self.send_retry_after = send_retry_after
        self.schedule = as_schedule(faults or FaultPlan())
        self.clock = clock
        self.on_job = on_job
        self.jobs: dict[str, ParseJob] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._uploads: deque[float] = deque()
        self._lock = threading.Lock()
        # map the emulator clock to wall-clock UTC for the timestamps in bodies
        self._epoch = (dt.datetime.now(dt.UTC), clock())

    def utc(self, at: float) -> dt.datetime:
        return self._epoch[0] + dt.timedelta(seconds=at - self._epoch[1])

    # -- routing -----------------------------------------------------------------------------

    def handle(self, request: EmulatorRequest) -> Reply:
        path, method = request.path.rstrip("/") or "/", request.method
        if not _authorized(request):
            return _json(401, {"detail": "Invalid authentication token" if request.headers.get("authorization")
                               else "Not authenticated"})
        if method == "POST" and path in ("/api/v2/parse/upload", "/api/v2/parse"):
            return self._with_faults("call", lambda fault: self._create(request, fault, path.endswith("upload")))
        if method == "POST" and path == "/api/v1/beta/files":
            return self._upload_file(request)
        if method == "GET" and path == "/api/v2/parse":
            return self._list(request)
        if method == "GET" and path == "/api/v2/parse/versions":
            return _json(200, {"versions": [{"tier": t, "version": v, "latest": True}
                                            for t, v in LATEST_VERSIONS.items()]})
        m = _JOB_PATH.match(path)
        if m is not None and method == "GET" and not m[2]:
            return self._with_faults("poll", lambda _: self._get(m[1], request.query))
        if m is not None and method == "POST" and m[2]:
            return self._cancel(m[1])
        return _json(404, {"detail": "Not Found"})

    def _with_faults(self, channel: Any, answer: Callable[[Fault | None], Reply]) -> Reply:
        decision = self.schedule.next(self.name, channel)
        delay = self.latency_s + decision.latency_s
        fault = decision.fault
        if fault is not None and fault.kind not in ("stuck", "job_failed", "partial"):
            if fault.kind == "status":
                err = bodies.status_fault(fault)
                return Reply(err.status, {"content-type": JSON_CT, **err.headers}, err.body, delay)
            if fault.kind == "disconnect":
                return Reply(delay_s=delay, action="disconnect")
            if fault.kind == "timeout":
                return Reply(delay_s=delay + (fault.latency_s or DEFAULT_HANG_S), action="hang")
            return Reply(200, {"content-type": JSON_CT}, bodies.MALFORMED_BODY["llamaparse"], delay)
        reply = answer(fault)
        return Reply(reply.status, reply.headers, reply.body, delay + reply.delay_s, reply.action)

    # -- routes ------------------------------------------------------------------------------

    def _create(self, request: EmulatorRequest, fault: Fault | None, multipart: bool) -> Reply:
        try:
            if multipart:
                parts = _multipart(request)
                if "file" not in parts:
                    return _validation(["body", "file"], "Field required", "missing")
                if "configuration" not in parts:
                    return _validation(["body", "configuration"], "Field required", "missing")
                try:
                    config = json.loads(parts["configuration"][0])
                except ValueError:
                    return _validation(["body", "configuration"], "Invalid JSON", "json_invalid")
                data, filename = parts["file"][0], parts["file"][1] or "upload"
            else:
                config = json.loads(request.body or b"null")
                if not isinstance(config, dict):
                    return _validation(["body"], "Input should be a valid dictionary", "dict_type")
                file_id = config.get("file_id")
                with self._lock:
                    stored = self._files.get(file_id) if isinstance(file_id, str) else None
                if stored is None:
                    return _json(404, {"detail": f"File {file_id} not found"})
                data, filename = stored
            config = check_configuration(config)
        except InvalidConfiguration as exc:
            return _json(422, {"detail": exc.errors})
        except ValueError:
            return _validation(["body"], "Invalid request body", "value_error")
        texts, error = parse_upload(data, filename)
        pages = selected_pages(config, len(texts)) if error is None else []
        job = self._new_job(config, filename, texts, pages, error, fault)
        if isinstance(job, Reply):
            return job
        return _json(200, job.wire(self.clock(), self.utc))

    def _new_job(self, config: dict[str, Any], filename: str, texts: list[str], pages: list[int],
                 error: str | None, fault: Fault | None) -> ParseJob | Reply:
        tier = config["tier"]
        cost = float(CREDITS_PER_PAGE[tier] * len(pages))
        with self._lock:
            now = self.clock()
            while self._uploads and self._uploads[0] <= now - self.window_s:
                self._uploads.popleft()
            if self.uploads_per_window is not None and len(self._uploads) >= self.uploads_per_window:
                wait = self._uploads[0] + self.window_s - now
                headers = bodies.retry_after_headers(wait) if self.send_retry_after else {}
                return _json(429, {"detail": "Too Many Requests"}, headers)
            if self.credits_limit is not None and self.credits_used + cost > self.credits_limit:
                return _json(402, {"detail": "You've exceeded the maximum number of credits for your plan"})
            self._uploads.append(now)
            self.credits_used += cost
            results = tuple(PageResult(n, texts[n - 1]) for n in pages)
            if fault is not None and fault.kind == "partial":
                results = tuple(PageResult(p.number, None, "PAGE_PARSING_FAILED: the page could not be parsed")
                                if i < fault.pages else p for i, p in enumerate(results))
            outcome = Outcome(results, error)
            if fault is not None and fault.kind == "job_failed":
                outcome = Outcome((), fault.message or "INTERNAL_ERROR: the job failed")
            job = ParseJob(
                job_id=str(uuid.uuid4()), tier=tier, config=config, created=now, created_at=self.utc(now),
                outcome=outcome, queue_s=self.queue_s, run_s=self.per_page_s * max(1, len(results)),
                stuck=fault is not None and fault.kind == "stuck", name=filename,
            )
            self.jobs[job.job_id] = job
        if self.on_job is not None and config.get("webhook_configurations"):
            self.on_job(job)
        return job

    def _upload_file(self, request: EmulatorRequest) -> Reply:
        try:
            parts = _multipart(request)
        except ValueError:
            return _validation(["body"], "Invalid multipart body", "value_error")
        if "file" not in parts:
            return _validation(["body", "file"], "Field required", "missing")
        data, filename = parts["file"][0], parts["file"][1] or "upload"
        file_id = str(uuid.uuid4())
        with self._lock:
            self._files[file_id] = (data, filename)
        now = self.utc(self.clock()).isoformat().replace("+00:00", "Z")
        return _json(200, {"id": file_id, "name": filename, "project_id": "prj-tvdb-emulator",
                           "file_size": len(data), "created_at": now, "updated_at": now,
                           "purpose": (parts.get("purpose") or (b"parse", None))[0].decode(errors="replace")})

    def job(self, job_id: str) -> ParseJob | None:
        with self._lock:
            return self.jobs.get(job_id)

    def _get(self, job_id: str, query: str) -> Reply:
        job = self.job(job_id)
        if job is None:
            return _json(404, {"detail": f"Parse job {job_id} not found"})
        expand: list[str] = []
        for value in parse_qs(query).get("expand", []) + parse_qs(query).get("expand[]", []):
            expand += [v.strip() for v in value.split(",") if v.strip()]
        unknown = [e for e in expand if e not in EXPANDABLE and not e.endswith("_content_metadata")]
        if unknown:
            return _validation(["query", "expand"], f"Unknown expand value {unknown[0]!r}", "value_error")
        return _json(200, self.result(job, set(expand)))

    def result(self, job: ParseJob, expand: set[str]) -> dict[str, Any]:
        """The get response for `job`: `job`, plus the expanded parts once it is COMPLETED."""
        now = self.clock()
        body: dict[str, Any] = {"job": job.wire(now, self.utc)}
        if job.status(now) != "COMPLETED":
            return body
        pages = job.outcome.pages
        if "markdown" in expand:
            body["markdown"] = {"pages": [
                {"page_number": p.number, "markdown": p.text, "success": True} if p.text is not None
                else {"page_number": p.number, "error": p.error, "success": False} for p in pages]}
        if "text" in expand:
            body["text"] = {"pages": [{"page_number": p.number, "text": p.text or ""} for p in pages]}
        if "markdown_full" in expand:
            body["markdown_full"] = "\n\n".join(p.text for p in pages if p.text is not None)
        if "text_full" in expand:
            body["text_full"] = "\n\n".join(p.text for p in pages if p.text is not None)
        if "metadata" in expand:
            body["metadata"] = {"pages": [{"page_number": p.number, "confidence": 1.0 if p.text else 0.0}
                                          for p in pages]}
        if "job_metadata" in expand:
            body["job_metadata"] = {"job_pages": len(pages), "job_is_cache_hit": False,
                                    "job_auto_mode_triggered_pages": 0}
        return body

    def _cancel(self, job_id: str) -> Reply:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _json(404, {"detail": f"Parse job {job_id} not found"})
            now = self.clock()
            if job.status(now) in ("PENDING", "RUNNING"):
                job.cancelled_at = now
        return _json(200, job.wire(now, self.utc))

    def _list(self, request: EmulatorRequest) -> Reply:
        query = parse_qs(request.query)
        try:
            size = int((query.get("page_size") or ["50"])[0])
        except ValueError:
            return _validation(["query", "page_size"], "Input should be a valid integer", "int_parsing")
        wanted = set(query.get("status") or [])
        now = self.clock()
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
        items = [j.wire(now, self.utc) for j in jobs if not wanted or j.status(now) in wanted]
        return _json(200, {"items": items[:max(1, size)], "next_page_token": None, "total_size": len(items)})


def _authorized(request: EmulatorRequest) -> bool:
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return key.startswith("llx-") and len(key) > 4


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"content-type": JSON_CT, **(headers or {})}, json.dumps(payload).encode())


def _validation(loc: list[str], msg: str, type_: str) -> Reply:
    return _json(422, {"detail": [{"loc": loc, "msg": msg, "type": type_}]})


def _multipart(request: EmulatorRequest) -> dict[str, tuple[bytes, str | None]]:
    """Parts of a multipart/form-data body by name: (content, filename). Raises ValueError."""
    ctype = request.headers.get("content-type", "")
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not ctype.startswith("multipart/form-data") or m is None:
        raise ValueError("not multipart/form-data")
    delimiter = b"--" + m[1].encode()
    parts: dict[str, tuple[bytes, str | None]] = {}
    for chunk in request.body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part without headers")
        disposition = re.search(rb'content-disposition:[^\r\n]*', head, re.I)
        name = re.search(rb'\bname="([^"]*)"', disposition[0]) if disposition else None
        if name is None:
            raise ValueError("a part without a name")
        filename = re.search(rb'\bfilename="([^"]*)"', disposition[0]) if disposition else None
        parts[name[1].decode()] = (content.removesuffix(b"\r\n"),
                                   filename[1].decode(errors="replace") if filename else None)
    return parts
