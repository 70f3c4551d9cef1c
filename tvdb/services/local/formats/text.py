"""Plain text and Markdown: decode the bytes (BOM, UTF-8, then a detector) into one page.

Also the cheap text sniffing that upload-stage detection uses on a document's first bytes.
"""

from __future__ import annotations

import codecs
import re

from tvdb.domain import ParsedDocument
from tvdb.services.local.formats.pagetext import make_document

# Longest BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control characters that do not occur in text files (tab, newlines, FF, VT and ESC do).
_BINARY_CONTROLS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_MAX_CONTROL_RATIO = 0.01
_DETECTOR_SAMPLE = 64 * 1024
_TIE_PREFERENCE = ("cp1252", "latin_1")


def bom_encoding(data: bytes) -> tuple[str, int] | None:
    """(codec name, BOM length) when `data` starts with a Unicode byte-order mark."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, len(bom)
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when NULs sit on one byte parity only (ASCII-range UTF-16)."""
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0) / len(sample[0::2])
    odd = sample[1::2].count(0) / len(sample[1::2])
    if odd > 0.4 and even < 0.05:
        return "utf-16-le"
    if even > 0.4 and odd < 0.05:
        return "utf-16-be"
    return None


def _looks_like_text(text: str) -> bool:
    if "\x00" in text:
        return False
    return len(_BINARY_CONTROLS.findall(text)) <= _MAX_CONTROL_RATIO * max(len(text), 1)


def _detect_legacy_encoding(sample: bytes) -> str | None:
    """The encoding charset-normalizer finds most plausible for non-UTF-8 bytes, if any.

    Short samples often fit several code pages equally well (e.g. cp1250 and cp1252 for
    "naïve café"); a tie then goes to the commonest legacy encoding, Windows-1252.
    """
    from charset_normalizer import from_bytes

    matches = from_bytes(sample)
    best = matches.best()
    if best is None:
        return None
    tied = {m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    for preferred in _TIE_PREFERENCE:
        if preferred in tied:
            return preferred
    return str(best.encoding)


def sniff_text(sample: bytes) -> str | None:
    """The decoded text of `sample` (a document's first bytes, possibly cut mid-character), or
    None when it is not text: NUL bytes, control characters, undecodable in any encoding."""
    found = bom_encoding(sample)
    if found is not None:
        name, skip = found
        decoder = codecs.getincrementaldecoder(name)(errors="replace")
        text = decoder.decode(sample[skip:], final=False)
        return text if _looks_like_text(text) else None
    utf16 = _utf16_without_bom(sample)
    if utf16 is not None:
        text = sample[: len(sample) & ~1].decode(utf16, errors="replace")
        return text if _looks_like_text(text) else None
    if b"\x00" in sample:
        return None
    try:
        # An incremental decoder tolerates a multi-byte character cut at the end of the sample.
        text = codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        encoding = _detect_legacy_encoding(sample)
        if encoding is None:
            return None
        text = sample.decode(encoding, errors="replace")
    return text if _looks_like_text(text) else None


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) for a whole text file: a BOM wins, then strict UTF-8 (the usual case),
    then charset-normalizer's best guess, then cp1252 (the commonest legacy Western encoding).

    Never raises: undecodable bytes become U+FFFD in the guessed encoding.
    """
    found = bom_encoding(data)
    if found is not None:
        name, skip = found
        return data[skip:].decode(name, errors="replace"), name
    utf16 = _utf16_without_bom(data[:_DETECTOR_SAMPLE])
    if utf16 is not None:
        return data.decode(utf16, errors="replace"), utf16
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding = _detect_legacy_encoding(data[:_DETECTOR_SAMPLE]) or "cp1252"
    try:
        return data.decode(encoding, errors="replace"), encoding
    except LookupError:  # a detector name this Python does not know
        return data.decode("cp1252", errors="replace"), "cp1252"


def parse_text(data: bytes, media_type: str, *, path: str) -> ParsedDocument:
    """A TXT or Markdown file as one page, its text kept as written (Markdown syntax included).

    Raises DocumentError(NO_TEXT) for an empty or whitespace-only file.
    """
    text, encoding = decode_text(data)
    warnings = [] if encoding == "utf-8" else [f"decoded as {encoding} (not UTF-8)"]
    return make_document([text], media_type, path=path, warnings=warnings)
