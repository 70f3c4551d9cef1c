"""DOCX text with python-docx: paragraphs and tables in document order.

python-docx opens the package (and resolves the main document part); the body is then walked
directly because ``Document.paragraphs`` skips tables and ``_Row.cells`` repeats merged cells.
Explicit page breaks (``<w:br w:type="page"/>``, ``pageBreakBefore``) in body paragraphs
start a new page; otherwise the document is one page. Headers, footers, footnotes and
comments are not extracted. WordprocessingML: ECMA-376 Part 1, §17.3 (paragraphs), §17.4 (tables).
"""

from __future__ import annotations

import copy
import io
import zipfile
from collections.abc import Iterator
from typing import Any

from tvdb.domain import ParsedDocument
from tvdb.errors import DocumentError, ErrorCode
from tvdb.services.local.formats import DOCX
from tvdb.services.local.formats.pagetext import make_document

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_PAGE_BREAK = "\f"  # internal page separator; clean_page_text never sees it

MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
"""The most a DOCX package may expand to (all members together); more is a zip bomb (TOO_LARGE)."""
_READ_CHUNK = 1024 * 1024
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


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.1f}".removesuffix(".0") + " MiB"


def _too_large(path: str, what: str) -> DocumentError:
    return DocumentError(
        ErrorCode.TOO_LARGE,
        f"{what}; a DOCX may expand to at most {_mib(MAX_UNCOMPRESSED_BYTES)} in all (a zip bomb?)",
        path=path,
    )


def _expanded_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> int:
    """How many bytes `info` really decompresses to, reading at most `budget` + 1 of them.

    zipfile stops at the size the header declares; a copy of the entry declaring `budget` + 1
    bytes instead lets a member that lies about its size be measured without trusting it.
    """
    probe = copy.copy(info)
    probe.file_size = budget + 1
    total = 0
    with archive.open(probe) as stream:
        while total <= budget and (chunk := stream.read(_READ_CHUNK)):
            total += len(chunk)
    return total


def _check_expansion(data: bytes, path: str) -> None:
    """Raise DocumentError(TOO_LARGE) before python-docx inflates a zip bomb.

    First the sizes the members declare (cheap, no decompression), then the XML parts (the main
    document, styles, ...; what gets parsed into trees) are inflated as a stream within what is
    left of the cap, in case their headers understate them. Damage is left to python-docx.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > MAX_UNCOMPRESSED_BYTES:
                biggest = max(infos, key=lambda i: i.file_size)
                raise _too_large(
                    path,
                    f"the package expands to {_mib(declared)} ({biggest.filename} alone to "
                    f"{_mib(biggest.file_size)}, declared in its ZIP directory)",
                )
            budget = MAX_UNCOMPRESSED_BYTES - sum(i.file_size for i in infos if not _is_xml(i))
            for info in infos:
                if _is_xml(info):
                    size = _expanded_size(archive, info, budget)
                    if size > budget:
                        raise _too_large(
                            path,
                            f"{info.filename} declares {info.file_size:,} bytes but expands to more "
                            f"than {_mib(budget)}",
                        )
                    budget -= size
    except DocumentError:
        raise
    except Exception:  # noqa: BLE001 — a damaged package is python-docx's to report as corrupt
        pass


def _is_xml(info: zipfile.ZipInfo) -> bool:
    return info.filename.lower().endswith((".xml", ".rels"))


def parse_docx(data: bytes, *, path: str) -> ParsedDocument:
    """The text of a DOCX: one page, or one per explicit page break.

    Raises DocumentError: TOO_LARGE (the package expands beyond MAX_UNCOMPRESSED_BYTES, a zip
    bomb), CORRUPT (not a readable Word package), NO_TEXT (no text at all).
    """
    import docx

    _check_expansion(data, path)
    try:
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
    except Exception as exc:  # BadZipFile, KeyError (missing part), XMLSyntaxError, ValueError...
        detail = str(exc).strip()
        raise DocumentError(
            ErrorCode.CORRUPT,
            f"unreadable DOCX ({type(exc).__name__}{': ' + detail if detail else ''})",
            path=path,
        ) from None
    text = _blocks(body, in_body=True)
    return make_document(text.split(_PAGE_BREAK), DOCX, path=path)
