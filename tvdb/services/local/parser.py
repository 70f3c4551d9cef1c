"""`LocalParser`: the mock-mode stand-in for LlamaParse that really extracts text, offline.

It bills what LlamaParse would bill (one unit per page) so that mock runs price their parse
calls truthfully, and fails a document with the same DocumentError codes a real run would.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tvdb.domain import Implementation, ParsedDocument, ParseRequest, ParseResult
from tvdb.errors import DocumentError, ErrorCode
from tvdb.services.local.formats import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    SUPPORTED_DESCRIPTION,
)

if TYPE_CHECKING:
    from tvdb.services.protocols import Parser

# Text and Markdown documents up to this size (bytes) are parsed on the calling thread: decoding
# and cleaning 256 KiB takes 3-11 ms (measured; a small document well under one), less than the hop
# to a worker thread and back costs while the embedder's threads hold the GIL (each of the two
# hand-offs can wait a 5 ms switch interval: 10-20 ms a document in a mock run's parse stage).
# Larger ones, and every PDF, DOCX and HTML document, are parsed on a worker thread.
INLINE_TEXT_BYTES = 256 * 1024


def parse_document(data: bytes, filename: str, media_type: str) -> ParsedDocument:
    """Extract the per-page text of a document (synchronous, CPU-bound).

    `media_type` is one of `tvdb.services.local.formats.SUPPORTED_MEDIA_TYPES` (as returned by
    `tvdb.pipeline.detect.detect_media_type`); parameters such as ``; charset=`` are ignored.
    `filename` names the document in errors and is not read.

    Raises DocumentError with code UNSUPPORTED_TYPE, ENCRYPTED, CORRUPT or NO_TEXT; nothing else.
    """
    kind = media_type.split(";", 1)[0].strip().lower()
    if kind == PDF:
        from tvdb.services.local.formats.pdf import parse_pdf

        return parse_pdf(data, path=filename)
    if kind == DOCX:
        from tvdb.services.local.formats.word import parse_docx

        return parse_docx(data, path=filename)
    if kind == HTML:
        from tvdb.services.local.formats.html import parse_html

        return parse_html(data, path=filename)
    if kind in (MARKDOWN, PLAIN):
        from tvdb.services.local.formats.text import parse_text

        return parse_text(data, kind, path=filename)
    raise DocumentError(
        ErrorCode.UNSUPPORTED_TYPE,
        f"cannot parse media type {media_type!r} (supported: {SUPPORTED_DESCRIPTION})",
        path=filename,
    )


class LocalParser:
    """The `Parser` used by mock mode and hybrid fallback: real text, no network, no cost.

    `parse` returns every page's text (1-based `Page` numbers), `pages_billed` = the page count
    (LlamaParse bills per page whatever the tier; the tier does not change local extraction)
    and ``usage={"pages": n}``. Errors: see `parse_document`.
    """

    service: str = "llamaparse"
    implementation: Implementation = Implementation.MOCK

    @property
    def identity(self) -> str:
        """LocalParser with the versions of the libraries that extract the text (all dependencies)."""
        from importlib.metadata import version

        libs = ("pypdf", "python-docx", "beautifulsoup4", "charset-normalizer")
        return "LocalParser 1 " + " ".join(f"{lib}={version(lib)}" for lib in libs)

    async def parse(self, request: ParseRequest) -> ParseResult:
        kind = request.media_type.split(";", 1)[0].strip().lower()
        if kind in (MARKDOWN, PLAIN) and len(request.data) <= INLINE_TEXT_BYTES:
            document = parse_document(request.data, request.filename, request.media_type)
            # back to the event loop after each one: without an await, a window's parses ran back to
            # back, so a SIGTERM (whose handler runs on the loop) took effect only once all were done,
            # and the previous window's embedding requests waited meanwhile
            await asyncio.sleep(0)
        else:
            document = await asyncio.to_thread(parse_document, request.data, request.filename, request.media_type)
        pages = len(document.pages)
        return ParseResult(document=document, pages_billed=pages, usage={"pages": pages})


if TYPE_CHECKING:
    _satisfies_protocol: Parser = LocalParser()

