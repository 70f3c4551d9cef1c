"""The chunk stage: token windows over a document's pages, counted with the embedding model's tokenizer.

A document's non-blank pages are joined with a blank line and tokenised once (tiktoken, the encoding
the catalog gives for the model). Windows of at most `max_tokens` tokens step forward by
`max_tokens - overlap_tokens`. Window edges sit only on token boundaries that are also character
boundaries, and the text is cut by character offsets, so a multi-byte character (CJK, Arabic, Thai,
emoji) is never split into U+FFFD halves. Each chunk's count is the count of its own text, which can
differ from the tokens it had in context, so a window that counts over the limit is shortened until it
fits. Whitespace-only windows are dropped, so no chunk is ever empty after strip().

Counting a window's own text does not re-encode all of it (that was as much work as the document's
encode). tiktoken cuts text into regex pieces and encodes each piece alone, and for cl100k_base a
single space between two ASCII letters ("word word") is always a piece boundary whatever surrounds
it: encode(x + y) == encode(x) + encode(y) when x ends with an ASCII letter and y starts with a space
and an ASCII letter (see `_counts`). So a window's count is its in-context tokens between its first
and last such boundary plus the re-encoded head and tail outside them, exactly; a window with no such
boundary, or in another encoding, is re-encoded whole.
"""

from __future__ import annotations

import bisect
import functools
import re
import string
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tvdb.catalog import DEFAULT_EMBEDDING_MODEL, embedding_model
from tvdb.domain import Chunk, Page
from tvdb.errors import ConfigError
from tvdb.tokens import get_encoding

if TYPE_CHECKING:
    import tiktoken

PAGE_SEPARATOR = "\n\n"
_PARALLEL_CHARS = 1_000_000  # texts at least this long are encoded in two halves on two threads
# Windows planned ahead of counting: from 16 (a small document, or just after a window had to be
# shortened, which moves every later window) doubling up to 512 while windows keep fitting.
_FIRST_BLOCK = 16
_BLOCK = 512
_MIN_PARALLEL = 64  # fewer texts than twice this are counted on the calling thread only
# Encodings whose pre-tokenizer always splits "<ASCII letter>| <ASCII letter>" (checked against the
# regex of each: no alternative consumes a letter and then a space, and " x" starts a letters piece).
_SPLIT_AT_WORD_SPACE = frozenset({"cl100k_base"})
# Matches the letter before such a space: a match's end is the boundary (the space's offset).
_WORD_SPACE = re.compile(r"[A-Za-z](?= [A-Za-z])")
_ASCII_LETTERS = frozenset(string.ascii_letters)


def chunk_pages(
    pages: Sequence[Page],
    *,
    max_tokens: int,
    overlap_tokens: int,
    model: str = DEFAULT_EMBEDDING_MODEL,
) -> list[Chunk]:
    """Split `pages` into token windows; returns chunks indexed 0..n-1 (empty list for blank pages).

    Every chunk has 1 ≤ `token_count` ≤ `max_tokens` ≤ the model's per-input cap (tvdb.catalog), its
    `token_count` is the exact count of its final text, and `pages` lists the 1-based numbers of the
    pages its text overlaps. Pages whose text is empty or whitespace contribute nothing.

    Raises ConfigError for an unknown model, `max_tokens` outside 1..cap, or `overlap_tokens` outside
    0..max_tokens-1; TokenizerUnavailable when tiktoken's vocabulary cannot be loaded.
    """
    spec = embedding_model(model)
    if not 1 <= max_tokens <= spec.max_input_tokens:
        raise ConfigError(
            f"chunking.max_tokens must be between 1 and {spec.max_input_tokens} "
            f"({model}'s per-input cap), got {max_tokens}"
        )
    if not 0 <= overlap_tokens < max_tokens:
        raise ConfigError(
            f"chunking.overlap_tokens must be between 0 and max_tokens - 1 ({max_tokens - 1}), "
            f"got {overlap_tokens}"
        )
    text, spans = _join_pages(pages)
    if not spans:
        return []
    enc = get_encoding(spec.encoding)
    split = enc.name in _SPLIT_AT_WORD_SPACE
    with ThreadPoolExecutor(max_workers=1) as pool:
        tokens, inexact = _encode(enc, text, pool, split)
        boundaries, char_at = _safe_boundaries(spec.encoding, tokens)
        windows = _Windows(text, enc, boundaries, char_at, max_tokens, overlap_tokens, pool,
                           split=split, inexact=inexact)
        index = _PageIndex(spans)
        return [
            Chunk(i, chunk_text, count, index.pages(start, start + len(chunk_text)))
            for i, (chunk_text, count, start) in enumerate(windows.run())
        ]


class _Windows:
    """The window walk over safe boundary positions (indices into `boundaries`).

    Sequential semantics: a window starts at boundary a, ends at the last boundary b ≤ a + max_tokens,
    and while its text re-counts over max_tokens, b steps back one boundary; the next window
    starts at the last boundary ≤ b - overlap (always after a). For speed, windows are planned in
    blocks assuming no step-back and counted on a thread pool (tiktoken releases the GIL); the walk
    accepts windows up to the first that does not fit and redoes that one sequentially, so the result
    is exactly the sequential one. Blocks shrink after a step-back and grow while none happens, so
    text where step-backs are frequent costs at most about twice the sequential work.
    """

    def __init__(
        self,
        text: str,
        enc: tiktoken.Encoding,
        boundaries: npt.NDArray[np.int64],
        char_at: npt.NDArray[np.int64],
        max_tokens: int,
        overlap: int,
        pool: ThreadPoolExecutor,
        *,
        split: bool = False,
        inexact: int | None = None,
    ) -> None:
        self.text, self.enc, self.pool = text, enc, pool
        self.boundaries, self.char_at = boundaries, char_at
        # the same positions as a list: bisect on it is ~10x cheaper per window than a scalar
        # np.searchsorted (two per window), and the list costs one pass per document
        self.bounds: list[int] = boundaries.tolist()
        self.max_tokens, self.overlap = max_tokens, overlap
        self.last = len(boundaries) - 1  # the boundary at len(tokens)
        self.split = split  # the encoding always splits at a space between ASCII letters (`_counts`)
        self.inexact = inexact  # a character offset where in-context tokens may differ, if any

    def run(self) -> Iterator[tuple[str, int, int]]:
        """Yields (text, token count, character start) of each non-blank window in order."""
        a = 0
        block = _FIRST_BLOCK
        while True:
            planned: list[tuple[int, int]] = []
            pos = a
            while len(planned) < block:
                end = self._end(pos)
                planned.append((pos, end))
                if end in (pos, self.last):
                    break
                pos = self._next(pos, end)
            cuts = [self._cut(p, e) for p, e in planned]
            counts = self._counts(planned, cuts)
            for (pos, end), (chunk_text, start), count in zip(planned, cuts, counts, strict=True):
                if end == pos:
                    raise ConfigError(
                        f"chunking.max_tokens={self.max_tokens} cannot hold the character at offset "
                        f"{int(self.char_at[pos])} (it alone takes more tokens); use a larger max_tokens"
                    )
                shrunk = count > self.max_tokens
                if shrunk:
                    end, chunk_text, start, count = self._shrink(pos, end)
                if chunk_text:
                    yield chunk_text, count, start
                if end == self.last:
                    return
                a = self._next(pos, end)
                if shrunk:
                    block = _FIRST_BLOCK  # the next start moved: re-plan from it, briefly
                    break
            else:
                block = min(2 * block, _BLOCK)  # all planned windows fit: plan further ahead

    def _end(self, pos: int) -> int:
        bounds = self.bounds
        return bisect.bisect_right(bounds, bounds[pos] + self.max_tokens) - 1

    def _next(self, pos: int, end: int) -> int:
        bounds = self.bounds
        nxt = bisect.bisect_right(bounds, bounds[end] - self.overlap) - 1
        return nxt if nxt > pos else pos + 1

    def _cut(self, pos: int, end: int) -> tuple[str, int]:
        """The text between two boundaries ("" when it is blank) and its character offset.

        The text is not stripped: the exact window text re-counts to the window's own token count
        almost always, whereas stripping a leading space (" Returns" → "Returns") often changes it.
        """
        start = int(self.char_at[pos])
        text = self.text[start : int(self.char_at[end])]
        return ("" if text.isspace() else text), start

    def _shrink(self, pos: int, end: int) -> tuple[int, str, int, int]:
        while True:
            end -= 1
            if end == pos:
                raise ConfigError(
                    f"chunking.max_tokens={self.max_tokens} is too small for the text at offset "
                    f"{int(self.char_at[pos])}"
                )
            chunk_text, start = self._cut(pos, end)
            count = self._count([chunk_text])[0]
            if count <= self.max_tokens:
                return end, chunk_text, start, count

    def _counts(self, planned: list[tuple[int, int]], cuts: list[tuple[str, int]]) -> list[int]:
        """The exact count of each planned window's own text (0 for a blank one).

        Where the encoding splits at word spaces, a window whose text has boundaries q1 ≤ q2 (a
        space between ASCII letters, the letter before q1 and the one after q2 inside the window)
        counts as len(encode(head)) + in-context tokens from q1 to q2 + len(encode(tail)): the
        window's encoding is the concatenation of the three parts' encodings, and so is the whole
        text's around the middle part. Others are re-encoded whole (`_count`)."""
        counts = [0] * len(cuts)
        whole: list[int] = []
        found: list[tuple[int, int, int, int]] = []  # (window, start, q1, q2), character offsets
        for i, ((chunk_text, start), (_, end)) in enumerate(zip(cuts, planned, strict=True)):
            if not chunk_text:
                continue
            stop = int(self.char_at[end])
            q1 = _first_word_space(self.text, start, stop) if self.split else None
            q2 = _last_word_space(self.text, q1, stop) if q1 is not None else None
            if q1 is None or q2 is None or (self.inexact is not None and q1 <= self.inexact <= q2):
                whole.append(i)
            else:
                found.append((i, start, q1, q2))
        if found:
            edges = np.array([[q1, q2] for _, _, q1, q2 in found], dtype=np.int64)
            at = np.minimum(np.searchsorted(self.char_at, edges), len(self.char_at) - 1)
            exact = self.char_at[at] == edges  # both are token boundaries in context (always, for a split)
            inside = self.boundaries[at[:, 1]] - self.boundaries[at[:, 0]]
            encode = self.enc.encode_ordinary
            for k, (i, start, q1, q2) in enumerate(found):
                if not exact[k].all():
                    whole.append(i)
                    continue
                stop = start + len(cuts[i][0])
                counts[i] = len(encode(self.text[start:q1])) + int(inside[k]) + len(encode(self.text[q2:stop]))
        for i, n in zip(whole, self._count([cuts[i][0] for i in whole]), strict=True):
            counts[i] = n
        return counts

    def _count(self, texts: list[str]) -> list[int]:
        encode = self.enc.encode_ordinary

        def count(part: list[str]) -> list[int]:
            return [len(encode(t)) if t else 0 for t in part]

        if len(texts) < 2 * _MIN_PARALLEL:
            return count(texts)
        half = len(texts) // 2
        first = self.pool.submit(count, texts[:half])
        second = count(texts[half:])
        return first.result() + second


def _encode(
    enc: tiktoken.Encoding, text: str, pool: ThreadPoolExecutor, split: bool
) -> tuple[npt.NDArray[np.uint32], int | None]:
    """Token ids of `text` (as encode_ordinary), and the character offset where they may differ
    from a whole-text encoding (None: nowhere).

    A long text is cut in two and the halves encoded in parallel. The cut is a word space after the
    middle when the encoding splits there (`split`), so the halves' tokens are the whole text's;
    otherwise it is a line break, tokens next to it may differ, which only moves a window edge, and
    windows across it are re-encoded whole to be counted."""
    if len(text) < _PARALLEL_CHARS:
        return enc.encode_to_numpy(text, disallowed_special=()), None
    middle = len(text) // 2
    space = _first_word_space(text, middle, len(text)) if split else None
    cut = space if space is not None else (text.rfind("\n", 0, middle) + 1 or middle)
    first = pool.submit(enc.encode_to_numpy, text[:cut], disallowed_special=())
    second = enc.encode_to_numpy(text[cut:], disallowed_special=())
    return np.concatenate([first.result(), second]), (None if space is not None else cut)


def _first_word_space(text: str, start: int, stop: int) -> int | None:
    """The first offset q in start < q < stop - 1 of a space between ASCII letters, or None."""
    found = _WORD_SPACE.search(text, start, stop)
    return None if found is None else found.end()


def _last_word_space(text: str, first: int, stop: int) -> int | None:
    """The last offset q ≥ `first` of a space between ASCII letters with q < stop - 1, or None.
    Steps back from `stop` one space at a time (str.rfind): in prose the last space is almost
    always between letters, so this costs one or two C-level searches where the regex scanned a
    tail span and made a match object per word in it."""
    end = stop - 1
    letters = _ASCII_LETTERS
    while (q := text.rfind(" ", first, end)) > 0:
        if text[q - 1] in letters and text[q + 1] in letters:
            return q
        end = q
    return None


def _join_pages(pages: Sequence[Page]) -> tuple[str, list[tuple[int, int, int]]]:
    """The text of the non-blank pages joined by PAGE_SEPARATOR, and per page (number, start, end):
    the character span of its non-whitespace content in that text."""
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    offset = 0
    for page in pages:
        page_text = _utf8_safe(page.text)
        content = page_text.strip()
        if not content:
            continue
        if parts:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        lead = len(page_text) - len(page_text.lstrip())
        spans.append((page.number, offset + lead, offset + lead + len(content)))
        parts.append(page_text)
        offset += len(page_text)
    return "".join(parts), spans


def _utf8_safe(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD, as tiktoken would, so offsets stay exact."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class _PageIndex:
    """Finds the pages whose content spans overlap a character range of the joined text."""

    def __init__(self, spans: list[tuple[int, int, int]]) -> None:
        self.spans = spans
        self.starts = [start for _, start, _ in spans]

    def pages(self, start: int, end: int) -> tuple[int, ...]:
        first = max(bisect.bisect_right(self.starts, start) - 1, 0)
        numbers: set[int] = set()
        for number, s, e in self.spans[first:]:
            if s >= end:
                break
            if e > start:
                numbers.add(number)
        return tuple(sorted(numbers))


def _safe_boundaries(
    encoding: str, tokens: npt.NDArray[np.uint32]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Token positions where a window may start or end, and the character offset of each.

    Position i is safe when token i starts a character (its first byte is not a UTF-8 continuation
    byte); len(tokens) is always safe. Vectorised over per-vocabulary tables, so a 4M-token document
    costs a few numpy passes rather than a Python loop over tokens.
    """
    n_chars, continues = _vocab_tables(encoding)
    before = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(n_chars[tokens], out=before[1:])
    safe = np.ones(len(tokens) + 1, dtype=bool)
    safe[:-1] = ~continues[tokens]
    positions = np.flatnonzero(safe)
    return positions, before[positions]


@functools.cache
def _vocab_tables(encoding: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Per token id: how many characters start in its bytes, and whether its first byte continues
    a character begun by the previous token. Built once per process (~0.1 s), read-only after."""
    enc = get_encoding(encoding)
    pieces: list[bytes] = []
    for token in range(enc.n_vocab):
        try:
            pieces.append(enc.decode_single_token_bytes(token))
        except KeyError:  # holes in the id space (special tokens never come from encode_ordinary)
            pieces.append(b"")
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    data = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    is_continuation = (data >= 0x80) & (data < 0xC0)
    char_starts = np.concatenate([[0], np.cumsum(~is_continuation, dtype=np.int64)])
    n_chars = char_starts[ends] - char_starts[starts]
    continues = np.zeros(len(pieces), dtype=bool)
    nonempty = lengths > 0
    continues[nonempty] = is_continuation[starts[nonempty]]
    n_chars.flags.writeable = False
    continues.flags.writeable = False
    return n_chars, continues
