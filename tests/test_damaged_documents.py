"""Damaged and hostile documents: detection and local parsing raise DocumentError and nothing else.

Damaged ZIPs make `zipfile` raise zlib.error, EOFError, NotImplementedError, RuntimeError, OSError...
(not only BadZipFile); a DOCX zip bomb must fail with `too_large` before it is inflated.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvdb.domain import ParseRequest
from tvdb.errors import DocumentError, ErrorCode
from tvdb.pipeline.detect import detect_media_type
from tvdb.services.local.formats import DOCX
from tvdb.services.local.formats.ziplimits import MAX_UNCOMPRESSED_BYTES
from tvdb.services.local.parser import LocalParser, parse_document

MIB = 1024 * 1024
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # ZIP local file header (APPNOTE 4.3.7)
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header (APPNOTE 4.3.12)
_END = struct.Struct("<IHHHHIIH")  # end of central directory record (APPNOTE 4.3.16)


def _docx_parts() -> dict[str, bytes]:
    import docx

    document = docx.Document()
    document.add_paragraph("hello")
    buffer = io.BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _package(compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A small Word package whose first member is a compressed [Content_Types].xml."""
    parts = _docx_parts()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("[Content_Types].xml", parts.pop("[Content_Types].xml"))
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _first_data_offset(data: bytes) -> int:
    fields = _LOCAL.unpack_from(data, 0)
    return _LOCAL.size + fields[9] + fields[10]


def _corrupt_deflate(data: bytes) -> bytes:
    """XOR the 8 bytes right after the first member's local header (its compressed data)."""
    out = bytearray(data)
    start = _first_data_offset(data)
    for i in range(start, start + 8):
        out[i] ^= 0xFF
    return bytes(out)


def _patch_first_member(data: bytes, *, method: int | None = None, flags: int | None = None) -> bytes:
    """Rewrite the compression method / flag bits of the first member in both of its headers."""
    out = bytearray(data)
    central = data.index(b"PK\x01\x02")  # the first central entry describes the first member
    for offset, flag_at, method_at in ((0, 6, 8), (central, 8, 10)):
        if flags is not None:
            struct.pack_into("<H", out, offset + flag_at, flags)
        if method is not None:
            struct.pack_into("<H", out, offset + method_at, method)
    return bytes(out)


def _truncate_first_member_data(data: bytes) -> bytes:
    """Zero the first member's compressed stream after its first 4 bytes (a truncated LZMA/bzip2 stream)."""
    out = bytearray(data)
    start = _first_data_offset(data)
    size = zipfile.ZipFile(io.BytesIO(data)).infolist()[0].compress_size
    out[start + 4 : start + size] = bytes(size - 4)
    return bytes(out)


# What zipfile raises reading the first member ([Content_Types].xml) of each, and the outcome under
# a neutral name: a member detection can read but finds damaged makes a "damaged ZIP archive"; one it
# does not inflate at all (OPC allows only stored/deflated parts) leaves the directory to say "Word".
DAMAGES = {
    "corrupt deflate data": (lambda: _corrupt_deflate(_package()), ErrorCode.UNSUPPORTED_TYPE),  # zlib.error
    "encrypted member": (lambda: _patch_first_member(_package(), flags=0x1), ErrorCode.UNSUPPORTED_TYPE),
    "unknown compression method": (lambda: _patch_first_member(_package(), method=99), ErrorCode.CORRUPT),
    "damaged bzip2 member": (lambda: _truncate_first_member_data(_package(zipfile.ZIP_BZIP2)), ErrorCode.CORRUPT),
    "damaged lzma member": (lambda: _truncate_first_member_data(_package(zipfile.ZIP_LZMA)), ErrorCode.CORRUPT),
}


def _outcome(data: bytes, name: str) -> ErrorCode | str:
    """The detected type, or the DocumentError code of detection or parsing; any other error fails."""
    try:
        media_type = detect_media_type(data, name)
    except DocumentError as exc:
        return exc.code
    try:
        parse_document(data, name, media_type)
    except DocumentError as exc:
        return exc.code
    return media_type


# --- damaged ZIPs -----------------------------------------------------------------------------


def test_corrupt_deflate_in_the_content_types_member_is_a_document_error() -> None:
    data = _corrupt_deflate(_package())
    with pytest.raises(zlib.error):  # what zipfile itself raises on this file
        zipfile.ZipFile(io.BytesIO(data)).read("[Content_Types].xml")
    assert detect_media_type(data, "report.docx") == DOCX
    with pytest.raises(DocumentError) as info:
        parse_document(data, "report.docx", DOCX)
    assert info.value.code is ErrorCode.CORRUPT and "report.docx" in str(info.value)
    with pytest.raises(DocumentError) as info:
        detect_media_type(data, "archive.zip")
    assert info.value.code is ErrorCode.UNSUPPORTED_TYPE
    assert "damaged ZIP archive" in str(info.value)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_zip_members_fail_with_document_errors_only(damage: str) -> None:
    make, neutral_name_outcome = DAMAGES[damage]
    data = make()
    assert detect_media_type(data, "report.docx") == DOCX  # the parser then says why
    assert _outcome(data, "report.docx") is ErrorCode.CORRUPT
    assert _outcome(data, "upload.bin") is neutral_name_outcome


async def test_local_parser_fails_a_damaged_docx_with_a_document_error() -> None:
    data = _corrupt_deflate(_package())
    with pytest.raises(DocumentError) as info:
        await LocalParser().parse(ParseRequest(data, "report.docx", detect_media_type(data, "report.docx"), "fast"))
    assert info.value.code is ErrorCode.CORRUPT


# --- fuzzing: byte flips over the corpus ---------------------------------------------------------

_FUZZ_FILES = (
    "docx-tables.docx", "handbook-1p.docx", "minimal-document.pdf", "multilang.pdf",
    "r6-empty-password.pdf", "selenium-pypdf-issue-177.pdf",
)  # fmt: skip
# TOO_LARGE too: a flip in a ZIP directory's size field can declare gigabytes.
_ALLOWED = {
    ErrorCode.CORRUPT, ErrorCode.NO_TEXT, ErrorCode.ENCRYPTED, ErrorCode.UNSUPPORTED_TYPE, ErrorCode.TOO_LARGE,
}


def _member_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, length) of each ZIP member's stored data, where flips hit the decompressor."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            fields = _LOCAL.unpack_from(data, info.header_offset)
            start = info.header_offset + _LOCAL.size + fields[9] + fields[10]
            spans.append((start, max(info.compress_size, 1)))
    return spans


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    name=st.sampled_from(_FUZZ_FILES),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8),
    in_member=st.booleans(),
    member=st.integers(0, 50),
    rename=st.sampled_from([None, "upload.bin", "upload.zip"]),
)
def test_flipped_bytes_fail_only_with_document_errors(
    documents_dir: Path,
    name: str,
    flips: list[tuple[float, int]],
    in_member: bool,
    member: int,
    rename: str | None,
) -> None:
    data = bytearray((documents_dir / name).read_bytes())
    start, length = 0, len(data)
    if in_member and name.endswith(".docx"):  # aim at one member's compressed data
        spans = _member_spans(bytes(data))
        start, length = spans[member % len(spans)]
    for where, mask in flips:
        data[start + int(where * length)] ^= mask
    result = _outcome(bytes(data), rename or name)
    assert result in _ALLOWED or isinstance(result, str)


# --- zip bombs ---------------------------------------------------------------------------------


def _write_bomb(path: Path, zeros_mib: int, *, declared: int | None = None) -> bytes:
    """A Word package whose word/document.xml inflates to `zeros_mib` MiB of NULs, written as a
    stream of identical 1 MiB deflate blocks (~1 KB each), so hundreds of MiB cost a few hundred KB
    and no time. `declared`: the uncompressed size its headers claim (default: the truth)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # After a full flush a block refers to nothing before it, so the same bytes can repeat.
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush()
    crc = 0
    for _ in range(zeros_mib):
        crc = zlib.crc32(bytes(MIB), crc)
    size = zeros_mib * MIB if declared is None else declared
    parts = _docx_parts()
    del parts["word/document.xml"]
    entries: list[tuple[bytes, int, int, int, int, int]] = []  # name, method, crc, csize, usize, offset
    with path.open("wb") as out:
        for name, content in parts.items():
            entries.append((name.encode(), 0, zlib.crc32(content), len(content), len(content), out.tell()))
            out.write(_LOCAL.pack(0x04034B50, 20, 0, 0, 0, 0x21, *entries[-1][2:5], len(name), 0) + name.encode())
            out.write(content)
        name_b = b"word/document.xml"
        entries.append((name_b, 8, crc, len(block) * zeros_mib + len(tail), size, out.tell()))
        out.write(_LOCAL.pack(0x04034B50, 20, 0, 8, 0, 0x21, *entries[-1][2:5], len(name_b), 0) + name_b)
        for _ in range(zeros_mib):
            out.write(block)
        out.write(tail)
        directory = out.tell()
        for name_b, method, crc_, csize, usize, offset in entries:
            out.write(_CENTRAL.pack(0x02014B50, 20, 20, 0, method, 0, 0x21, crc_, csize, usize, len(name_b),
                                    0, 0, 0, 0, 0, offset) + name_b)
        out.write(_END.pack(0x06054B50, 0, 0, len(entries), len(entries), out.tell() - directory, directory, 0))
    return path.read_bytes()


def _fails_small_and_fast(data: bytes) -> DocumentError:
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError) as info:
            parse_document(data, "bomb.docx", detect_media_type(data, "bomb.docx"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB, f"the bomb was inflated into memory ({peak / MIB:.0f} MiB)"
    assert info.value.code is ErrorCode.TOO_LARGE, str(info.value)
    return info.value


def test_docx_zip_bomb_is_too_large_before_it_is_inflated(tmp_path: Path) -> None:
    data = _write_bomb(tmp_path / "bomb.docx", 300)
    member = zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml")
    assert member.file_size == 300 * MIB and member.compress_size < 400 * 1024  # 300 MiB in ~300 KB
    error = _fails_small_and_fast(data)
    assert error.message.startswith("the package expands to 300.8 MiB (word/document.xml alone to 300 MiB)")
    assert "over the 256 MiB a DOCX may expand to" in error.message


def test_docx_zip_bomb_with_lying_headers_is_too_large(tmp_path: Path) -> None:
    """Headers claim 1 KB; a bounded read finds out before python-docx ever sees the member."""
    data = _write_bomb(tmp_path / "liar.docx", MAX_UNCOMPRESSED_BYTES // MIB + 8, declared=1024)
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml").file_size == 1024
    error = _fails_small_and_fast(data)
    assert error.message.startswith(
        "word/document.xml declares 1,024 bytes, but the package expands to more than the 256 MiB"
    )


def test_a_package_under_the_cap_reaches_the_parser(tmp_path: Path) -> None:
    data = _write_bomb(tmp_path / "zeros.docx", 2)  # 2 MiB of NULs: not a bomb, merely not XML
    with pytest.raises(DocumentError) as info:
        parse_document(data, "zeros.docx", DOCX)
    assert info.value.code is ErrorCode.CORRUPT
