"""DOCX text with python-docx: paragraphs and tables in document order.

python-docx opens the package (and resolves the main document part); the body is then walked
directly because ``Document.paragraphs`` skips tables and ``_Row.cells`` repeats merged cells.
Explicit page breaks (``<w:br w:type="page"/>``, ``pageBreakBefore``) in body paragraphs
start a new page; otherwise the document is one page. Headers, footers, footnotes and
comments are not extracted. WordprocessingML: ECMA-376 Part 1, §17.3 (paragraphs), §17.4 (tables).
Zip bombs are refused before python-docx opens the package (see `ziplimits`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

from tvdb.domain import ParsedDocument
from tvdb.errors import DocumentError, ErrorCode
from tvdb.services.local.formats import DOCX
from tvdb.services.local.formats.pagetext import make_document
from tvdb.services.local.formats.ziplimits import check_expansion

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_PAGE_BREAK = "\f"  # internal page separator; clean_page_text never sees it
_CELL_SEPARATOR = " | "

# Wrappers whose children belong to the surrounding block or row.
_WRAPPERS = {f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag"}
# Run content that is not text: properties, deleted text, field codes, drawings' fallbacks.
_SKIP = {f"{_W}pPr", f"{_W}rPr", f"{_W}del", f"{_W}instrText", f"{_W}delInstrText", _MC_FALLBACK}
_INLINE = {
    f"{_W}t": None,
    f"{_W}tab": "\t",
    f"{_W}ptab": "\t",
    f"{_W}cr": "\n",
    f"{_W}noBreakHyphen": "-",
}


def _children(element: Any, tag: str) -> Iterator[Any]:
    """Children of `element` named `tag`, looking through content-control wrappers."""
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag in _WRAPPERS:
            yield from _children(child, tag)


def _paragraph(p: Any, *, in_body: bool) -> str:
    """A paragraph's text; in the body, page breaks come out as `_PAGE_BREAK`."""
    parts: list[str] = []
    before = p.find(f"{_W}pPr/{_W}pageBreakBefore") if in_body else None
    if before is not None and before.get(f"{_W}val", "true") not in ("0", "false", "off"):
        parts.append(_PAGE_BREAK)
    _inline(p, parts, in_body=in_body)
    return "".join(parts)


def _inline(element: Any, parts: list[str], *, in_body: bool) -> None:
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIP:
            continue  # comments and processing instructions have non-str tags
        if tag in _INLINE:
            replacement = _INLINE[tag]
            parts.append((child.text or "") if replacement is None else replacement)
        elif tag == f"{_W}br":
            kind = child.get(f"{_W}type")
            parts.append(_PAGE_BREAK if kind == "page" and in_body else "\n")
        elif tag == f"{_W}p":  # a paragraph inside a text box
            parts.append("\n")
            _inline(child, parts, in_body=False)
        else:  # runs, hyperlinks, insertions, fields, text boxes...
            _inline(child, parts, in_body=in_body)


def _table(tbl: Any) -> str:
    rows: list[str] = []
    for tr in _children(tbl, f"{_W}tr"):
        # Each <w:tc> once: a horizontally merged cell is one element, and the continuation
        # cells of a vertical merge are empty, so merged text is never repeated.
        cells = [_blocks(tc, in_body=False).strip() for tc in _children(tr, f"{_W}tc")]
        line = _CELL_SEPARATOR.join(c for c in cells if c)
        if line:
            rows.append(line)
    return "\n".join(rows)


def _blocks(container: Any, *, in_body: bool) -> str:
    """The text of a body or a table cell: paragraphs and tables in document order."""
    blocks: list[str] = []
    for child in container:
        if child.tag == f"{_W}p":
            blocks.append(_paragraph(child, in_body=in_body))
        elif child.tag == f"{_W}tbl":
            blocks.append(_table(child))
        elif child.tag in _WRAPPERS:
            blocks.append(_blocks(child, in_body=in_body))
    return "\n".join(blocks)


def parse_docx(data: bytes, *, path: str) -> ParsedDocument:
    """The text of a DOCX: one page, or one per explicit page break.

    Raises DocumentError: TOO_LARGE (the package declares or really expands to more than
    `MAX_UNCOMPRESSED_BYTES`: a zip bomb), CORRUPT (not a readable Word package), NO_TEXT (no text).
    """
    import docx

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_expansion(archive, path=path)  # before python-docx inflates anything
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
    except DocumentError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, KeyError (missing part), XMLSyntaxError...
        detail = str(exc).strip()
        raise DocumentError(
            ErrorCode.CORRUPT,
            f"unreadable DOCX ({type(exc).__name__}{': ' + detail if detail else ''})",
            path=path,
        ) from None
    text = _blocks(body, in_body=True)
    return make_document(text.split(_PAGE_BREAK), DOCX, path=path)
