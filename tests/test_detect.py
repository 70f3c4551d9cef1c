"""Upload-stage type detection decides from the bytes; the extension only breaks ties."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tvdb.errors import DocumentError, ErrorCode
from tvdb.pipeline.detect import SNIFF_BYTES, detect_media_type
from tvdb.services.local.formats import DOCX, HTML, MARKDOWN, PDF, PLAIN

CORPUS_TYPES = {
    "agstat.pdf": PDF,
    "c02-22.pdf": PDF,
    "docx-tables.docx": DOCX,
    "example-10k-1p.html": HTML,
    "fake-text-all-whitespace.txt": PLAIN,
    "handbook-1p.docx": DOCX,
    "invalid.pdf": PDF,  # a PDF header over a broken body is a PDF; parsing says `corrupt`
    "korean-text-with-tables.pdf": PDF,
    "libreoffice-writer-password.pdf": PDF,
    "minimal-document.pdf": PDF,
    "multilang.pdf": PDF,
    "pdflatex-4-pages.pdf": PDF,
    "r6-empty-password.pdf": PDF,
    "selenium-pypdf-issue-177.pdf": PDF,
    "umlauts-non-utf8.md": MARKDOWN,
}


def _unsupported(data: bytes, filename: str) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        detect_media_type(data, filename)
    assert info.value.code is ErrorCode.UNSUPPORTED_TYPE
    assert info.value.path == filename
    assert filename in str(info.value)
    return info.value


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("hello")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- the corpus ---------------------------------------------------------------------------


def test_every_corpus_file_has_an_expected_type(documents_dir: Path) -> None:
    assert sorted(p.name for p in documents_dir.iterdir()) == sorted(CORPUS_TYPES)


@pytest.mark.parametrize("name", sorted(CORPUS_TYPES))
def test_corpus_file_type(documents_dir: Path, name: str) -> None:
    assert detect_media_type((documents_dir / name).read_bytes(), name) == CORPUS_TYPES[name]


@pytest.mark.parametrize("name", sorted(CORPUS_TYPES))
def test_corpus_type_comes_from_the_bytes_not_the_name(documents_dir: Path, name: str) -> None:
    """Renamed to a meaningless extension, binary formats keep their type."""
    expected = CORPUS_TYPES[name]
    detected = detect_media_type((documents_dir / name).read_bytes(), "upload.bin")
    assert detected == (PLAIN if expected == MARKDOWN else expected)


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_header_after_junk_is_pdf_for_a_pdf_name(documents_dir: Path) -> None:
    data = (
        b"Content-Type: application/pdf\r\n\r\n" * 40 + (documents_dir / "minimal-document.pdf").read_bytes()
    )
    assert detect_media_type(data, "mail-attachment.pdf") == PDF


def test_pdf_header_after_binary_junk_is_pdf_whatever_the_name() -> None:
    assert detect_media_type(b"\x00\x01\x02\x03" * 10 + b"%PDF-1.4\n%\xe2\xe3\n", "blob") == PDF


def test_text_that_mentions_the_pdf_header_stays_text() -> None:
    data = b"# Notes\n\nA PDF file starts with %PDF-1.7 followed by a binary comment.\n"
    assert detect_media_type(data, "notes.txt") == PLAIN
    assert detect_media_type(data, "notes.md") == MARKDOWN


def test_pdf_bytes_with_another_extension_are_pdf() -> None:
    assert detect_media_type(b"%PDF-1.7\n1 0 obj\n", "report.txt") == PDF


def test_a_pdf_name_over_binary_non_pdf_bytes_is_unsupported() -> None:
    error = _unsupported(bytes(range(256)) * 8, "report.pdf")
    assert "binary data" in str(error)


def test_a_pdf_name_over_an_image_names_the_image() -> None:
    error = _unsupported(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "scan.pdf")
    assert "PNG image" in str(error)
    assert "PDF, DOCX, HTML, Markdown or plain text" in str(error)


def test_a_pdf_name_over_text_is_text() -> None:
    assert detect_media_type(b"just some text\n", "fake.pdf") == PLAIN


# --- binary formats we refuse ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG image"),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "GIF image"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF image"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP image"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIF/AVIF image"),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00(\x00\x00\x00", "BMP image"),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8, "ELF executable"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00", "Windows executable"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16, "legacy .doc"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip archive"),
        (b"SQLite format 3\x00" + b"\x00" * 16, "SQLite database"),
        (b"{\\rtf1\\ansi Hello}", "RTF document"),
    ],
)
def test_binary_formats_are_named(data: bytes, what: str) -> None:
    assert what in str(_unsupported(data, "upload.docx"))


def test_random_binary_is_unsupported() -> None:
    data = bytes((i * 73 + 11) % 256 for i in range(4096))
    assert "binary data (starting" in str(_unsupported(data, "data.txt"))


def test_text_starting_like_a_weak_signature_is_text() -> None:
    assert detect_media_type(b"MZ Holdings annual report\n", "report.txt") == PLAIN
    assert detect_media_type(b"BMW sales figures\n", "sales") == PLAIN


# --- ZIP-based ------------------------------------------------------------------------------


def test_docx_is_detected_from_its_package_whatever_the_name() -> None:
    data = _docx_bytes()
    assert detect_media_type(data, "letter.docx") == DOCX
    assert detect_media_type(data, "letter.zip") == DOCX
    assert detect_media_type(data, "letter") == DOCX


def test_zip_holding_word_document_xml_is_docx() -> None:
    assert detect_media_type(_zip({"word/document.xml": b"<w:document/>"}), "x.bin") == DOCX


@pytest.mark.parametrize(
    ("entries", "what"),
    [
        ({"xl/workbook.xml": b"<workbook/>"}, "Excel workbook"),
        ({"ppt/presentation.xml": b"<presentation/>"}, "PowerPoint presentation"),
        ({"mimetype": b"application/epub+zip", "OEBPS/a.xhtml": b""}, "application/epub+zip"),
        ({"notes.txt": b"hi", "img.png": b"x"}, "ZIP archive (2 entries)"),
        (
            {
                "[Content_Types].xml": b'<Override ContentType="application/'
                b'vnd.ms-word.document.macroEnabled.main+xml"/>',
                "word/document.xml": b"<w:document/>",
            },
            "macro-enabled Word document",
        ),
    ],
)
def test_other_zips_are_unsupported_and_named(entries: dict[str, bytes], what: str) -> None:
    assert what in str(_unsupported(_zip(entries), "upload.docx"))


def test_damaged_docx_is_docx_so_that_parsing_reports_it_corrupt() -> None:
    damaged = _docx_bytes()[:300]
    assert detect_media_type(damaged, "report.docx") == DOCX
    assert "damaged ZIP archive" in str(_unsupported(damaged, "archive.zip"))


# --- text, HTML, Markdown -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html>\n<html><body>hi</body></html>",
        b"  \n<HTML lang='en'><p>hi</p></HTML>",
        b"\xef\xbb\xbf<!doctype html><title>x</title>",
        b'<?xml version="1.0" encoding="utf-8"?>\n<!-- generator -->\n<!-- more -->\n<html xmlns="http://www.w3.org/1999/xhtml">',
        b'<?xml version="1.0"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x.dtd">\n<html>',
        "<!DOCTYPE html><p>Grüße</p>".encode("utf-16"),
    ],
)
def test_html_is_sniffed_from_the_content(data: bytes) -> None:
    assert detect_media_type(data, "page.txt") == HTML
    assert detect_media_type(data, "page") == HTML


def test_html_fragment_counts_as_html_unless_the_name_says_text() -> None:
    fragment = b"<p>Hello <b>world</b></p>\n"
    assert detect_media_type(fragment, "snippet") == HTML
    assert detect_media_type(fragment, "snippet.htm") == HTML
    assert detect_media_type(fragment, "snippet.txt") == PLAIN
    assert detect_media_type(fragment, "README.md") == MARKDOWN  # Markdown may start with raw HTML


def test_html_name_over_plain_text_is_html() -> None:
    assert detect_media_type(b"No markup at all.\n", "index.html") == HTML


def test_svg_is_an_unsupported_image() -> None:
    data = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><text>hi</text></svg>'
    assert "SVG image" in str(_unsupported(data, "logo.xml"))


def test_other_xml_is_plain_text() -> None:
    assert detect_media_type(b'<?xml version="1.0"?>\n<catalog><item>a</item></catalog>', "c.xml") == PLAIN


@pytest.mark.parametrize("name", ["notes.md", "NOTES.MD", "notes.markdown"])
def test_markdown_needs_text_and_a_markdown_name(name: str) -> None:
    assert detect_media_type(b"# Title\n\n* item\n", name) == MARKDOWN
    assert detect_media_type("## können\n".encode("latin-1"), name) == MARKDOWN


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n\n\n",
        "naïve café, “quoted”".encode("cp1252"),
        "Grüße aus Köln".encode("utf-16-le"),  # no BOM: NULs on one byte parity only
        "Grüße aus Köln".encode("utf-32"),
        "日本語のテキスト".encode("shift_jis"),
        b"\x1b[31mred\x1b[0m log line\n",
    ],
)
def test_decodable_text_is_plain_text(data: bytes) -> None:
    assert detect_media_type(data, "file.txt") == PLAIN


def test_only_the_head_is_sniffed() -> None:
    """Detection is cheap: bytes far past the sniffed head are not inspected."""
    data = b"plain text line\n" * (SNIFF_BYTES // 16 + 1) + b"\x00\xff\x00\xfe" * 1000
    assert detect_media_type(data, "big.txt") == PLAIN


def test_a_multibyte_character_cut_by_the_sniff_window_is_still_text() -> None:
    data = b"a" * (SNIFF_BYTES - 1) + "ü".encode() + b" tail"
    assert detect_media_type(data, "cut.txt") == PLAIN
