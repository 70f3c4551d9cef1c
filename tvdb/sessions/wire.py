"""What a session reads from the requests it serves and the answers they get: estimates before a
call, usage after it. Pure functions of bytes.

    embeddings  estimate: tiktoken tokens of `input` (a token array counts its length)
                actual:   `usage.prompt_tokens` of the answer          (contracts.md §1.2, §1.4)
    parse       estimate: pages of the uploaded file (pypdf for a PDF, 1 otherwise; the
                          `page_ranges.max_pages` cap applies) at the request's `tier`
                actual:   the job's `usage.credits` ÷ the tier's credits per page   (contracts.md §2.3)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tvdb import catalog
from tvdb.tokens import count_tokens

REPLAYED_HEADER = "x-tvdb-replayed"  # set by tvdb.recording on answers played while recording
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
# the body is given to the SDK decoded, so the headers that described its wire form no longer apply
_DROP = frozenset({"content-encoding", "content-length", "transfer-encoding", REPLAYED_HEADER})


@dataclass(frozen=True, slots=True)
class Wire:
    """One answer: status, headers (name, value) as received, and the decoded body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def replayed(self) -> bool:
        """Answered from the cassette while recording (`record_mode` once / new_episodes)."""
        return self.header(REPLAYED_HEADER) is not None

    def for_client(self) -> list[tuple[str, str]]:
        """The headers to hand the SDK with the decoded body."""
        return [(k, v) for k, v in self.headers if k.lower() not in _DROP]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def json_body(body: bytes) -> dict[str, Any]:
    """A JSON object body, or {} for anything else."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def embedding_estimate(body: bytes) -> tuple[str, int]:
    """(model, tokens) of an embeddings request body; the emulator answers a malformed one with 400."""
    data = json_body(body)
    model = data.get("model") if isinstance(data.get("model"), str) else catalog.DEFAULT_EMBEDDING_MODEL
    raw = data.get("input")
    items: Sequence[Any] = [raw] if isinstance(raw, str) or (
        isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)) else (raw or [])
    texts = [t for t in items if isinstance(t, str)]
    arrays = sum(len(t) for t in items if isinstance(t, list))
    try:
        encoding = catalog.embedding_model(str(model)).encoding
    except Exception:  # noqa: BLE001 - an unknown model: the service refuses it, cl100k is a fair estimate
        encoding = "cl100k_base"
    return str(model), sum(count_tokens(texts, encoding)) + arrays if texts else arrays


def embedding_usage(wire: Wire) -> Mapping[str, Any]:
    data = wire.json()
    usage = data.get("usage") if isinstance(data, dict) else None
    return usage if isinstance(usage, dict) else {}


def prompt_tokens(wire: Wire, estimate: float) -> float:
    """Billed tokens: `usage.prompt_tokens`, else the estimate (an answer without usage)."""
    value = embedding_usage(wire).get("prompt_tokens")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else estimate


@dataclass(frozen=True, slots=True)
class ParseEstimate:
    tier: str
    pages: int
    file_bytes: bytes | None = None


def _pages_of(data: bytes) -> int:
    from tvdb.emulator.parsejobs import _page_count

    return _page_count(data)


def _cap(pages: int, config: Mapping[str, Any]) -> int:
    ranges = config.get("page_ranges")
    cap = ranges.get("max_pages") if isinstance(ranges, dict) else None
    return min(pages, cap) if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else pages


def upload_estimate(body: bytes, content_type: str | None, default_tier: str) -> ParseEstimate:
    """Tier and pages of a `/api/v2/parse/upload` multipart body (parts `configuration`, `file`)."""
    from tvdb.emulator.base import EmulatorRequest
    from tvdb.emulator.llamaparse import _multipart

    try:
        parts = _multipart(EmulatorRequest("POST", "", {"content-type": content_type or ""}, body))
    except ValueError:
        return ParseEstimate(default_tier, 1)
    config = json_body(parts["configuration"][0]) if "configuration" in parts else {}
    tier = config.get("tier") if isinstance(config.get("tier"), str) else default_tier
    data = parts["file"][0] if "file" in parts else None
    return ParseEstimate(str(tier), _cap(_pages_of(data), config) if data is not None else 1, data)


def file_pages(body: bytes, content_type: str | None) -> int:
    """Pages of the file in a `/api/v1/beta/files` upload (1 when it cannot be read)."""
    from tvdb.emulator.base import EmulatorRequest
    from tvdb.emulator.llamaparse import _multipart

    try:
        parts = _multipart(EmulatorRequest("POST", "", {"content-type": content_type or ""}, body))
    except ValueError:
        return 1
    return _pages_of(parts["file"][0]) if "file" in parts else 1


def create_estimate(body: bytes, default_tier: str, known_pages: Mapping[str, int]) -> ParseEstimate:
    """Tier and pages of a JSON `/api/v2/parse` body: the pages of an uploaded `file_id` this session
    saw, else 1 (a `source_url` is not fetched to count it)."""
    data = json_body(body)
    tier = data.get("tier") if isinstance(data.get("tier"), str) else default_tier
    pages = known_pages.get(str(data.get("file_id")), 1)
    return ParseEstimate(str(tier), _cap(pages, data))


def job_of(wire: Wire) -> dict[str, Any]:
    """The job object of a create answer (top level) or a get answer (`job`)."""
    data = wire.json()
    if not isinstance(data, dict):
        return {}
    job = data.get("job", data)
    return job if isinstance(job, dict) else {}


def job_credits(job: Mapping[str, Any]) -> float | None:
    usage = job.get("usage")
    value = usage.get("credits") if isinstance(usage, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
