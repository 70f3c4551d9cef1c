"""Every file of the shared corpus through detection and `LocalParser`, with its expected outcome.

A file added to the corpus without an entry in EXPECTED fails the suite: each real document
must have a decided outcome (CASES C05, C11, C12, C16, C18; SOURCES.md "observed" column).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DOCUMENTS
from tvdb.domain import ParseRequest, ParseResult
from tvdb.errors import DocumentError, ErrorCode
from tvdb.pipeline.detect import detect_media_type
from tvdb.services.local.formats import DOCX, HTML, MARKDOWN, PDF, PLAIN, pagetext
from tvdb.services.local.parser import LocalParser


@dataclass(frozen=True)
class Completes:
    media_type: str
    pages: int
    contains: tuple[str, ...]
    absent: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fails:
    media_type: str
    code: ErrorCode
    message: str


EXPECTED: dict[str, Completes | Fails] = {
    "agstat.pdf": Completes(PDF, 1, ("DISTRICT WISE ESTIMATES OF MARKETABLE SURPLUS", "Sl.\nNo. District")),
    "c02-22.pdf": Fails(PDF, ErrorCode.NO_TEXT, "no text on its one page (scanned or image-only?"),
    "docx-tables.docx": Completes(
        DOCX,
        1,
        ("Header Col 1 | Header Col 2", "Lorem ipsum | A link example", "Nested Table", "g&t | h | i"),
    ),
    "example-10k-1p.html": Completes(
        HTML,
        1,
        ("Galaxy Gaming, Inc.", "Commission file number: 000-30653", "Item 1. | Business | 4", "☐", "☑"),
        absent=("dei:", "contextRef", "DFIN ActiveDisclosure", "<?xml", "&#160;", "\xa0", "font-family"),
    ),
    "fake-text-all-whitespace.txt": Fails(PLAIN, ErrorCode.NO_TEXT, "no text"),
    "handbook-1p.docx": Completes(DOCX, 2, ("CHAPTER 1", "INTRODUCTION", "28 U.S.C. § 586(b)")),
    "invalid.pdf": Fails(PDF, ErrorCode.CORRUPT, "unreadable PDF"),
    "korean-text-with-tables.pdf": Completes(PDF, 1, ("적립 제외 대상", "삼성카드")),
    "libreoffice-writer-password.pdf": Fails(PDF, ErrorCode.ENCRYPTED, "password required"),
    "minimal-document.pdf": Completes(PDF, 1, ("Lorem ipsum dolor sit amet",)),
    "multilang.pdf": Completes(
        PDF, 1, ("Hello World", "Привет, мир", "你好世界", "مرحبا بالعالم", "こんにちは世界", "สวัสดีชาวโลก")
    ),
    "pdflatex-4-pages.pdf": Completes(PDF, 4, ("Hello, here is some text without a meaning.",)),
    "r6-empty-password.pdf": Completes(PDF, 1, ("pdf encryption test",)),
    "selenium-pypdf-issue-177.pdf": Completes(PDF, 1, ("Hello World",)),
    "umlauts-non-utf8.md": Completes(MARKDOWN, 1, ("## können", "äöüß")),
}


def _corpus_names() -> list[str]:
    on_disk = {p.name for p in DOCUMENTS.iterdir()} if DOCUMENTS.is_dir() else set()
    return sorted(on_disk | set(EXPECTED))


async def _parse(path: Path) -> ParseResult:
    data = path.read_bytes()
    media_type = detect_media_type(data, path.name)
    return await LocalParser().parse(ParseRequest(data, path.name, media_type, "fast"))


@pytest.mark.parametrize("name", _corpus_names())
async def test_corpus_document_outcome(documents_dir: Path, name: str) -> None:
    path = documents_dir / name
    if name not in EXPECTED:
        pytest.fail(f"{path} is new in the corpus: add its expected outcome to EXPECTED in {__file__}")
    if not path.is_file():
        pytest.fail(f"{path} is expected but missing from the corpus")
    expected = EXPECTED[name]
    assert detect_media_type(path.read_bytes(), name) == expected.media_type
    if isinstance(expected, Fails):
        with pytest.raises(DocumentError) as info:  # anything else escapes and fails the test
            await _parse(path)
        assert info.value.code is expected.code
        assert info.value.path == name
        assert expected.message in str(info.value)
        return
    result = await _parse(path)
    document = result.document
    assert document.media_type == expected.media_type
    assert [p.number for p in document.pages] == list(range(1, expected.pages + 1))
    assert result.pages_billed == expected.pages
    assert dict(result.usage) == {"pages": expected.pages}
    for piece in expected.contains:
        assert piece in document.text, f"{name}: {piece!r} not in the extracted text"
    for junk in expected.absent:
        assert junk not in document.text, f"{name}: {junk!r} leaked into the extracted text"
    assert pagetext.NO_CONTENT_MARKER not in document.text
    assert all(p.text == pagetext.clean_page_text(p.text) for p in document.pages)


def test_the_whole_corpus_parses_together_and_quickly(documents_dir: Path) -> None:
    """All documents at once, as a run does: failures stay per document, none escapes."""

    async def outcome(path: Path) -> str:
        try:
            result = await _parse(path)
        except DocumentError as exc:
            return exc.code.value
        return f"{result.pages_billed} page(s)"

    async def parse_all(paths: list[Path]) -> list[str]:
        return await asyncio.gather(*(outcome(p) for p in paths))

    paths = sorted(documents_dir.iterdir())
    outcomes = asyncio.run(parse_all(paths))
    assert dict(zip([p.name for p in paths], outcomes, strict=True)) == {
        name: (e.code.value if isinstance(e, Fails) else f"{e.pages} page(s)") for name, e in EXPECTED.items()
    }
