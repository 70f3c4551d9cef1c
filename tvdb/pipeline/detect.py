"""Upload-stage type detection: what a document is, decided from its bytes.

The extension only breaks ties the bytes cannot (text as Markdown vs plain text, an HTML
fragment, a damaged DOCX). Only the first `SNIFF_BYTES` are read, except for a ZIP, whose
directory sits at its end. Binary signatures: the WHATWG MIME Sniffing Standard
(https://mimesniff.spec.whatwg.org/#matching-an-image-type-pattern) and the formats' own specs.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePath

from tvdb.errors import DocumentError, ErrorCode
from tvdb.services.local.formats import DOCX, HTML, MARKDOWN, PDF, PLAIN, SUPPORTED_DESCRIPTION
from tvdb.services.local.formats.pdf import HEADER_WINDOW, PDF_HEADER
from tvdb.services.local.formats.text import sniff_text
from tvdb.services.local.formats.ziplimits import read_member

SNIFF_BYTES = 8 * 1024
_PDF_WINDOW = 1024  # Acrobat accepts the header anywhere in the first KB
_MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdown", ".mkd", ".mkdn"}
_HTML_EXTENSIONS = {".html", ".htm", ".xhtml", ".xht"}

# (offset, signature, what it is) for formats we refuse; checked before the text sniff.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"\x00\x00\x01\x00", "an ICO image"),
    (0, b"\x7fELF", "an ELF executable"),
    (0, b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (0, b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (0, b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (0, b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (0, b"\xca\xfe\xba\xbe", "a Java class or Mach-O universal binary"),
    (0, b"\x00asm", "a WebAssembly module"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an OLE2 compound file (legacy .doc/.xls/.ppt or .msg)"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"\x28\xb5\x2f\xfd", "a Zstandard archive"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (0, b"OggS\x00", "an Ogg media file"),
    (0, b"fLaC", "a FLAC audio file"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM media file"),
    (0, b"wOFF", "a WOFF font"),
    (0, b"wOF2", "a WOFF2 font"),
    (0, b"{\\rtf", "an RTF document"),
    (0, b"%!PS", "a PostScript document"),
)
# Signatures short or printable enough to start a text file: they only name non-text data.
_WEAK_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows executable"),
    (b"ID3", "an MP3 audio file"),
    (b"BZh", "a bzip2 archive"),
)
_RIFF = {b"WEBP": "a WebP image", b"WAVE": "a WAV audio file", b"AVI ": "an AVI video"}
_ISO_BMFF_IMAGES = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif"}

# WHATWG "identifying a resource with an unknown MIME type": tags that start an HTML document.
_HTML_START = re.compile(
    r"<(?:!doctype\s+html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|!--)"
    r"(?=[\s>])",
    re.IGNORECASE,
)
_STRONG_HTML = re.compile(r"<(?:!doctype\s+html|html)(?=[\s>])", re.IGNORECASE)
# What may precede the doctype or root element of XHTML / inline XBRL: prolog, PIs, comments.
_XML_PREAMBLE = re.compile(r"(?:\s+|<\?[^>]*\?>|<!--.*?-->)*", re.DOTALL)
_WORD_MAIN_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"


def _unsupported(filename: str, what: str) -> DocumentError:
    return DocumentError(
        ErrorCode.UNSUPPORTED_TYPE,
        f"unsupported document type: found {what}; tvdb parses {SUPPORTED_DESCRIPTION}",
        path=filename,
    )


def _binary_kind(head: bytes) -> str | None:
    for offset, signature, what in _SIGNATURES:
        if head.startswith(signature, offset):
            return what
    if head.startswith(b"RIFF") and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "a HEIF/AVIF image" if brand in _ISO_BMFF_IMAGES else "an MP4/QuickTime media file"
    if head.startswith(b"BM") and head[14:18] in (b"\x0c\x00\x00\x00", b"(\x00\x00\x00", b"|\x00\x00\x00"):
        return "a BMP image"
    return None


def _describe_binary(head: bytes) -> str:
    for signature, what in _WEAK_SIGNATURES:
        if head.startswith(signature):
            return what
    return f"binary data (starting {head[:8].hex(' ')})"


def _read_small(archive: zipfile.ZipFile, name: str, limit: int = 1 << 20) -> str:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return ""
    # Bounded: a zip bomb posing as a manifest is not inflated (ZipFile.read would, up to 2 GiB).
    data = read_member(archive, info, limit)
    return "" if data is None else data.decode("utf-8", errors="replace")


def _zip_type(data: bytes, filename: str, extension: str) -> str:
    """DOCX for a Word package, else UNSUPPORTED naming what kind of ZIP it is."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            content_types = _read_small(archive, "[Content_Types].xml")
            mimetype = _read_small(archive, "mimetype", limit=256).strip()
    except Exception as exc:  # noqa: BLE001 — zipfile raises many types on damaged archives
        # Damaged archives make zipfile raise far more than BadZipFile: zlib.error (bad deflate
        # data), EOFError, NotImplementedError (unknown compression), RuntimeError (encrypted
        # member), OSError, ValueError, struct.error... Detection must only ever fail a job.
        if extension == ".docx":
            return DOCX  # a damaged Word file: the parser reports it as corrupt
        detail = str(exc).strip()
        raise _unsupported(
            filename, f"a damaged ZIP archive ({type(exc).__name__}{': ' + detail if detail else ''})"
        ) from None
    declared_other = "macroEnabled" in content_types or "template.main" in content_types
    if _WORD_MAIN_CONTENT_TYPE in content_types or ("word/document.xml" in names and not declared_other):
        return DOCX
    if "ms-word.document.macroEnabled" in content_types:
        what = "a macro-enabled Word document (.docm)"
    elif "word/document.xml" in names:
        what = "a Word template (.dotx)"
    elif "xl/workbook.xml" in names:
        what = "an Excel workbook (.xlsx)"
    elif "ppt/presentation.xml" in names:
        what = "a PowerPoint presentation (.pptx)"
    elif mimetype:
        what = f"a ZIP-based {mimetype!r} file"
    elif "META-INF/MANIFEST.MF" in names:
        what = "a Java archive (.jar)"
    else:
        what = f"a ZIP archive ({len(names)} entries)"
    raise _unsupported(filename, what)


def _skip_preamble(text: str) -> str:
    found = _XML_PREAMBLE.match(text)
    return text[found.end() :] if found else text


def _text_type(text: str, filename: str, extension: str) -> str:
    start = text.lstrip("\ufeff \t\r\n\f")
    after_preamble = _skip_preamble(start)
    if _STRONG_HTML.match(after_preamble):
        return HTML
    if start.startswith("<?xml") and re.match(r"(?:<!doctype[^>]*>\s*)?<svg[\s>]", after_preamble, re.I):
        raise _unsupported(filename, "an SVG image")
    if extension in _MARKDOWN_EXTENSIONS:
        return MARKDOWN
    if extension in _HTML_EXTENSIONS or (extension != ".txt" and _HTML_START.match(start)):
        return HTML
    return PLAIN


def detect_media_type(data: bytes, filename: str) -> str:
    """The media type of a document, decided from its bytes; `filename` only breaks ties.

    Returns one of: ``application/pdf``; the DOCX type (a ZIP holding a WordprocessingML main
    document); ``text/html`` (a doctype or ``<html>``, also behind an XML prolog as in XHTML
    and inline XBRL; or an HTML-looking text named .html); ``text/markdown`` (text named
    .md/.markdown); ``text/plain`` (any other decodable text, an empty file included).

    A ``%PDF-`` header anywhere in the first KB (64 KB for a .pdf name) means PDF even when
    the rest is damaged: the parser then reports it as corrupt, which says more than
    "unsupported". Raises DocumentError(UNSUPPORTED_TYPE) naming what was found for anything
    else: images, executables, archives, other Office files, undecodable binary data.
    """
    extension = PurePath(filename).suffix.lower()
    head = data[:SNIFF_BYTES]
    window = HEADER_WINDOW if extension == ".pdf" else _PDF_WINDOW
    pdf_at = data.find(PDF_HEADER, 0, window)
    # Junk before the header is tolerated for a .pdf name or binary junk; a text file that
    # merely mentions "%PDF-" stays text.
    if pdf_at == 0 or (pdf_at > 0 and (extension == ".pdf" or sniff_text(data[:pdf_at]) is None)):
        return PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _zip_type(data, filename, extension)
    kind = _binary_kind(head)
    if kind is not None:
        raise _unsupported(filename, kind)
    text = sniff_text(head)
    if text is None:
        raise _unsupported(filename, _describe_binary(head))
    return _text_type(text, filename, extension)
