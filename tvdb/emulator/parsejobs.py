"""The LlamaParse emulator's jobs: configuration checks, per-page results, and the job clock.

A job's status is a pure function of its timeline: PENDING for `queue_s`, RUNNING for
`per_page_s` × pages, then its outcome (COMPLETED, or FAILED for a document the service cannot
read). A `stuck` job stays PENDING; a cancelled one is CANCELLED from the moment it was cancelled.
Wire shapes: contracts.md §2.3 (llama-cloud 2.19.0 `types/parsing_get_response.py`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from tvdb import catalog
from tvdb.errors import DocumentError, ErrorCode

NO_CONTENT = "NO_CONTENT_HERE"
PROJECT_ID = "prj-tvdb-emulator"
PROTECTED = "PDF_IS_PROTECTED"
# The 2.19.0 SDK docstring's "latest" per tier (contracts.md §2.3)
LATEST_VERSIONS = {"fast": "2026-06-15", "cost_effective": "2026-09-28", "agentic": "2026-10-16",
                   "agentic_plus": "2026-09-28"}
CREDITS_PER_PAGE = catalog.PARSE_CREDITS_PER_PAGE
CONFIG_KEYS = frozenset({
    "tier", "version", "agentic_options", "client_name", "crop_box", "disable_cache", "fast_options",
    "http_proxy", "input_options", "output_options", "page_ranges", "processing_control",
    "processing_options", "source_url", "webhook_configurations", "user_metadata", "configuration_id",
    "webhook_configuration_ids", "file_id",
})


class InvalidConfiguration(Exception):
    """A configuration the API answers with 422; `errors` are FastAPI `{loc, msg, type}` items."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(errors[0]["msg"])


def _invalid(loc: list[str | int], msg: str, type_: str = "value_error") -> InvalidConfiguration:
    return InvalidConfiguration([{"loc": ["body", *loc], "msg": msg, "type": type_}])


def check_configuration(config: Any) -> dict[str, Any]:
    """The validated configuration; raises InvalidConfiguration as the API's 422 would."""
    if not isinstance(config, dict):
        raise _invalid(["configuration"], "Input should be a valid dictionary", "dict_type")
    for key in config:
        if key not in CONFIG_KEYS:
            raise _invalid([key], "Extra inputs are not permitted", "extra_forbidden")
    for key in ("tier", "version"):
        if key not in config:
            raise _invalid([key], "Field required", "missing")
    tier = config["tier"]
    if tier not in catalog.PARSE_TIERS:
        allowed = ", ".join(f"'{t}'" for t in catalog.PARSE_TIERS)
        raise _invalid(["tier"], f"Input should be {allowed}", "enum")
    version = config["version"]
    if not isinstance(version, str) or not (version == "latest" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", version)):
        raise _invalid(["version"], "Input should be 'latest' or a dated version (YYYY-MM-DD)")
    ranges = config.get("page_ranges")
    if ranges is not None:
        if not isinstance(ranges, dict) or set(ranges) - {"max_pages", "target_pages"}:
            raise _invalid(["page_ranges"], "Input should be an object with max_pages and/or target_pages")
        max_pages = ranges.get("max_pages")
        if max_pages is not None and (not isinstance(max_pages, int) or isinstance(max_pages, bool)
                                      or max_pages < 1):
            raise _invalid(["page_ranges", "max_pages"], "Input should be greater than or equal to 1",
                           "greater_than_equal")
        target = ranges.get("target_pages")
        if target is not None:
            target_pages(target)  # raises
    hooks = config.get("webhook_configurations")
    if hooks is not None and (not isinstance(hooks, list) or not all(isinstance(h, dict) for h in hooks)):
        raise _invalid(["webhook_configurations"], "Input should be a valid list of objects", "list_type")
    return config


def target_pages(spec: Any) -> list[int]:
    """`"1-3,5"` (1-based, sorted) → [1, 2, 3, 5]; duplicates and bad ranges are 422s."""
    loc: list[str | int] = ["page_ranges", "target_pages"]
    if not isinstance(spec, str) or not spec.strip():
        raise _invalid(loc, "Input should be a string such as '1-3,5'", "string_type")
    try:
        return catalog.target_pages(spec)
    except ValueError as exc:
        raise _invalid(loc, str(exc).capitalize()) from None


def selected_pages(config: dict[str, Any], total: int) -> list[int]:
    """The 1-based pages a job processes: `target_pages` wins over `max_pages` (SDK docstring)."""
    ranges = config.get("page_ranges") or {}
    if ranges.get("target_pages"):
        return [p for p in target_pages(ranges["target_pages"]) if p <= total]
    limit = ranges.get("max_pages")
    return list(range(1, (min(total, limit) if limit else total) + 1))


@dataclass(frozen=True, slots=True)
class PageResult:
    number: int
    text: str | None  # None: the page failed
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing a document yields: its pages, or the error message a FAILED job shows."""

    pages: tuple[PageResult, ...] = ()
    error: str | None = None


def parse_upload(data: bytes, filename: str) -> tuple[list[str], str | None]:
    """The document's page texts through the same `LocalParser` as mock mode, or a FAILED message.

    A document without a text layer is pages of `NO_CONTENT_HERE`, as LlamaParse answers a scan.
    """
    from tvdb.pipeline.detect import detect_media_type
    from tvdb.services.local.parser import parse_document

    try:
        media_type = detect_media_type(data, filename)
        document = parse_document(data, filename, media_type)
    except DocumentError as exc:
        if exc.code is ErrorCode.ENCRYPTED:
            return [], f"{PROTECTED}: the PDF is password protected ({exc.message})"
        if exc.code is ErrorCode.NO_TEXT:
            return [NO_CONTENT] * _page_count(data), None
        return [], f"UNREADABLE_DOCUMENT: {exc.message}"
    return [p.text or NO_CONTENT for p in document.pages], None


def _page_count(data: bytes) -> int:
    if not data.startswith(b"%PDF"):
        return 1
    try:
        import io

        from pypdf import PdfReader

        return max(1, len(PdfReader(io.BytesIO(data)).pages))
    except Exception:  # noqa: BLE001 — any damage: the scan counts as one page
        return 1


@dataclass
class ParseJob:
    """One job's state (mutated under the emulator's lock)."""

    job_id: str
    tier: str
    config: dict[str, Any]
    created: float  # emulator clock
    created_at: dt.datetime
    outcome: Outcome
    queue_s: float
    run_s: float
    stuck: bool = False
    cancelled_at: float | None = None
    name: str | None = None

    def status(self, now: float) -> str:
        if self.cancelled_at is not None and now >= self.cancelled_at:
            return "CANCELLED"
        elapsed = now - self.created
        if self.stuck or elapsed < self.queue_s:
            return "PENDING"
        if elapsed < self.queue_s + self.run_s:
            return "RUNNING"
        return "FAILED" if self.outcome.error is not None else "COMPLETED"

    @property
    def done_at(self) -> float | None:
        return None if self.stuck else self.created + self.queue_s + self.run_s

    def credits(self, now: float) -> float | None:
        """Billed credits: parsed pages × tier credits once COMPLETED; null before; 0 when FAILED;
        the pages already processed when CANCELLED while RUNNING."""
        status = self.status(now)
        per_page = CREDITS_PER_PAGE[self.tier]
        if status == "COMPLETED":
            return float(per_page * sum(1 for p in self.outcome.pages if p.text is not None))
        if status == "FAILED":
            return 0.0
        if status == "CANCELLED":
            assert self.cancelled_at is not None
            ran = max(0.0, self.cancelled_at - self.created - self.queue_s)
            if self.stuck or ran <= 0 or not self.outcome.pages:
                return 0.0
            per_page_s = self.run_s / len(self.outcome.pages)
            done = len(self.outcome.pages) if per_page_s <= 0 else min(len(self.outcome.pages),
                                                                     int(ran / per_page_s))
            return float(per_page * done)
        return None

    def wire(self, now: float, clock_to_utc: Any) -> dict[str, Any]:
        """The job object (create response, and `job` of the get response)."""
        status = self.status(now)
        updated = self.created if status == "PENDING" else min(now, self.done_at or now)
        if status == "CANCELLED" and self.cancelled_at is not None:
            updated = self.cancelled_at
        return {
            "id": self.job_id, "project_id": PROJECT_ID, "status": status, "tier": self.tier,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": clock_to_utc(updated).isoformat().replace("+00:00", "Z"),
            "error_message": self.outcome.error if status == "FAILED" else None,
            "name": self.name, "usage": {"credits": self.credits(now)},
            "user_metadata": self.config.get("user_metadata"),
        }
