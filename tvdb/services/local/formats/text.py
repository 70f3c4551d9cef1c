"""Plain text and Markdown: decode the bytes (BOM, UTF-8, then a detector) into one page.

Also the cheap text sniffing that upload-stage detection uses on a document's first bytes.
"""

from __future__ import annotations

import codecs
import re
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

from tvdb.domain import ParsedDocument
from tvdb.errors import DocumentError, ErrorCode
from tvdb.services.local.formats.pagetext import make_document

if TYPE_CHECKING:
    from charset_normalizer import CharsetMatches

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
_TIE_PREFERENCE = ("latin_1", "cp1252")
_ASCII_BYTES = bytes(range(0x80))
_WIDE_UNICODE = ("utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be")
_ENCODED_REPLACEMENT = "\ufffd".encode()


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


def _single_byte_encodings() -> list[str]:
    from charset_normalizer.constant import IANA_SUPPORTED
    from charset_normalizer.utils import is_multi_byte_encoding

    return [name for name in IANA_SUPPORTED if not is_multi_byte_encoding(name)]


def _mostly_halfwidth_katakana(text: str) -> bool:
    """Whether most non-ASCII characters of `text` are halfwidth katakana (U+FF61-U+FF9F)."""
    non_ascii = [c for c in text if ord(c) > 0x7F]
    halfwidth = sum(1 for c in non_ascii if "\uff61" <= c <= "\uff9f")
    return halfwidth * 2 > len(non_ascii)


def _case_flips(text: str) -> int:
    """Lowercase letters directly followed by an uppercase one ("рТЙЧЕФ")."""
    return sum(1 for first, second in pairwise(text) if first.islower() and second.isupper())


def _pick(matches: CharsetMatches) -> str | None:
    """The best match's encoding; among matches tied with it, the fewest case flips, then Latin-1,
    then cp1252.

    Short samples often fit several code pages equally well. KOI8-R and cp1251 hold the same
    Cyrillic letters with upper and lower case swapped, so reading one as the other puts
    capitals inside words ("рТЙЧЕФ" for "Привет"); real text rarely does. A match also lists the
    code pages that decode the bytes to the very same text (`could_be_from_charset`): German
    `äöüß` reads the same in cp1250, cp1252 and ISO-8859-1, and the detector names cp1250 first,
    a Central European code page the file was not written in. Among those the tie goes to
    ISO-8859-1 (Latin-1), which every such byte means in Western text, then to Windows-1252.
    """
    best = matches.best()
    if best is None:
        return None
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    fewest = min(_case_flips(str(m)) for m in tied)
    candidates = [name for m in tied if _case_flips(str(m)) == fewest
                  for name in (str(m.encoding), *m.could_be_from_charset)]
    for preferred in _TIE_PREFERENCE:
        if preferred in candidates:
            return preferred
    return candidates[0]


def _detect_legacy_encoding(sample: bytes) -> str | None:
    """The encoding charset-normalizer finds most plausible for non-UTF-8 bytes, if any."""
    from charset_normalizer import from_bytes

    # Text in UTF-16 or UTF-32 has a NUL in every space, digit or newline; without any NUL the
    # detector's UTF-16 answer is a coincidence ("mode: mock\n# caf\xe9\n" read as CJK).
    exclusion = None if b"\x00" in sample else list(_WIDE_UNICODE)
    matches = from_bytes(sample, cp_exclusion=exclusion)
    best = matches.best()
    if best is None:
        return None
    # Shift_JIS reads every byte 0xA1-0xDF as a halfwidth katakana, exactly where KOI8-R
    # (lowercase), cp1251 and other single-byte code pages put their letters; and once a
    # multi-byte CJK decoding is clean, charset-normalizer stops trying single-byte code pages.
    # Short KOI8-R Russian thus came out as Shift_JIS. Japanese prose is written in
    # full-width kana, so a decoding made mostly of halfwidth katakana is asked again without
    # the multi-byte codecs; a single-byte reading at least as clean wins. Text really written
    # in halfwidth katakana keeps Shift_JIS: read as a single-byte code page it is a mess.
    if _mostly_halfwidth_katakana(str(best)):
        single = from_bytes(sample, cp_isolation=_single_byte_encodings())
        single_best = single.best()
        if single_best is not None and single_best.chaos <= best.chaos:
            return _pick(single)
    return _pick(matches)


def _codec_name(name: str) -> str | None:
    """Python's canonical name for codec `name` ("utf_8" -> "utf-8"), None when unknown."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


class _Utf8Reading(NamedTuple):
    text: str
    invalid: int  # invalid byte sequences replaced with U+FFFD, a cut last character included
    cut_at_end: bool


def _read_utf8(data: bytes, *, final: bool) -> _Utf8Reading | None:
    """`data` as UTF-8 with invalid sequences replaced, or None when it is not UTF-8 text.

    In legacy-encoded text most non-ASCII bytes are invalid UTF-8 sequences: a valid one needs
    a lead byte followed by exactly the right number of bytes 0x80-0xBF, which single-byte code
    pages use for punctuation or rare letters ("сё" in KOI8-R), so it happens by accident (0-1
    against 7-181 invalid ones in a few hundred bytes of Russian, Greek, Czech, French). In
    double-byte CJK encodings some trail bytes fall there: at most 38 valid against 88 invalid
    (178 bytes of EUC-JP Japanese). In UTF-8 damaged by a stray byte or a cut, the valid
    sequences far outnumber the bad ones. Each reading destroys the other's characters, so
    UTF-8 wins when its valid multi-byte sequences are at least as many as its invalid ones.
    ASCII plus a lone high byte has no valid sequence: that is a legacy letter ("caf\xe9"), so
    such bytes are left to the detector.
    With `final` False (a document's head), a character cut by the end of `data` is not counted.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    cut_at_end = final and bool(decoder.getstate()[0])
    if cut_at_end:
        text += decoder.decode(b"", final=True)
    # "replace" puts one U+FFFD per invalid sequence; EF BF BD is a U+FFFD in the file itself.
    invalid = text.count("\ufffd") - data.count(_ENCODED_REPLACEMENT)
    if invalid == 0:
        return _Utf8Reading(text, 0, cut_at_end=False)
    ascii_count = len(data) - len(data.translate(None, _ASCII_BYTES))
    valid_multi_byte = len(text) - ascii_count - invalid
    if valid_multi_byte == 0 or invalid > valid_multi_byte:
        return None
    return _Utf8Reading(text, invalid, cut_at_end)


def _utf8_warnings(reading: _Utf8Reading) -> tuple[str, ...]:
    if reading.invalid == 0:
        return ()
    plural = "" if reading.invalid == 1 else "s"
    cut = " (the last character is cut off)" if reading.cut_at_end else ""
    return (f"{reading.invalid} invalid UTF-8 byte sequence{plural} replaced with U+FFFD{cut}",)


class DecodedText(NamedTuple):
    """A text file's decoded text, the codec used (Python's canonical name) and its warnings."""

    text: str
    encoding: str
    warnings: tuple[str, ...]


def sniff_text(sample: bytes) -> str | None:
    """The decoded text of `sample` (a document's first bytes, possibly cut mid-character), or
    None when it is not text: NUL bytes, control characters, undecodable in any encoding.

    Decides UTF-8 against a legacy code page by the same rule as `decode_text`.
    """
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
    reading = _read_utf8(sample, final=False)
    if reading is not None:
        text = reading.text
    else:
        encoding = _detect_legacy_encoding(sample)
        if encoding is None:
            return None
        text = sample.decode(encoding, errors="replace")
    return text if _looks_like_text(text) else None


def decode_text(data: bytes) -> DecodedText:
    """(text, encoding, warnings) for a whole text file: a BOM wins, then UTF-8 (the usual case;
    a few invalid sequences among many valid ones become U+FFFD with a warning), then
    charset-normalizer's best guess, then cp1252 (the commonest legacy Western encoding).

    The encoding is Python's canonical codec name ("utf-8", "cp1252", "koi8-r"). Never raises:
    undecodable bytes become U+FFFD in the chosen encoding.
    """
    found = bom_encoding(data)
    if found is not None:
        name, skip = found
        return DecodedText(data[skip:].decode(name, errors="replace"), name, ())
    utf16 = _utf16_without_bom(data[:_DETECTOR_SAMPLE])
    if utf16 is not None:
        return DecodedText(data.decode(utf16, errors="replace"), utf16, ())
    reading = _read_utf8(data, final=True)
    if reading is not None:
        return DecodedText(reading.text, "utf-8", _utf8_warnings(reading))
    detected = _detect_legacy_encoding(data[:_DETECTOR_SAMPLE])
    encoding = (_codec_name(detected) if detected else None) or "cp1252"
    if encoding == "utf-8":  # the sample is UTF-8 but the rest has more bad bytes than good
        text = data.decode("utf-8", errors="replace")
        invalid = text.count("\ufffd") - data.count(_ENCODED_REPLACEMENT)
        return DecodedText(text, "utf-8", _utf8_warnings(_Utf8Reading(text, invalid, cut_at_end=False)))
    if encoding == "ascii":  # an ASCII sample says nothing of the bytes after it
        encoding = "cp1252"
    text = data.decode(encoding, errors="replace")
    return DecodedText(text, encoding, (f"decoded as {encoding} (not UTF-8)",))


def parse_text(data: bytes, media_type: str, *, path: str) -> ParsedDocument:
    """A TXT or Markdown file as one page, its text kept as written (Markdown syntax included).

    Warns when the file is not UTF-8 or had invalid UTF-8 sequences replaced. Raises
    DocumentError(NO_TEXT) for an empty or whitespace-only file.
    """
    decoded = decode_text(data)
    if decoded.text and not decoded.text.strip():
        # make_document's no-text message guesses at scans and OCR, which a text file never needs
        raise DocumentError(ErrorCode.NO_TEXT, "no text: the file holds only whitespace", path=path)
    return make_document([decoded.text], media_type, path=path, warnings=list(decoded.warnings))
