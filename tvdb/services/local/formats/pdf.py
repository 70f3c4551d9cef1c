"""PDF text extraction with pypdf, page by page, with pypdf's warnings captured per call.

Failure mapping (DocumentError codes): a PDF that needs a password → ``encrypted``; one pypdf
cannot read (no xref, truncated, garbage) → ``corrupt``; one without a text layer (a scan)
→ ``no_text``. pypdf docs: https://pypdf.readthedocs.io/en/stable/user/extract-text.html
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tvdb.domain import ParsedDocument
from tvdb.errors import DocumentError, ErrorCode
from tvdb.services.local.formats import PDF
from tvdb.services.local.formats.pagetext import make_document

if TYPE_CHECKING:
    from pypdf import PdfReader

PDF_HEADER = b"%PDF-"
HEADER_WINDOW = 64 * 1024
"""How far into a file a ``%PDF-`` header is looked for (junk before it is tolerated)."""

_MAX_WARNINGS = 20


class _ThreadCollector(logging.Handler):
    """Keeps the messages of log records emitted by one thread."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.DEBUG)
        self.thread_id = thread_id
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            self.messages.append(record.getMessage())


class _PypdfLogCapture:
    """Routes pypdf's log records (its robustness notes on damaged files) into the parse result
    instead of the application log, for the duration of a parse.

    pypdf logs through child loggers of ``pypdf``; while at least one capture is active the
    ``pypdf`` logger stops propagating, and each capture keeps its own thread's records, so
    parses running in parallel threads (``asyncio.to_thread``) do not mix their warnings.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved_propagate = True

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        logger = logging.getLogger("pypdf")
        handler = _ThreadCollector(threading.get_ident())
        with self._lock:
            if self._active == 0:
                self._saved_propagate = logger.propagate
                logger.propagate = False
            self._active += 1
            logger.addHandler(handler)
        try:
            yield handler.messages
        finally:
            with self._lock:
                logger.removeHandler(handler)
                self._active -= 1
                if self._active == 0:
                    logger.propagate = self._saved_propagate


_CAPTURE = _PypdfLogCapture()  # one per process: it guards the process-wide "pypdf" logger


def _open(data: bytes, path: str) -> PdfReader:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Permissions-only encryption opens with the empty user password (CASES C12).
            if not reader.decrypt(""):
                raise DocumentError(ErrorCode.ENCRYPTED, "password required", path=path)
        return reader
    except DocumentError:
        raise
    except FileNotDecryptedError:
        raise DocumentError(ErrorCode.ENCRYPTED, "password required", path=path) from None
    except DependencyError as exc:  # AES without the `cryptography` package installed
        raise DocumentError(
            ErrorCode.ENCRYPTED, f"encrypted PDF cannot be decrypted here: {exc}", path=path
        ) from None
    except Exception as exc:  # pypdf raises PdfReadError, but also KeyError, ValueError... on damaged files
        raise DocumentError(ErrorCode.CORRUPT, f"unreadable PDF ({_describe(exc)})", path=path) from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _extract_pages(reader: PdfReader, path: str, warnings: list[str]) -> list[str]:
    try:
        pages = list(reader.pages)
    except Exception as exc:
        detail = _describe(exc)
        raise DocumentError(ErrorCode.CORRUPT, f"unreadable page tree ({detail})", path=path) from None
    if not pages:
        raise DocumentError(ErrorCode.CORRUPT, "the PDF has no pages", path=path)
    texts: list[str] = []
    failed = 0
    for number, page in enumerate(pages, start=1):
        try:
            texts.append(page.extract_text())
        except Exception as exc:  # one broken content stream should not lose the other pages
            failed += 1
            warnings.append(f"page {number}: text extraction failed ({_describe(exc)})")
            texts.append("")
    if failed == len(pages):
        raise DocumentError(
            ErrorCode.CORRUPT, f"text extraction failed on every page ({warnings[-1]})", path=path
        )
    return texts


def parse_pdf(data: bytes, *, path: str) -> ParsedDocument:
    """The text of each page of a PDF, in page order.

    Raises DocumentError: ENCRYPTED (a password is needed), CORRUPT (unreadable), NO_TEXT
    (no page has a text layer). pypdf's recovery notes become the document's warnings.
    """
    warnings: list[str] = []
    start = data.find(PDF_HEADER, 0, HEADER_WINDOW)
    if start > 0:
        # Cross-reference offsets count from the header, so cutting the junk off fixes them.
        warnings.append(f"{start} byte(s) of junk before the %PDF header were skipped")
        data = data[start:]
    with _CAPTURE.capture() as logged:
        try:
            reader = _open(data, path)
            texts = _extract_pages(reader, path, warnings)
        finally:
            warnings.extend(_dedupe(logged))
    return make_document(texts, PDF, path=path, warnings=warnings)


def count_pdf_pages(data: bytes) -> int | None:
    """The page count of a PDF as pypdf reads its page tree (what LlamaParse bills per page), or
    None when pypdf cannot open it (damaged, or needs a password). pypdf's notes are discarded."""
    start = data.find(PDF_HEADER, 0, HEADER_WINDOW)
    with _CAPTURE.capture():
        try:
            return len(_open(data[max(start, 0):], "").pages)
        except Exception:  # noqa: BLE001 - any failure to read means "cannot count"
            return None


def _dedupe(messages: list[str]) -> list[str]:
    unique = list(dict.fromkeys(f"pypdf: {m}" for m in messages))
    if len(unique) > _MAX_WARNINGS:
        unique = [*unique[:_MAX_WARNINGS], f"pypdf: {len(unique) - _MAX_WARNINGS} more warning(s)"]
    return unique
