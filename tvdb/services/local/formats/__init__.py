"""Per-format text extraction for `LocalParser`, and the media types tvdb ingests.

Each format module turns a document's bytes into raw page texts; `pagetext.make_document`
cleans them and decides `no_text`. Heavy libraries (pypdf, python-docx, BeautifulSoup) are
imported inside the functions that use them, so importing this package stays cheap.
"""

from __future__ import annotations

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
PLAIN = "text/plain"

SUPPORTED_MEDIA_TYPES: frozenset[str] = frozenset({PDF, DOCX, HTML, MARKDOWN, PLAIN})
"""Every media type `detect_media_type` returns and `LocalParser` parses."""

SUPPORTED_DESCRIPTION = "PDF, DOCX, HTML, Markdown or plain text"
