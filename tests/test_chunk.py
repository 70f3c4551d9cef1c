"""The chunk stage: exact token windows, page numbers, no blank chunks (C05), the per-input cap (C06)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvdb import catalog
from tvdb.domain import Page
from tvdb.errors import ConfigError
from tvdb.pipeline.chunk import PAGE_SEPARATOR, _safe_boundaries, chunk_pages
from tvdb.tokens import get_encoding

ENC = get_encoding("cl100k_base")

PROSE = (
    "The harbour authority published its annual report on a grey Tuesday morning. Cargo volumes rose "
    "for the third consecutive year, driven by container traffic from the eastern terminals, while bulk "
    "grain shipments fell after a poor harvest inland. The report warned that dredging of the main "
    "channel had fallen behind schedule and that two of the older cranes would need replacement before "
    "the winter storms. Union representatives welcomed the commitment to hire forty new pilots but "
    "questioned the timetable for the automated gate system, which had already slipped twice. "
)


def count(text: str) -> int:
    return len(ENC.encode_ordinary(text))


def numbered_prose(sentences: int) -> str:
    """Prose with no repeated sentence, so each chunk's position in the text is unambiguous."""
    return " ".join(f"Item {i}: {PROSE.split('. ')[i % 5]}." for i in range(sentences))


def non_space(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


def test_windows_are_exact_counted_and_cover_the_text_without_overlap() -> None:
    text = numbered_prose(120)
    chunks = chunk_pages([Page(1, text)], max_tokens=100, overlap_tokens=0)
    total = count(text)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len(chunks) == -(-total // 100)  # full windows, the last one shorter
    for chunk in chunks:
        assert chunk.token_count == count(chunk.text) <= 100
        assert chunk.pages == (1,)
    assert "".join(c.text for c in chunks) == text  # exact slices, in order
    assert [c.token_count for c in chunks[:-1]] == [100] * (len(chunks) - 1)


def test_consecutive_windows_overlap_by_the_requested_tokens() -> None:
    text = numbered_prose(150)
    chunks = chunk_pages([Page(1, text)], max_tokens=120, overlap_tokens=30)
    starts = []
    position = 0
    for chunk in chunks:
        position = text.index(chunk.text, position)
        starts.append(position)
    for i in range(len(chunks) - 1):
        a, b = starts[i], starts[i + 1]
        end = a + len(chunks[i].text)
        assert a < b <= end  # progress, and no gap
        assert 28 <= count(text[b:end]) <= 30  # token edges sit on character boundaries
    assert starts[0] == 0 and starts[-1] + len(chunks[-1].text) == len(text)
    assert all(c.token_count == count(c.text) <= 120 for c in chunks)


def test_pages_record_where_each_chunk_came_from_and_blank_pages_add_nothing() -> None:
    pages = [
        Page(1, numbered_prose(6)),
        Page(2, ""),
        Page(3, "   \n\t  "),
        Page(4, numbered_prose(3)),
        Page(5, "Short closing page."),
    ]
    chunks = chunk_pages(pages, max_tokens=80, overlap_tokens=0)
    joined = PAGE_SEPARATOR.join(p.text for p in pages if p.text.strip())
    assert "".join(c.text for c in chunks) == joined
    assert all(set(c.pages) <= {1, 4, 5} for c in chunks)
    assert chunks[0].pages == (1,)
    assert chunks[-1].pages[-1] == 5
    assert {n for c in chunks for n in c.pages} == {1, 4, 5}
    spanning = [c for c in chunks if len(c.pages) > 1]
    assert spanning, "with 80-token windows some chunk must cross a page break"
    for chunk in spanning:
        assert PAGE_SEPARATOR in chunk.text
    # One window over everything lists every contributing page, ascending.
    (whole,) = chunk_pages(pages, max_tokens=2000, overlap_tokens=0)
    assert whole.pages == (1, 4, 5)


def test_whitespace_only_document_gives_no_chunk(documents_dir: Path) -> None:
    """C05: the all-whitespace file yields no chunk at all (its job fails `no_text` upstream)."""
    text = (documents_dir / "fake-text-all-whitespace.txt").read_text(encoding="utf-8")
    assert text and not text.strip()
    assert chunk_pages([Page(1, text)], max_tokens=50, overlap_tokens=10) == []
    assert chunk_pages([Page(1, ""), Page(2, " "), Page(3, "\n\n")], max_tokens=50, overlap_tokens=0) == []
    assert chunk_pages([], max_tokens=50, overlap_tokens=0) == []


def test_long_whitespace_runs_never_become_a_chunk() -> None:
    """C05: a window that falls inside a long blank stretch is dropped, never sent."""
    text = "Opening paragraph about tide tables." + "\n" * 3000 + " " * 5000 + "Closing remark."
    chunks = chunk_pages([Page(1, text)], max_tokens=8, overlap_tokens=2)
    assert chunks
    assert all(c.text.strip() for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    plain = chunk_pages([Page(1, text)], max_tokens=8, overlap_tokens=0)
    assert non_space("".join(c.text for c in plain)) == non_space(text)  # only blank windows dropped


@pytest.mark.parametrize(
    "text",
    [
        "日本語の文章を正しく分割できるかを確かめるための試験です。東京都の天気は晴れ。" * 12,
        "中文文本分块测试：向量数据库需要稳定的切分，不能把一个汉字切成两半。" * 12,
        "هذا نص عربي لاختبار تقسيم النص إلى أجزاء دون كسر الأحرف متعددة البايتات. " * 10,
        "ภาษาไทยไม่มีช่องว่างระหว่างคำ การตัดข้อความต้องไม่ทำให้ตัวอักษรเสียหาย " * 10,
        "한국어 문서를 청크로 나누는 시험입니다. 표와 본문이 함께 있습니다. " * 10,
        "Emoji 🦜🧪🇫🇷👩‍👩‍👧‍👦 and accents: façade, naïve, Ærøskøbing. " * 12,
    ],
)
@pytest.mark.parametrize("max_tokens", [5, 7, 16, 64])
def test_multibyte_text_round_trips_without_replacement_characters(text: str, max_tokens: int) -> None:
    text = text.strip()  # a trailing blank window would be dropped, by design
    chunks = chunk_pages([Page(1, text)], max_tokens=max_tokens, overlap_tokens=0)
    assert all("\ufffd" not in c.text for c in chunks)
    assert "".join(c.text for c in chunks) == text
    assert all(1 <= c.token_count == count(c.text) <= max_tokens for c in chunks)
    overlapped = chunk_pages([Page(1, text)], max_tokens=max_tokens, overlap_tokens=max_tokens // 3)
    assert all("\ufffd" not in c.text and c.text in text for c in overlapped)


def test_c06_inputs_at_and_over_the_model_cap() -> None:
    """C06: 8191 and 8192 tokens stay whole; 9000 tokens become two chunks; none over 8192."""
    for tokens, expected in ((8191, [8191]), (8192, [8192]), (9000, [8192, 808])):
        text = " hello" * tokens
        assert count(text) == tokens
        chunks = chunk_pages([Page(1, text)], max_tokens=8192, overlap_tokens=0)
        assert [c.token_count for c in chunks] == expected
        assert all(count(c.text) == c.token_count for c in chunks)


def test_max_tokens_over_the_cap_is_refused_naming_the_cap() -> None:
    with pytest.raises(ConfigError, match="8192"):
        chunk_pages([Page(1, "text")], max_tokens=8193, overlap_tokens=0)


def test_the_cap_comes_from_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """C06: the chunker reads the per-input cap from tvdb.catalog, the one per-model table."""
    small = replace(catalog.EMBEDDING_MODELS["text-embedding-3-small"], max_input_tokens=100)
    monkeypatch.setitem(catalog.EMBEDDING_MODELS, "text-embedding-3-small", small)
    with pytest.raises(ConfigError, match="between 1 and 100"):
        chunk_pages([Page(1, "text")], max_tokens=101, overlap_tokens=0)
    assert chunk_pages([Page(1, PROSE * 3)], max_tokens=100, overlap_tokens=0)[0].token_count == 100


@pytest.mark.parametrize(
    ("max_tokens", "overlap", "message"),
    [(0, 0, "max_tokens"), (50, 50, "overlap_tokens"), (50, -1, "overlap_tokens")],
)
def test_bad_window_settings_are_config_errors(max_tokens: int, overlap: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        chunk_pages([Page(1, PROSE)], max_tokens=max_tokens, overlap_tokens=overlap)


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown embedding model"):
        chunk_pages([Page(1, PROSE)], max_tokens=50, overlap_tokens=0, model="text-embedding-9")


def test_window_too_small_for_one_character_is_a_clear_error() -> None:
    assert count("🦜") > 1
    with pytest.raises(ConfigError, match="max_tokens=1"):
        chunk_pages([Page(1, "🦜")], max_tokens=1, overlap_tokens=0)


class _InflatingEncoding:
    """The real encoding, except that a text's re-count grows by one token per "!" in it.

    Re-encoding an exact window practically never exceeds its in-context count with cl100k_base, so
    this forces the step-back path that guarantees `token_count <= max_tokens` regardless. Its own
    name keeps the chunker from assuming cl100k_base's piece boundaries: every window is re-encoded.
    """

    name = "inflating-cl100k"

    def __init__(self) -> None:
        self.real = get_encoding("cl100k_base")

    def encode_ordinary(self, text: str) -> list[int]:
        return self.real.encode_ordinary(text) + [0] * text.count("!")

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_window_that_recounts_over_the_limit_is_shortened(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _InflatingEncoding()
    monkeypatch.setattr("tvdb.pipeline.chunk.get_encoding", lambda name="cl100k_base": fake)
    text = " ".join(f"Sentence {i} is loud!!" if i % 3 == 0 else f"Sentence {i} is calm." for i in range(300))
    for overlap in (0, 7):
        chunks = chunk_pages([Page(1, text)], max_tokens=40, overlap_tokens=overlap)
        assert [c.index for c in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert chunk.token_count == len(fake.encode_ordinary(chunk.text)) <= 40
        real_counts = [len(fake.real.encode_ordinary(c.text)) for c in chunks[:-1]]
        assert min(real_counts) < 40 - 2  # windows holding "!" were cut back below the full 40
        if overlap == 0:
            assert "".join(c.text for c in chunks) == text  # shortening never drops text


def _reference_windows(
    text: str, max_tokens: int, overlap: int, enc: _InflatingEncoding
) -> list[tuple[str, int]]:
    """The window walk written plainly, one window at a time (no planning ahead, no threads)."""
    import numpy as np

    boundaries, char_at = _safe_boundaries("cl100k_base", enc.real.encode_to_numpy(text, disallowed_special=()))
    last, a = len(boundaries) - 1, 0
    out: list[tuple[str, int]] = []
    while True:
        b = int(np.searchsorted(boundaries, boundaries[a] + max_tokens, side="right")) - 1
        while True:
            window = text[char_at[a] : char_at[b]]
            tokens = 0 if window.isspace() else len(enc.encode_ordinary(window))
            if tokens <= max_tokens:
                break
            b -= 1
        if not window.isspace():
            out.append((window, tokens))
        if b == last:
            return out
        nxt = int(np.searchsorted(boundaries, boundaries[b] - overlap, side="right")) - 1
        a = nxt if nxt > a else a + 1


@pytest.mark.parametrize(("lines", "loud_every"), [(3000, 7), (6000, 1499)])
def test_the_fast_walk_equals_the_plain_walk(
    monkeypatch: pytest.MonkeyPatch, lines: int, loud_every: int
) -> None:
    """Planning windows ahead and counting them on two threads must not change a single chunk,
    whether step-backs are frequent or come deep inside a large, parallel-counted block."""
    fake = _InflatingEncoding()
    monkeypatch.setattr("tvdb.pipeline.chunk.get_encoding", lambda name="cl100k_base": fake)
    text = " ".join(
        f"Line {i} is loud!!\n\n" if i % loud_every == 0 else f"Line {i} is calm." for i in range(lines)
    )
    for overlap in (0, 9):
        chunks = chunk_pages([Page(1, text)], max_tokens=30, overlap_tokens=overlap)
        assert len(chunks) > 600
        assert [(c.text, c.token_count) for c in chunks] == _reference_windows(text, 30, overlap, fake)


def test_chunking_is_deterministic() -> None:
    pages = [Page(1, numbered_prose(40)), Page(2, "第二页的内容。" * 30)]
    first = chunk_pages(pages, max_tokens=64, overlap_tokens=16)
    assert chunk_pages(pages, max_tokens=64, overlap_tokens=16) == first


def test_lone_surrogates_do_not_break_offsets() -> None:
    text = ("before \ud800 after " * 20).strip()
    chunks = chunk_pages([Page(1, text)], max_tokens=10, overlap_tokens=0)
    assert "".join(c.text for c in chunks) == text.replace("\ud800", "\ufffd")
    assert all(c.token_count == count(c.text) <= 10 for c in chunks)


def test_chunking_a_large_document_is_exact() -> None:
    """About 2,000 chunks of 200 tokens (~400k tokens, over 1M characters: encoded in two halves on
    two threads), still exact (its speed is bench/'s to measure, not a timed test's)."""
    text = numbered_prose(16_000)
    assert len(text) > 1_000_000
    chunks = chunk_pages([Page(1, text)], max_tokens=200, overlap_tokens=0)
    assert len(chunks) > 1_900
    assert "".join(c.text for c in chunks) == text
    assert all(c.token_count == count(c.text) <= 200 for c in chunks)


_ALPHABET = st.sampled_from(
    [*"abcdefghij ,.\n\t1", "  ", "\n\n", "é", "ß", "中", "文", "한", "ไ", "ย", "ع", "🦜", "👩‍👧", "\u200b",
     *"XYZ'-9\r", "'s", "'ll", "\u0301", " a", " Q", "e x"]
)
_PAGE_TEXT = st.lists(_ALPHABET, max_size=120).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(_PAGE_TEXT, min_size=0, max_size=5),
    max_tokens=st.integers(min_value=8, max_value=40),
    overlap_share=st.floats(min_value=0.0, max_value=0.9),
)
def test_chunk_invariants_hold_for_any_text(texts: list[str], max_tokens: int, overlap_share: float) -> None:
    pages = [Page(i + 1, t) for i, t in enumerate(texts)]
    overlap = int(max_tokens * overlap_share)
    chunks = chunk_pages(pages, max_tokens=max_tokens, overlap_tokens=overlap)
    contributing = {p.number for p in pages if p.text.strip()}
    joined = PAGE_SEPARATOR.join(p.text for p in pages if p.text.strip())
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip()
        assert 1 <= chunk.token_count == count(chunk.text) <= max_tokens
        assert chunk.text in joined
        assert chunk.pages and set(chunk.pages) <= contributing
        assert list(chunk.pages) == sorted(set(chunk.pages))
    assert {n for c in chunks for n in c.pages} == contributing
    plain = chunk_pages(pages, max_tokens=max_tokens, overlap_tokens=0)
    assert non_space("".join(c.text for c in plain)) == non_space(joined)


# Pieces around a space between ASCII letters, and everything that might glue to them: contractions,
# digits, marks, other scripts, runs of whitespace, CR/LF, punctuation runs.
_EDGE = st.lists(st.sampled_from([*"aZq 9'.!-\n\r\t", "'s", "'LL", "ve", "\u0301", "é", "中", "🦜", "  ", "\n\n",
                                  " x", "123", "..."]), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(left=_EDGE, left_letter=st.sampled_from("aZs"), right_letter=st.sampled_from("tVx"), right=_EDGE)
def test_cl100k_always_splits_at_a_space_between_ascii_letters(
    left: str, left_letter: str, right_letter: str, right: str
) -> None:
    """The fact the chunker's count rests on: x ending with an ASCII letter and y starting with a
    space and an ASCII letter encode apart exactly as together."""
    x, y = left + left_letter, " " + right_letter + right
    assert ENC.encode_ordinary(x + y) == ENC.encode_ordinary(x) + ENC.encode_ordinary(y)


class _CountingEncoding:
    """The real encoding, counting the characters it is asked to encode_ordinary."""

    name = "cl100k_base"

    def __init__(self) -> None:
        self.real = get_encoding("cl100k_base")
        self.characters = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.characters += len(text)
        return self.real.encode_ordinary(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_prose_window_is_counted_without_re_encoding_its_interior(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokenize once: beyond the document's own encode, only each window's first and last word are
    encoded again (under 10 % of the text here, instead of every window whole: 114 %)."""
    fake = _CountingEncoding()
    monkeypatch.setattr("tvdb.pipeline.chunk.get_encoding", lambda name="cl100k_base": fake)
    text = numbered_prose(400)
    chunks = chunk_pages([Page(1, text)], max_tokens=100, overlap_tokens=12)
    assert len(chunks) > 80
    assert all(c.token_count == count(c.text) for c in chunks)
    assert fake.characters < 0.10 * len(text)
    fake.name = "another-encoding"  # no known piece boundaries: every window is encoded whole
    fake.characters = 0
    assert chunk_pages([Page(1, text)], max_tokens=100, overlap_tokens=12) == chunks
    assert fake.characters > len(text)


def test_a_long_document_is_cut_for_two_threads_where_the_tokens_stay_the_same() -> None:
    """Over 1M characters the encode runs in two halves: cut at a word space, the halves' tokens are
    exactly the whole text's; a text without one (CJK) is cut at a line break, and the windows across
    that cut are re-encoded whole, so every count is still exact."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from tvdb.pipeline.chunk import _encode

    prose = numbered_prose(16_000)
    cjk = "\n".join(["中文文本分块测试：向量数据库需要稳定的切分，不能把一个汉字切成两半。"] * 40_000)
    with ThreadPoolExecutor(max_workers=1) as pool:
        tokens, inexact = _encode(ENC, prose, pool, True)
        assert inexact is None
        assert np.array_equal(tokens, ENC.encode_to_numpy(prose))
        _, inexact = _encode(ENC, cjk, pool, True)
    assert inexact is not None and cjk[inexact - 1] == "\n"
    chunks = chunk_pages([Page(1, cjk)], max_tokens=500, overlap_tokens=50)
    assert all(c.token_count == count(c.text) <= 500 for c in chunks)
