"""`HashEmbedder`: the deterministic local stand-in for OpenAI embeddings (mock mode and the emulator).

A text's vector is a signed feature-hashing projection of its lowercased words (the "hashing trick").
Words are the runs of characters between whitespace, punctuation and symbols (so Thai or Chinese runs
stay whole, combining marks included); a text with none is one word.

- each distinct word adds its unigram feature and its character 3-grams (of ``<word>``), so
  inflections and shared stems ("embed", "embeddings") land near each other; the weight of a word is
  sublinear in its count, 1 + ln(count), and a short list of English function words is damped, so
  "the" and "of" do not make unrelated texts look alike;
- consecutive content words (function words skipped) add a bigram feature, so a phrase taken from a
  text matches that text more than another text with the same words in other places.

Every feature is hashed with blake2b (never Python's per-process salted ``hash()``) into 64 bits:
the index is ``h mod dimensions`` and the sign is the top bit. Each contribution is rounded to a
multiple of 2**-24, so float64 sums are exact and do not depend on summation order; rows are then
L2-normalised. A text's vector is therefore bit-identical across processes, instances, batch
compositions and call histories.

Speed: an instance caches each word's feature hashes (and, per dimension, their folded indices and
signed weights) once, and a batch is projected with numpy gathers and one ``bincount`` per block of
rows, so repeated words cost no Python hashing. Measured figures are in the report of issue 2.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import math
import threading
import unicodedata
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tvdb.catalog import EMBEDDING_MODELS, embedding_model
from tvdb.domain import EmbeddingRequest, EmbeddingResult, Implementation
from tvdb.errors import PermanentServiceError
from tvdb.tokens import get_encoding

MAX_DIMENSIONS = max(spec.default_dimensions for spec in EMBEDDING_MODELS.values())

_NGRAM_SIZES = (3,)
_NGRAM_NORM = 0.7  # L2 weight of a word's n-gram block relative to its unigram (1.0)
_STOPWORD_WEIGHT = 0.15
_BIGRAM_WEIGHT = 0.5
_ROW_BLOCK = 256  # rows per bincount: a 256 × dimensions float64 scratch stays cache- and allocator-friendly
_GRID = float(2**24)  # contributions are multiples of 1/_GRID: exact float64 sums in any order
# Function words that would otherwise dominate every text's vector (no IDF in a stateless embedder).
_STOPWORDS = frozenset(
    "a an and are as at be been but by can do does for from had has have he her his i if in into is it "
    "its me my no not of on or our she so than that the their them then there these they this those to "
    "was we were what when which while who will with would you your".split()
)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant of splitmix64
_TOP_BIT = np.uint64(63)


class HashEmbedder:
    """Deterministic, content-derived embeddings, wire-compatible in shape with OpenAI's.

    One instance may be shared by threads (a lock guards its caches). Memory grows with the number
    of distinct words seen (a few hundred bytes each).
    """

    service = "openai"
    implementation = Implementation.MOCK
    identity = "HashEmbedder 1"  # bump the number when its vectors change

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vocab = _Vocabulary()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed one request as the API would: float32 (len(texts), request.dimensions) unit rows.

        `prompt_tokens` is the tiktoken count of the inputs (encode_ordinary, as the API counts):
        `request.input_tokens` when the caller knows them (the chunker's counts), else counted here.
        Raises PermanentServiceError (status 400, the API's message) for a request the API refuses:
        no inputs or more than the model's inputs per request, an input over the per-input token
        cap, over the per-request token cap, or `dimensions` the model does not allow; ValueError
        for an empty or whitespace-only input (the chunker must never produce one).
        ConfigError for a model unknown to tvdb.catalog.

        The CPU work runs on a worker thread, so concurrent requests overlap (tiktoken and numpy
        release the GIL) and the event loop stays responsive.
        """
        return await asyncio.to_thread(self.embed_request, request)

    def embed_request(self, request: EmbeddingRequest) -> EmbeddingResult:
        """The synchronous body of `embed` (same result and errors)."""
        spec = embedding_model(request.model)
        texts = list(request.texts)
        _check_blank(texts)
        if not 1 <= len(texts) <= spec.max_inputs_per_request:
            raise _bad_request(
                "'$.input' is invalid. Please check the API reference: "
                "https://platform.openai.com/docs/api-reference."
            )
        if request.dimensions != spec.default_dimensions and not spec.supports_dimensions:
            raise _bad_request("This model does not support specifying dimensions.")
        if not 1 <= request.dimensions <= spec.default_dimensions:
            raise _bad_request(
                f"Invalid value for 'dimensions' = {request.dimensions}. "
                f"It must be between 1 and {spec.default_dimensions}."
            )
        counts = _input_tokens(request, spec.encoding)
        for count in counts:
            if count > spec.max_input_tokens:
                raise _bad_request(
                    f"This model's maximum context length is {spec.max_input_tokens} tokens, however you "
                    f"requested {count} tokens ({count} in your prompt; 0 for the completion). "
                    "Please reduce your prompt; or completion length."
                )
        total = sum(counts)
        if total > spec.max_tokens_per_request:
            raise _bad_request(
                f"Requested {total} tokens, max {spec.max_tokens_per_request} tokens per request",
                code="max_tokens_per_request",
            )
        vectors = self.embed_texts(texts, request.dimensions)
        return EmbeddingResult(
            vectors=vectors,
            prompt_tokens=total,
            model=request.model,
            usage={"prompt_tokens": total, "total_tokens": total},
        )

    def embed_texts(self, texts: Sequence[str], dimensions: int) -> npt.NDArray[np.float32]:
        """Vectors of `texts`: float32 array of shape (len(texts), dimensions), each row of unit L2 norm.

        Raises ValueError for an empty or whitespace-only text (naming its index) or `dimensions`
        outside 1..3072. No token limits are checked here (the caller, e.g. the emulator, does).
        """
        if not 1 <= dimensions <= MAX_DIMENSIONS:
            raise ValueError(f"dimensions must be between 1 and {MAX_DIMENSIONS}, got {dimensions}")
        texts = list(texts)
        _check_blank(texts)
        out = np.empty((len(texts), dimensions), dtype=np.float32)
        with self._lock:
            for start in range(0, len(texts), _ROW_BLOCK):
                block = texts[start : start + _ROW_BLOCK]
                out[start : start + len(block)] = self._project(block, dimensions)
        return out

    def _project(self, texts: list[str], dimensions: int) -> npt.NDArray[np.float64]:
        """Unit float64 rows for one block of texts (see the module docstring for the features)."""
        vocab = self._vocab
        words: list[str] = []
        lengths: list[int] = []
        separators = _separators()
        for text in texts:
            # translate + split is ~2x faster than re.findall and keeps combining marks in words.
            found = text.lower().translate(separators).split() or [text.strip().lower()]
            words.extend(found)
            lengths.append(len(found))
        seq = vocab.lookup(words)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)

        # Distinct (text, word) pairs with their counts. Their order follows word ids, which depend
        # on the instance's history; exact sums (see _GRID) make the result independent of it.
        size = np.int64(vocab.size)
        pairs, counts = np.unique(rows * size + seq, return_counts=True)
        word_rows, word_ids = pairs // size, pairs % size

        table = vocab.folded(dimensions)
        starts = table.ptr[word_ids]
        n_features = table.ptr[word_ids + 1] - starts
        # Feature positions of each pair: starts[k] .. starts[k] + n_features[k], concatenated.
        ends = np.cumsum(n_features)
        positions = np.arange(int(ends[-1]), dtype=np.int64)
        positions += np.repeat(starts - (ends - n_features), n_features)
        keys = [np.repeat(word_rows * dimensions, n_features) + table.index[positions]]
        # A word that occurs once in its text contributes its folded weights as they are (most
        # pairs: the grid-rounded copy is made once per word); only repeated words are scaled by
        # 1 + ln(count) and rounded again, which is the same value for a count of 1.
        weights = table.grid[positions]
        repeated = counts > 1
        if repeated.any():
            at = np.repeat(repeated, n_features)
            scale = np.repeat(1.0 + np.log(counts[repeated]), n_features[repeated])
            weights[at] = _on_grid(table.value[positions[at]] * scale)
        values = [weights]

        # Bigrams of consecutive content words (function words skipped) within one text.
        content = ~vocab.stop_array()[seq]
        content_ids, content_rows = seq[content], rows[content]
        same_text = content_rows[1:] == content_rows[:-1]
        if same_text.any():
            hashes = vocab.hash_array()
            pair_hash = _pair_hash(hashes[content_ids[:-1][same_text]], hashes[content_ids[1:][same_text]])
            folded = (pair_hash % np.uint64(dimensions)).astype(np.int64)
            keys.append(content_rows[1:][same_text] * dimensions + folded)
            values.append(np.where(pair_hash >> _TOP_BIT, -_BIGRAM_WEIGHT, _BIGRAM_WEIGHT))

        summed = np.bincount(
            np.concatenate(keys), weights=np.concatenate(values), minlength=len(texts) * dimensions
        )
        dense = np.asarray(summed, dtype=np.float64).reshape(len(texts), dimensions)
        norms = np.sqrt(np.einsum("ij,ij->i", dense, dense))
        zero = norms == 0.0  # every feature cancelled (possible only for tiny dimensions)
        dense[zero, 0] = 1.0
        norms[zero] = 1.0
        dense /= norms[:, None]
        return dense


class _Folded:
    """A vocabulary's features folded into one dimension: CSR pointers, indices, signed weights."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.words = 0
        self.ptr = np.zeros(1, dtype=np.int64)
        self.index = np.zeros(0, dtype=np.int64)
        self.value = np.zeros(0, dtype=np.float64)
        self.grid = np.zeros(0, dtype=np.float64)  # `value` rounded to the grid (_on_grid)


class _Vocabulary:
    """Per-instance cache: word → id, each word's 64-bit hash, and its features (hash, weight).

    Features of word i are `feature_hash[ptr[i]:ptr[i+1]]`; arrays grow append-only, so ids and
    folded tables stay valid as new words arrive.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self._word_hash: list[int] = []
        self._stop: list[bool] = []
        self._feature_hash: list[int] = []
        self._feature_weight: list[float] = []
        self._ptr: list[int] = [0]
        self._gram_hash: dict[str, int] = {}
        self._folded: dict[int, _Folded] = {}
        self._hash_array = np.zeros(0, dtype=np.uint64)
        self._stop_array = np.zeros(0, dtype=bool)

    @property
    def size(self) -> int:
        return len(self._word_hash)

    def lookup(self, words: list[str]) -> npt.NDArray[np.int64]:
        """Ids of `words` (int64 array, same order), adding the words not seen before."""
        ids = self.ids
        # one pass over the words (-1 for a new one); then only the new words' places are filled in
        seq = np.fromiter(map(ids.get, words, itertools.repeat(-1)), dtype=np.int64, count=len(words))
        new = np.flatnonzero(seq < 0)
        if new.size:
            for word in dict.fromkeys(words[i] for i in new):  # ids in order of first appearance
                self._add(word)
            seq[new] = [ids[words[i]] for i in new]
        return seq

    def stop_array(self) -> npt.NDArray[np.bool_]:
        if (have := len(self._stop_array)) != len(self._stop):  # extended by the words added since
            self._stop_array = np.concatenate([self._stop_array, np.array(self._stop[have:], dtype=bool)])
        return self._stop_array

    def hash_array(self) -> npt.NDArray[np.uint64]:
        if (have := len(self._hash_array)) != len(self._word_hash):
            self._hash_array = np.concatenate([self._hash_array, np.array(self._word_hash[have:], dtype=np.uint64)])
        return self._hash_array

    def folded(self, dimensions: int) -> _Folded:
        """The folded table for `dimensions`, extended to every word seen so far."""
        table = self._folded.setdefault(dimensions, _Folded(dimensions))
        words = len(self._word_hash)
        if table.words < words:
            lo, hi = self._ptr[table.words], self._ptr[words]
            hashes = np.array(self._feature_hash[lo:hi], dtype=np.uint64)
            weights = np.array(self._feature_weight[lo:hi], dtype=np.float64)
            table.index = np.concatenate([table.index, (hashes % np.uint64(dimensions)).astype(np.int64)])
            signed = np.where(hashes >> _TOP_BIT, -weights, weights)
            table.value = np.concatenate([table.value, signed])
            table.grid = np.concatenate([table.grid, _on_grid(signed)])
            table.ptr = np.concatenate([table.ptr, np.array(self._ptr[table.words + 1 : words + 1], dtype=np.int64)])
            table.words = words
        return table

    def _add(self, word: str) -> None:
        self.ids[word] = len(self._word_hash)
        word_hash = _blake(b"w\x00" + word.encode("utf-8", "surrogatepass"))
        stop = word in _STOPWORDS
        self._word_hash.append(word_hash)
        self._stop.append(stop)
        self._feature_hash.append(word_hash)
        self._feature_weight.append(_STOPWORD_WEIGHT if stop else 1.0)
        if not stop:
            grams = _ngrams(word)
            weight = _NGRAM_NORM / math.sqrt(len(grams)) if grams else 0.0
            for gram in grams:
                gram_hash = self._gram_hash.get(gram)
                if gram_hash is None:
                    gram_hash = _blake(b"g\x00" + gram.encode("utf-8", "surrogatepass"))
                    self._gram_hash[gram] = gram_hash
                self._feature_hash.append(gram_hash)
                self._feature_weight.append(weight)
        self._ptr.append(len(self._feature_hash))


def _ngrams(word: str) -> list[str]:
    marked = f"<{word}>"
    grams = [marked[i : i + n] for n in _NGRAM_SIZES for i in range(len(marked) - n + 1)]
    return grams or [marked]


def _on_grid(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """`values` rounded to multiples of 1/_GRID (|value| ≤ ~10, so sums of up to ~10^7 of them
    per dimension are exact in float64's 53-bit mantissa)."""
    rounded: npt.NDArray[np.float64] = np.rint(values * _GRID) / _GRID
    return rounded


@functools.cache
def _separators() -> dict[int, str]:
    """str.translate table sending punctuation, symbols and control characters to spaces.

    Covers code points below U+3000 (Latin, Greek, Cyrillic, Arabic, Indic, Thai, general
    punctuation, ...) plus CJK and fullwidth punctuation; emoji and letters of every script stay.
    Built once per process (~10 ms), never mutated.
    """
    table: dict[int, str] = {}
    for code in [*range(0x3000), *range(0x3000, 0x3040), *range(0xFF00, 0xFF66)]:
        char = chr(code)
        if unicodedata.category(char)[0] in "PSZC" and not char.isspace():
            table[code] = " "
    return table


def _blake(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _pair_hash(left: npt.NDArray[np.uint64], right: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """A stable 64-bit hash of an ordered pair of word hashes (splitmix64 finaliser over a mix)."""
    with np.errstate(over="ignore"):
        x = left * _MIX ^ ((right << np.uint64(17)) | (right >> np.uint64(47)))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        result: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return result


def _input_tokens(request: EmbeddingRequest, encoding: str) -> list[int]:
    """Per-input token counts: the ones the request carries (tokenize once), else tiktoken's."""
    if request.input_tokens:
        if len(request.input_tokens) != len(request.texts):
            raise ValueError(f"{len(request.input_tokens)} token counts for {len(request.texts)} inputs")
        return list(request.input_tokens)
    # A plain loop: tiktoken's encode_ordinary_batch (8 threads) is slower on small machines.
    encode = get_encoding(encoding).encode_ordinary
    return [len(encode(text)) for text in request.texts]


def _check_blank(texts: list[str]) -> None:
    for i, text in enumerate(texts):
        if not text or text.isspace():
            raise ValueError(
                f"input {i} is empty or whitespace-only; the embeddings API refuses empty strings "
                "and tvdb never sends blank chunks"
            )


def _bad_request(message: str, *, code: str | None = None) -> PermanentServiceError:
    return PermanentServiceError(message, service="openai", status=400, code=code)
