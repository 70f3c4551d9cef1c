"""The secret scan: key-shaped strings in a serialised cassette (or any text file).

Flags `sk-…`, `llx-…`, `whsec_…` and bearer tokens, and the configured secrets themselves in plain,
URL-encoded and base64 form; YAML `!!binary` blocks are decoded and scanned too (a multipart upload
is stored that way). A finding names the file and line and shows a masked excerpt, never the whole
secret. Strings that say they are fake (`sk-fake-…`) and our own placeholder are not findings.
Every cassette write runs this scan and refuses to write on a finding; `tvdb cassette check` runs it
for CI and pre-commit.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tvdb.recording.scrub import secret_forms

_SHAPES = (
    ("OpenAI key", re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")),
    ("LlamaCloud key", re.compile(r"\bllx-[A-Za-z0-9_\-]{16,}")),
    ("webhook signing secret", re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]{16,}")),
    ("Slack token", re.compile(r"\bxox[a-z]-[A-Za-z0-9\-]{16,}")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{12,}=*")),
)
_ALLOWED = re.compile(r"(?i)fake|SCRUBBED|REDACTED")
_BINARY_START = re.compile(r"!!binary\s*\|[-+]?\s*$")
_BASE64_LINE = re.compile(r"^\s+([A-Za-z0-9+/=]+)\s*$")


@dataclass(frozen=True, slots=True)
class Finding:
    """One key-shaped string: where (`file`:`line`, 1-based), what kind, and a masked excerpt."""

    file: str
    line: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.excerpt}"


def mask(secret: str) -> str:
    """The first 6 characters and the length; never the whole secret."""
    return f"{secret[:6]}…({len(secret)} chars)"


def _excerpt(line: str, start: int, end: int) -> str:
    before = line[max(0, start - 30):start].lstrip()
    after = line[end:end + 20].rstrip()
    return f"{before}{mask(line[start:end])}{after}"


def _hits(text: str, literals: re.Pattern[str] | None) -> Iterator[tuple[str, int, int]]:
    for kind, shape in _SHAPES:
        for m in shape.finditer(text):
            if not _ALLOWED.search(m.group(0)):
                yield kind, m.start(), m.end()
    if literals is not None:
        for m in literals.finditer(text):
            yield "configured secret", m.start(), m.end()


def _literal_pattern(secrets: Iterable[str | None]) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for s in secrets:
        if s and len(s) >= 6:
            forms |= secret_forms(s)
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def scan_text(text: str, file: str, secrets: Iterable[str | None] = ()) -> list[Finding]:
    """Findings in `text`, reported against `file`, in line order (one per hit)."""
    literals = _literal_pattern(secrets)
    findings: list[Finding] = []
    lines = text.splitlines()
    binary_from: int | None = None
    block: list[str] = []

    def flush() -> None:
        if binary_from is None or not block:
            return
        try:
            decoded = binascii.a2b_base64("".join(block)).decode("latin-1")
        except (binascii.Error, ValueError):
            return
        for kind, start, end in _hits(decoded, literals):
            findings.append(Finding(file, binary_from, f"{kind} (in a !!binary body)",
                                    _excerpt(decoded.replace("\r", " ").replace("\n", " "), start, end)))

    for number, line in enumerate(lines, 1):
        spans: dict[tuple[int, int], str] = {}
        for kind, start, end in _hits(line, literals):
            spans.setdefault((start, end), kind)
        for (start, end), kind in sorted(spans.items()):
            findings.append(Finding(file, number, kind, _excerpt(line, start, end)))
        m = _BASE64_LINE.match(line)
        if binary_from is not None and m:
            block.append(m.group(1))
            continue
        flush()
        binary_from, block = (number, []) if _BINARY_START.search(line) else (None, [])
    flush()
    return sorted(findings, key=lambda f: f.line)


def scan_file(path: Path, secrets: Iterable[str | None] = ()) -> list[Finding]:
    """Findings in one file; an unreadable file is reported as a finding rather than skipped."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        return [Finding(str(path), 0, "unreadable", exc.strerror or str(exc))]
    return scan_text(text, str(path), secrets)
