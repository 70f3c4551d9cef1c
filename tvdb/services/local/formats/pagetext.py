"""Page-text hygiene shared by every parser (local, and the real LlamaParse client).

LlamaParse answers an image-only page (a scan it could not read, a blank page) with the
placeholder ``NO_CONTENT_HERE`` instead of text; it must count as "no text" and never reach
the chunker, the embeddings API or the database as if it were the document's words (CASES C11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tvdb.domain import Page, ParsedDocument
from tvdb.errors import DocumentError, ErrorCode

NO_CONTENT_MARKER = "NO_CONTENT_HERE"
"""What LlamaParse returns as the text/markdown of a page without extractable content."""

# The marker only counts on a line of its own: a document may legitimately mention the word.
_MARKER_LINE = re.compile(rf"^[ \t]*{NO_CONTENT_MARKER}[ \t]*(?:\n|$)", re.MULTILINE)
# C0 controls except tab and newline, DEL, and the BOM that some extractors leave mid-text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufeff]")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")
# The same controls as bytes, for ASCII text: bytes.translate deletes them ~10x faster than the regex.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
# Zero-width characters that make a page look non-empty without any visible text.
_INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]")


def clean_page_text(text: str) -> str:
    """One page's text, normalised: ``\\n`` newlines, no control characters, no leading blank
    lines or trailing whitespace, and no ``NO_CONTENT_HERE`` placeholder line.

    Returns ``""`` for a page without text (see `has_text`). Indentation and inner spacing are
    kept, so Markdown stays Markdown.
    """
    # Each regex below scans a whole page in Python's re engine (~1 ms per 100 KB); the cheap
    # C-level checks in front of them skip the scan for the pages that need none, most of them.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if NO_CONTENT_MARKER in text:
        text = _MARKER_LINE.sub("", text)
    text = _without_controls(text)
    if not has_text(text):
        return ""
    return _LEADING_BLANK_LINES.sub("", text).rstrip()


def _without_controls(text: str) -> str:
    if text.isascii():
        raw = text.encode("ascii")
        kept = raw.translate(None, _CONTROL_BYTES)
        return text if len(kept) == len(raw) else kept.decode("ascii")
    return _CONTROL.sub("", text)


def has_text(text: str) -> bool:
    """True when `text` holds at least one visible character (not whitespace, not zero-width)."""
    content = text.lstrip()
    if content and content[0] not in _INVISIBLE_CHARS:  # its first non-space character is visible
        return True
    return bool(_INVISIBLE.sub("", content).strip())


def is_no_content_placeholder(text: str) -> bool:
    """True when a page's raw text is only LlamaParse's image-only placeholder."""
    return text.strip() == NO_CONTENT_MARKER


def make_document(
    raw_pages: Iterable[str], media_type: str, *, path: str, warnings: Iterable[str] = ()
) -> ParsedDocument:
    """Clean each raw page text (1-based numbering, empty pages kept so numbers stay true) and
    build the `ParsedDocument`.

    Raises DocumentError(NO_TEXT) when no page has any text: a scanned/image-only document,
    a whitespace-only or empty file. Pages without text in an otherwise readable document
    add a warning each.
    """
    notes = list(warnings)
    pages: list[Page] = []
    for number, raw in enumerate(raw_pages, start=1):
        text = clean_page_text(raw)
        if not text:
            why = "image-only page (LlamaParse placeholder)" if is_no_content_placeholder(raw) else "no text"
            notes.append(f"page {number}: {why}")
        pages.append(Page(number, text))
    if not any(p.text for p in pages):
        if not pages:
            raise DocumentError(ErrorCode.NO_TEXT, "the document is empty", path=path)
        raise DocumentError(
            ErrorCode.NO_TEXT,
            f"no text on {'its one page' if len(pages) == 1 else f'any of its {len(pages)} pages'} "
            "(scanned or image-only? it would need OCR; empty or whitespace-only?)",
            path=path,
        )
    return ParsedDocument(pages=tuple(pages), media_type=media_type, warnings=tuple(notes))
