"""LocalParser: real per-page text for PDF, DOCX, HTML, TXT and MD, and one error code per failure."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import warnings
import zipfile
from pathlib import Path

import pytest

from tvdb.domain import Implementation, Page, ParseRequest
from tvdb.errors import DocumentError, ErrorCode
from tvdb.services.local.formats import DOCX, HTML, MARKDOWN, PDF, PLAIN
from tvdb.services.local.formats.pagetext import NO_CONTENT_MARKER, clean_page_text, has_text, make_document
from tvdb.services.local.formats.text import decode_text, sniff_text
from tvdb.services.local.parser import LocalParser, parse_document


def _fails(code: ErrorCode, data: bytes, media_type: str, filename: str = "doc") -> DocumentError:
    with pytest.raises(DocumentError) as info:
        parse_document(data, filename, media_type)
    assert info.value.code is code, str(info.value)
    assert info.value.path == filename
    return info.value


# --- LocalParser, the service ---------------------------------------------------------------


def test_local_parser_identifies_as_mock_llamaparse() -> None:
    parser = LocalParser()
    assert parser.service == "llamaparse"
    assert parser.implementation is Implementation.MOCK


async def test_parse_returns_pages_billing_and_usage(documents_dir: Path) -> None:
    data = (documents_dir / "pdflatex-4-pages.pdf").read_bytes()
    result = await LocalParser().parse(ParseRequest(data, "pdflatex-4-pages.pdf", PDF, "fast"))
    assert [p.number for p in result.document.pages] == [1, 2, 3, 4]
    assert result.pages_billed == 4
    assert dict(result.usage) == {"pages": 4}
    assert result.document.media_type == PDF
    assert result.request_id is None


async def test_parses_run_concurrently_off_the_event_loop(documents_dir: Path) -> None:
    names = ["minimal-document.pdf", "multilang.pdf", "docx-tables.docx", "example-10k-1p.html"]
    types = [PDF, PDF, DOCX, HTML]
    parser = LocalParser()
    results = await asyncio.gather(
        *(
            parser.parse(ParseRequest((documents_dir / n).read_bytes(), n, t, "fast"))
            for n, t in zip(names, types, strict=True)
        )
    )
    assert [r.pages_billed for r in results] == [1, 1, 1, 1]
    assert "Lorem ipsum" in results[0].document.text
    assert "Привет, мир" in results[1].document.text


async def test_small_text_is_parsed_on_the_calling_thread_and_the_rest_on_a_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A text or Markdown document up to INLINE_TEXT_BYTES skips the hop to a worker thread (the
    hop cost more than the parse under GIL contention); a larger one, or any other type, takes it."""
    from tvdb.services.local import parser as parser_module

    hops: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(func, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops.append(args[1])  # parse_document(data, filename, media_type)
        return await real_to_thread(func, *args, **kwargs)

    monkeypatch.setattr(parser_module.asyncio, "to_thread", counting_to_thread)
    small = b"# Title\n\n" + b"word " * 1000
    big = b"word " * (parser_module.INLINE_TEXT_BYTES // 5 + 1)
    parser = LocalParser()
    inline_md = await parser.parse(ParseRequest(small, "small.md", MARKDOWN, "fast"))
    inline_txt = await parser.parse(ParseRequest(small, "small.txt", f"{PLAIN}; charset=utf-8", "fast"))
    worker_txt = await parser.parse(ParseRequest(big, "big.txt", PLAIN, "fast"))
    worker_html = await parser.parse(ParseRequest(b"<html><body><p>hello there</p></body></html>",
                                                  "page.html", HTML, "fast"))
    assert hops == ["big.txt", "page.html"]
    assert inline_md.pages_billed == inline_txt.pages_billed == worker_txt.pages_billed == 1
    assert inline_md.document.text.startswith("# Title") and "word word" in inline_txt.document.text
    assert len(big) == parser_module.INLINE_TEXT_BYTES + 1 and "hello there" in worker_html.document.text
    with pytest.raises(DocumentError) as info:  # the inline path fails a document the same way
        await parser.parse(ParseRequest(b"\n \n", "blank.md", MARKDOWN, "fast"))
    assert info.value.code is ErrorCode.NO_TEXT and hops == ["big.txt", "page.html"]


async def test_a_stop_requested_on_the_loop_takes_effect_between_inline_parses() -> None:
    """SIGTERM's handler runs on the event loop (`loop.add_signal_handler`) and cancels the run from
    there. Parses done on the calling thread must still hand the loop back between documents, or
    a window's parses all finish before the stop is seen (a 1 s delay measured on the benchmark
    corpus). Here the cancel is queued behind the first step of 20 parses, as the signal
    handler's callback would be: none may complete after it."""
    parser = LocalParser()
    done: list[int] = []

    async def one(i: int) -> None:
        await parser.parse(ParseRequest(b"# Title\n\n" + b"word " * 200, f"d{i}.md", MARKDOWN, "fast"))
        done.append(i)

    window = asyncio.ensure_future(asyncio.gather(*(one(i) for i in range(20))))
    asyncio.get_running_loop().call_soon(window.cancel)
    with pytest.raises(asyncio.CancelledError):
        await window
    assert done == []


async def test_parse_errors_are_document_errors() -> None:
    with pytest.raises(DocumentError) as info:
        await LocalParser().parse(ParseRequest(b"\n \n", "blank.txt", PLAIN, "fast"))
    assert info.value.code is ErrorCode.NO_TEXT


@pytest.mark.parametrize("data", [b" \n\t\r\n  ", "\u3000\u00a0\n".encode(), b"\xef\xbb\xbf \n"],
                         ids=["ascii", "unicode-spaces", "bom"])
@pytest.mark.parametrize("media_type", [PLAIN, MARKDOWN])
def test_whitespace_only_text_says_so_rather_than_suggesting_a_scan(data: bytes, media_type: str) -> None:
    error = _fails(ErrorCode.NO_TEXT, data, media_type, "blank.txt")
    assert str(error) == "blank.txt: no text: the file holds only whitespace"


def test_unknown_media_type_is_unsupported() -> None:
    error = _fails(ErrorCode.UNSUPPORTED_TYPE, b"\x89PNG", "image/png", "scan.png")
    assert "image/png" in str(error)


def test_media_type_parameters_are_ignored() -> None:
    assert parse_document(b"hello", "a.txt", "text/plain; charset=utf-8").text == "hello"


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_pages_in_order(documents_dir: Path) -> None:
    document = parse_document((documents_dir / "pdflatex-4-pages.pdf").read_bytes(), "p.pdf", PDF)
    assert len(document.pages) == 4
    assert document.pages[0].text.startswith("Hello, here is some text without a meaning.")
    assert all(len(p.text) > 2000 for p in document.pages)


def test_aes256_pdf_with_empty_password_opens(documents_dir: Path) -> None:
    document = parse_document((documents_dir / "r6-empty-password.pdf").read_bytes(), "r6.pdf", PDF)
    assert document.text == "pdf encryption test\npassword: asdfzxcv"


def test_pdf_that_needs_a_password_is_encrypted(documents_dir: Path) -> None:
    data = (documents_dir / "libreoffice-writer-password.pdf").read_bytes()
    error = _fails(ErrorCode.ENCRYPTED, data, PDF, "libreoffice-writer-password.pdf")
    assert str(error) == "libreoffice-writer-password.pdf: password required"


def test_header_only_pdf_is_corrupt(documents_dir: Path) -> None:
    error = _fails(ErrorCode.CORRUPT, (documents_dir / "invalid.pdf").read_bytes(), PDF, "invalid.pdf")
    assert "startxref" in str(error)


@pytest.mark.parametrize("fraction", [0.5, 0.25, 0.9])
def test_truncated_pdf_is_corrupt(documents_dir: Path, fraction: float) -> None:
    data = (documents_dir / "pdflatex-4-pages.pdf").read_bytes()
    _fails(ErrorCode.CORRUPT, data[: int(len(data) * fraction)], PDF, "truncated.pdf")


@pytest.mark.parametrize("data", [b"", b"%PDF-1.4\n", b"%PDF-1.7\n" + bytes(range(256)) * 4, b"not a pdf"])
def test_garbage_pdf_is_corrupt(data: bytes) -> None:
    _fails(ErrorCode.CORRUPT, data, PDF, "garbage.pdf")


def test_junk_after_eof_still_extracts(documents_dir: Path) -> None:
    data = (documents_dir / "selenium-pypdf-issue-177.pdf").read_bytes()
    assert parse_document(data, "s.pdf", PDF).text.endswith("Hello World")


def test_junk_before_the_header_is_skipped(documents_dir: Path) -> None:
    data = b"garbage from a mail gateway\r\n" * 10 + (documents_dir / "minimal-document.pdf").read_bytes()
    document = parse_document(data, "m.pdf", PDF)
    assert document.text.startswith("Lorem ipsum")
    assert "290 byte(s) of junk before the %PDF header were skipped" in document.warnings


def test_scanned_pdf_has_no_text(documents_dir: Path) -> None:
    error = _fails(ErrorCode.NO_TEXT, (documents_dir / "c02-22.pdf").read_bytes(), PDF, "c02-22.pdf")
    assert "OCR" in str(error)


def test_pypdf_warnings_become_document_warnings_not_log_lines(
    documents_dir: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (documents_dir / "minimal-document.pdf").read_bytes()
    # A wrong startxref offset: pypdf recovers by scanning, and says so through `logging`.
    broken = re.sub(rb"startxref\s+\d+", b"startxref\n1", data)
    pypdf_logger = logging.getLogger("pypdf")
    with caplog.at_level(logging.DEBUG):
        document = parse_document(broken, "broken-xref.pdf", PDF)
    assert document.text.startswith("Lorem ipsum")
    assert "pypdf: incorrect startxref pointer(1)" in document.warnings
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert "startxref" not in capsys.readouterr().err
    assert pypdf_logger.propagate is True  # restored
    assert not [h for h in pypdf_logger.handlers if type(h).__name__ == "_ThreadCollector"]


def test_concurrent_parses_keep_their_own_pypdf_warnings(documents_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    clean = (documents_dir / "minimal-document.pdf").read_bytes()
    broken = re.sub(rb"startxref\s+\d+", b"startxref\n1", clean)
    jobs = [broken if i % 2 else clean for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        documents = list(pool.map(lambda data: parse_document(data, "x.pdf", PDF), jobs))
    for i, document in enumerate(documents):
        pypdf_notes = [w for w in document.warnings if w.startswith("pypdf:")]
        assert bool(pypdf_notes) == bool(i % 2), (i, document.warnings)
    assert logging.getLogger("pypdf").propagate is True


# --- DOCX -----------------------------------------------------------------------------------


def _save(document: object) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def test_docx_tables_text_is_extracted_in_order(documents_dir: Path) -> None:
    text = parse_document((documents_dir / "docx-tables.docx").read_bytes(), "t.docx", DOCX).text
    lines = text.splitlines()
    assert lines[:3] == [
        "Simple uniform table",
        "Header Col 1 | Header Col 2",
        "Lorem ipsum | A link example",
    ]
    assert "Nested Table" in lines and "Table with merged cells" in lines
    assert (
        lines.index("Simple uniform table")
        < lines.index("Nested Table")
        < lines.index("Table with merged cells")
    )
    # The nested table's cells (inside the middle cell of the outer table) are extracted too.
    assert "d | e | f\ng&t | h | i" in text
    # Merged cells: each cell's text once.
    merged = text.split("Table with merged cells", 1)[1]
    assert merged.split() == ["a", "|", "b", "c", "|", "d", "e"]


def test_docx_paragraphs_and_tables_interleave_and_merge_without_duplicates() -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Before the table.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "Wide"
    table.cell(0, 0).merge(table.cell(0, 1))
    table.cell(0, 2).text = "Tall"
    table.cell(0, 2).merge(table.cell(1, 2))
    table.cell(1, 0).text = "x"
    table.cell(1, 1).text = "y"
    table.cell(1, 1).add_table(rows=1, cols=2).cell(0, 1).text = "nested"
    document.add_paragraph("After the table.")
    text = parse_document(_save(document), "m.docx", DOCX).text
    assert text.count("Wide") == 1 and text.count("Tall") == 1
    assert text.index("Before the table.") < text.index("Wide") < text.index("nested") < text.index("After")


def test_docx_explicit_page_breaks_split_pages() -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("First page.")
    document.add_page_break()
    document.add_paragraph("Second page.")
    document.add_paragraph("Third page.").paragraph_format.page_break_before = True
    parsed = parse_document(_save(document), "p.docx", DOCX)
    assert parsed.pages == (Page(1, "First page."), Page(2, "Second page."), Page(3, "Third page."))


def _docx_with_body(body_xml: str) -> bytes:
    """A python-docx default document whose body content is replaced by `body_xml`."""
    import docx

    source = zipfile.ZipFile(io.BytesIO(_save(docx.Document())))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "word/document.xml":
                xml = content.decode()
                head = xml[: xml.index("<w:body>") + len("<w:body>")]
                ns = ' xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006"'
                if "xmlns:mc=" not in head:
                    head = head.replace("<w:document ", f"<w:document{ns} ", 1)
                content = (head + body_xml + "</w:body></w:document>").encode()
            target.writestr(item, content)
    return out.getvalue()


def test_docx_markup_wrappers_are_read_once() -> None:
    body = (
        "<w:p><w:r><w:t>Kept</w:t></w:r><w:ins><w:r><w:t xml:space='preserve'> inserted</w:t></w:r></w:ins>"
        "<w:del><w:r><w:delText> deleted</w:delText></w:r></w:del>"
        "<w:r><w:tab/><w:t>tabbed</w:t><w:br/><w:t>next line</w:t></w:r></w:p>"
        "<w:sdt><w:sdtContent><w:p><w:r><w:t>In a content control</w:t></w:r></w:p></w:sdtContent></w:sdt>"
        "<w:p><w:r><mc:AlternateContent><mc:Choice Requires='wps'><w:t>box text</w:t></mc:Choice>"
        "<mc:Fallback><w:t>box text</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>"
    )
    text = parse_document(_docx_with_body(body), "w.docx", DOCX).text
    assert text == "Kept inserted\ttabbed\nnext line\nIn a content control\nbox text"


def test_docx_without_text_has_no_text() -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("   ")
    document.add_table(rows=2, cols=2)
    _fails(ErrorCode.NO_TEXT, _save(document), DOCX, "empty.docx")


def test_damaged_docx_is_corrupt(documents_dir: Path) -> None:
    data = (documents_dir / "handbook-1p.docx").read_bytes()
    _fails(ErrorCode.CORRUPT, data[: len(data) // 2], DOCX, "half.docx")
    _fails(ErrorCode.CORRUPT, b"PK\x03\x04 nonsense", DOCX, "junk.docx")
    broken_xml = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(broken_xml, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            target.writestr(
                item, content[: len(content) // 2] if item.filename == "word/document.xml" else content
            )
    _fails(ErrorCode.CORRUPT, broken_xml.getvalue(), DOCX, "broken-xml.docx")


# --- HTML -----------------------------------------------------------------------------------


def test_html_visible_text_only() -> None:
    page = b"""<!DOCTYPE html><html><head><title>Tab title</title><style>p{color:red}</style>
    <script>var secret = 1;</script></head><body>
    <h1>Heading</h1><p>First&nbsp;paragraph with <b>bold</b> and
       a   line
       wrap.</p><!-- a comment -->
    <div style="DISPLAY: none">hidden by style</div><p hidden>hidden by attribute</p>
    <noscript>enable JS</noscript>
    <p>Caf&eacute; &amp; cr&#232;me<br>second line</p>
    <table><tr><th>Name</th><th>Value</th></tr><tr><td><p>alpha</p></td><td>1</td></tr></table>
    <ul><li>one</li><li>two</li></ul><pre>keep
  lines</pre></body></html>"""
    text = parse_document(page, "p.html", HTML).text
    assert text == (
        "Heading\n\nFirst paragraph with bold and a line wrap.\n\nCafé & crème\nsecond line\n\n"
        "Name | Value\nalpha | 1\n\none\ntwo\n\nkeep\nlines"
    )


def test_inline_xbrl_header_is_dropped_and_no_warning_is_raised() -> None:
    page = b"""<?xml version="1.0" encoding="utf-8"?>
<!-- Inline XBRL document -->
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL">
<body><div style="display:none"><ix:header><ix:hidden><ix:nonNumeric name="dei:AmendmentFlag"
contextRef="c1">false</ix:nonNumeric></ix:hidden><ix:resources><xbrli:context id="c1">
<xbrli:entity>0001</xbrli:entity></xbrli:context></ix:resources></ix:header></div>
<ix:header><ix:references>REF</ix:references></ix:header>
<p>Annual report <ix:nonNumeric name="dei:EntityRegistrantName" contextRef="c1">Acme Corp</ix:nonNumeric></p>
</body></html>"""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = parse_document(page, "10k.htm", HTML).text
    assert text == "Annual report Acme Corp"


def test_html_declared_legacy_charset_is_honoured() -> None:
    page = '<html><head><meta charset="windows-1252"></head><body><p>“Grüße”</p></body></html>'
    assert parse_document(page.encode("cp1252"), "p.html", HTML).text == "“Grüße”"


def test_html_without_visible_text_has_no_text() -> None:
    page = b"<html><head><title>Only a title</title><script>x()</script></head>"
    page += b"<body> <img src=a.png> </body></html>"
    _fails(ErrorCode.NO_TEXT, page, HTML, "empty.html")


def test_deeply_nested_html_does_not_overflow_the_stack() -> None:
    page = b"<html><body>" + b"<span>" * 5000 + b"deep" + b"</span>" * 5000 + b"</body></html>"
    assert parse_document(page, "deep.html", HTML).text == "deep"


# --- TXT and Markdown -----------------------------------------------------------------------


def test_latin1_markdown_decodes(documents_dir: Path) -> None:
    document = parse_document((documents_dir / "umlauts-non-utf8.md").read_bytes(), "u.md", MARKDOWN)
    assert document.text == "## können\n\nkönnen\n\näöüß"
    assert document.media_type == MARKDOWN
    # the corpus's SOURCES.md: Markdown in ISO-8859-1 (cp1250 and cp1252 read these bytes the same,
    # but the file is Latin-1, and the warning names it so)
    assert document.warnings == ("decoded as iso8859-1 (not UTF-8)",)


def test_markdown_is_kept_as_written() -> None:
    source = "# Title\n\n* item one  \n* item two\n\n    code block\n\n| a | b |\n|---|---|\n"
    assert parse_document(source.encode(), "r.md", MARKDOWN).text == source.rstrip()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("\ufeffWith a BOM".encode(), "With a BOM"),
        ("Grüße".encode("utf-16"), "Grüße"),
        ("Grüße".encode("utf-32"), "Grüße"),
        (
            "“Smart quotes” in Windows-1252, naïve café".encode("cp1252"),
            "“Smart quotes” in Windows-1252, naïve café",
        ),
        (b"windows\r\nline\r\nendings\r\n", "windows\nline\nendings"),
        ("plain UTF-8: 日本語".encode(), "plain UTF-8: 日本語"),
    ],
)
def test_text_encodings(data: bytes, expected: str) -> None:
    assert parse_document(data, "t.txt", PLAIN).text == expected


_GERMAN = "Grüße aus Köln: die Straße am Rhein ist schön, und Übermorgen gibt es Käse.\n"
_RUSSIAN = (
    "Москва - столица России, крупнейший по численности населения город страны. "
    "Город расположен на реке Москве в центре Восточно-Европейской равнины."
)


def test_stray_bytes_in_utf8_are_replaced_not_guessed_as_a_code_page() -> None:
    """A 0xFF and two lone 0xE9 in 50 KB of UTF-8 used to turn the whole file into cp1252 mojibake."""
    body = (_GERMAN * 700).encode()
    cut = len(_GERMAN.encode()) * 300  # on a line boundary, so no character is split
    data = body[:cut] + b"\xff" + body[cut:] + b"\xe9 end \xe9\n"
    document = parse_document(data, "d.txt", PLAIN)
    assert document.text == (_GERMAN * 300 + "\ufffd" + _GERMAN * 400 + "\ufffd end \ufffd").rstrip()
    assert document.warnings == ("3 invalid UTF-8 byte sequences replaced with U+FFFD",)


def test_utf8_cut_mid_character_at_the_end_stays_utf8() -> None:
    data = "Grüße aus Köln, naïve café, schöne Grüße: €".encode()[:-1]  # 2 of the €'s 3 bytes
    assert len(data) == 52
    document = parse_document(data, "cut.txt", PLAIN)
    assert document.text == "Grüße aus Köln, naïve café, schöne Grüße: \ufffd"
    assert document.warnings == ("1 invalid UTF-8 byte sequence replaced with U+FFFD (the last character is cut off)",)


def test_legacy_text_is_not_read_as_damaged_utf8() -> None:
    """cp1252 German has no valid UTF-8 multi-byte sequence; a lone 0xE9 in ASCII is a Latin-1 é."""
    german = decode_text(_GERMAN.encode("cp1252"))
    assert german.text == _GERMAN  # read as ISO-8859-1, which has these letters at the same bytes as cp1252
    assert german.warnings == (f"decoded as {german.encoding} (not UTF-8)",)
    assert german.encoding != "utf-8"
    assert decode_text(b"mode: mock\n# caf\xe9\n").text == "mode: mock\n# café\n"


def test_clean_utf8_has_no_warning() -> None:
    assert decode_text("Ωραίο \ufffd".encode()) == ("Ωραίο \ufffd", "utf-8", ())


@pytest.mark.parametrize(
    ("text", "encoding", "name"),
    [
        ("Привет, как дела? Всё хорошо, спасибо.", "koi8_r", "koi8-r"),  # was shift_jis_2004
        ("Привет, как дела? Всё хорошо, спасибо.", "cp1251", "cp1251"),
        (_RUSSIAN, "koi8_r", "koi8-r"),
        (_RUSSIAN, "cp1251", "cp1251"),
        ("naïve café", "cp1252", "iso8859-1"),  # no byte 0x80-0x9F: the same text in Latin-1
        ("“Smart quotes”, naïve café", "cp1252", "cp1252"),  # 0x93/0x94 are quotes only in Windows-1252
        ("Příliš žluťoučký kůň úpěl ďábelské ódy. Zażółć gęślą jaźń.", "cp1250", "cp1250"),
        ("Η Αθήνα είναι η πρωτεύουσα και η μεγαλύτερη πόλη της Ελλάδας.", "cp1253", "cp1253"),
        ("日本語のテキストです。東京は日本の首都であり、世界有数の大都市です。", "shift_jis", "cp932"),
        ("ｺﾝﾆﾁﾊ ｾｶｲ. ｺﾚﾊ ﾃｽﾄ ﾃﾞｽ. ﾄｳｷｮｳﾄ ﾁﾖﾀﾞｸ ﾏﾙﾉｳﾁ 1-1", "shift_jis", "cp932"),  # halfwidth kana
        ("北京是中华人民共和国的首都，也是全国的政治、文化中心。这座城市有三千多年的历史。", "gb2312", "gb18030"),
        # the legacy text with the most accidental valid UTF-8 sequences measured (38 of 126)
        ("吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所で"
         "ニャーニャー泣いていた事だけは記憶している。吾輩はここで始めて人間というものを見た。",
         "euc_jp", "euc_jis_2004"),
    ],
)
def test_legacy_encodings_are_detected(text: str, encoding: str, name: str) -> None:
    """Encodings are reported by Python's canonical codec name, never "utf_8"-style aliases."""
    assert decode_text(text.encode(encoding)) == (text, name, (f"decoded as {name} (not UTF-8)",))


def test_sniffing_a_head_agrees_with_decoding_the_file() -> None:
    data = (_GERMAN * 10).encode() + b"\xff" + "Straß".encode()
    head = data[: len(data) - 1]  # ends inside the ß
    assert sniff_text(head) == _GERMAN * 10 + "\ufffdStra"
    koi8 = "Привет, как дела? Всё хорошо, спасибо.".encode("koi8_r")
    assert sniff_text(koi8) == decode_text(koi8).text


@pytest.mark.parametrize("data", [b"", b"\n\n\n", b" \t \r\n ", "\ufeff\u200b\n".encode()])
def test_blank_text_has_no_text(data: bytes) -> None:
    _fails(ErrorCode.NO_TEXT, data, PLAIN, "blank.txt")


# --- page text hygiene (shared with the real LlamaParse client) ------------------------------


def test_no_content_placeholder_is_never_text() -> None:
    assert clean_page_text(NO_CONTENT_MARKER) == ""
    assert clean_page_text(f"  {NO_CONTENT_MARKER}\n") == ""
    assert clean_page_text(f"Title\n{NO_CONTENT_MARKER}\nBody") == "Title\nBody"
    # Only a line of its own is the placeholder: a sentence that mentions it is text.
    assert clean_page_text(f"LlamaParse writes {NO_CONTENT_MARKER} for blank pages.").endswith("blank pages.")


def test_clean_page_text_normalises_without_reflowing() -> None:
    assert clean_page_text("\n\n  indented\x00 line\x07\r\nnext\t \n\n") == "  indented line\nnext"
    assert clean_page_text("\u200b \n\t") == ""
    assert has_text("x") and not has_text("\u200b\ufeff \n")


def test_fast_paths_clean_as_the_regexes_do() -> None:
    # ASCII pages go through bytes.translate, others through the regex: the same characters go
    assert clean_page_text("a\x01b\x1fc\x7fd\te\x0bf") == "abcd\tef"
    assert clean_page_text("é\x01b\x7f\ufeffc") == "ébc"
    assert clean_page_text("plain ascii, nothing to remove") == "plain ascii, nothing to remove"
    # has_text: a visible first character answers at once; a zero-width one needs the full check
    assert has_text("  \n word") and has_text("\u200b\u00ad visible") and has_text("\ufeffx")
    assert not has_text(" \u200b\u200c\u200d\u2060\ufeff\u00ad \n") and not has_text("")
    assert clean_page_text("\u200b\n\u2060") == "" and clean_page_text("\u200bhello\n") == "\u200bhello"


def test_all_placeholder_pages_are_no_text() -> None:
    with pytest.raises(DocumentError) as info:
        make_document([NO_CONTENT_MARKER, f"\n{NO_CONTENT_MARKER}\n"], PDF, path="scan.pdf")
    assert info.value.code is ErrorCode.NO_TEXT
    assert "no text on any of its 2 pages (" in str(info.value)


def test_placeholder_pages_are_kept_empty_with_a_warning() -> None:
    document = make_document(["Real text", NO_CONTENT_MARKER, "More"], PDF, path="mixed.pdf")
    assert document.pages == (Page(1, "Real text"), Page(2, ""), Page(3, "More"))
    assert document.warnings == ("page 2: image-only page (LlamaParse placeholder)",)
    assert NO_CONTENT_MARKER not in document.text


# --- robustness: nothing but DocumentError ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("minimal-document.pdf", PDF),
        ("korean-text-with-tables.pdf", PDF),
        ("r6-empty-password.pdf", PDF),
        ("docx-tables.docx", DOCX),
        ("example-10k-1p.html", HTML),
        ("umlauts-non-utf8.md", MARKDOWN),
    ],
)
@pytest.mark.parametrize("fraction", [0.03, 0.33, 0.66, 0.97])
def test_cut_documents_fail_only_with_document_errors(
    documents_dir: Path, name: str, media_type: str, fraction: float
) -> None:
    data = (documents_dir / name).read_bytes()
    try:
        document = parse_document(data[: int(len(data) * fraction)], name, media_type)
    except DocumentError as exc:
        assert exc.code in {ErrorCode.CORRUPT, ErrorCode.NO_TEXT, ErrorCode.ENCRYPTED}
    else:
        assert document.pages and any(p.text for p in document.pages)
