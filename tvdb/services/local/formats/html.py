"""HTML (and XHTML / inline XBRL) to visible text with BeautifulSoup over lxml.

Only what a browser shows: no ``<head>``, scripts, styles, comments, processing instructions,
nor elements hidden with the ``hidden`` attribute or an inline ``display:none`` (inline XBRL
keeps its ``ix:header`` facts in such a block; it is dropped by name too). Block elements
become line breaks (a table row stays on one line, its cells separated by ``" | "``), the
line breaks of ``<pre>`` are kept (its indentation is not), runs of spaces collapse, entities
are decoded and non-breaking spaces become plain spaces. One page per document.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from tvdb.domain import ParsedDocument
from tvdb.services.local.formats import HTML
from tvdb.services.local.formats.pagetext import make_document
from tvdb.services.local.formats.text import decode_text

if TYPE_CHECKING:
    from bs4.element import Tag

_INVISIBLE = {
    "head", "script", "style", "noscript", "template", "iframe", "object", "embed", "canvas",
    "svg", "math", "select", "datalist", "ix:header", "ix:hidden", "xml",
}  # fmt: skip
# Elements that end a paragraph (blank line) or a line.
_PARAGRAPH = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "blockquote", "pre",
    "hr", "section", "article", "header", "footer", "nav", "aside", "main", "figure", "form",
    "fieldset", "address", "details",
}  # fmt: skip
_LINE = {
    "div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "legend", "center", "body",
    "option", "tbody", "thead", "tfoot", "hgroup", "dialog", "menu", "dir",
}  # fmt: skip
_CELL = {"td", "th"}
_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_XML_PROLOG = re.compile(r"\A\s*<\?xml[^>]*\?>")
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
# Internal markers, resolved by `_tidy` once all text is known: control characters that cannot
# survive in the extracted text (`_HTML_SPACE` does not touch them).
_CELL_MARK = "\x1f"  # a table-cell boundary
_BREAK_MARK = "\x1e"  # a <br> or a newline inside <pre>
_LINE_MARK = "\x1d"  # the edge of a line-level block (div, li, tr...)
_PARA_MARK = "\x1c"  # the edge of a paragraph-level block (p, h1, table...)
# A run of block edges (and the spaces and line breaks around them) is one separator.
_BLOCK_EDGES = re.compile("[ \x1e\x1d\x1c]*[\x1d\x1c][ \x1e\x1d\x1c]*")


def _hidden(tag: Tag) -> bool:
    if tag.name in _INVISIBLE or tag.has_attr("hidden"):
        return True
    style = tag.get("style")
    return isinstance(style, str) and bool(_DISPLAY_NONE.search(style))


class _Close(NamedTuple):
    """Stack marker for the end of an element: text to emit and the context it leaves."""

    text: str
    leaves_pre: bool = False
    leaves_cell: bool = False


def _visible_text(root: Tag) -> str:
    from bs4.element import NavigableString, PreformattedString, Tag

    parts: list[str] = []
    # An explicit stack instead of recursion: deeply nested markup must not hit the recursion limit.
    stack: list[object] = [root]
    in_pre = in_cell = 0
    while stack:
        item = stack.pop()
        if isinstance(item, _Close):
            parts.append(item.text)
            in_pre -= item.leaves_pre
            in_cell -= item.leaves_cell
        elif isinstance(item, PreformattedString):
            continue  # comments, CDATA, doctype, <?xml?> prolog
        elif isinstance(item, NavigableString):
            if in_pre and not in_cell:
                parts.append(str(item).replace("\n", _BREAK_MARK))
            else:
                parts.append(_HTML_SPACE.sub(" ", str(item)))
        elif isinstance(item, Tag) and not _hidden(item):
            name = item.name
            # Inside a table cell, blocks only separate words: a row stays on one line.
            if name == "br":
                parts.append(" " if in_cell else _BREAK_MARK)
                continue
            if name in _CELL:
                separator = _CELL_MARK
            elif name in _PARAGRAPH:
                separator = " " if in_cell else _PARA_MARK
            elif name in _LINE:
                separator = " " if in_cell else _LINE_MARK
            else:
                separator = ""
            parts.append(separator)
            is_pre, is_cell = name == "pre", name in _CELL
            in_pre += is_pre
            in_cell += is_cell
            stack.append(_Close(separator, is_pre, is_cell))
            stack.extend(reversed(item.contents))
    return _tidy("".join(parts))


def _block_edge(found: re.Match[str]) -> str:
    return "\n\n" if _PARA_MARK in found.group() else "\n"


def _tidy(raw: str) -> str:
    lines: list[str] = []
    text = _BLOCK_EDGES.sub(_block_edge, raw.replace("\xa0", " "))
    for line in text.replace(_BREAK_MARK, "\n").split("\n"):
        cells = [re.sub(r" {2,}", " ", c).strip() for c in line.split(_CELL_MARK)]
        lines.append(" | ".join(c for c in cells if c))
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def parse_html(data: bytes, *, path: str) -> ParsedDocument:
    """The visible text of an HTML document as one page.

    The encoding comes from a BOM, the ``<meta charset>`` / XML prolog, or detection
    (BeautifulSoup's UnicodeDammit). Raises DocumentError(NO_TEXT) when nothing is visible.
    """
    from bs4 import BeautifulSoup
    from bs4.dammit import UnicodeDammit

    markup = UnicodeDammit(data, is_html=True).unicode_markup
    if markup is None:  # UnicodeDammit found no encoding at all: use the text decoder's guess
        markup = decode_text(data)[0]
    # The XML prolog of XHTML / inline XBRL holds no text, and handing it to an HTML parser
    # makes BeautifulSoup warn (XMLParsedAsHTMLWarning) on every such document.
    soup = BeautifulSoup(_XML_PROLOG.sub("", markup, count=1), "lxml")
    return make_document([_visible_text(soup)], HTML, path=path)
