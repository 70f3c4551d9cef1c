"""HashEmbedder: deterministic, content-derived, unit-norm vectors that retrieve sensibly; API-like refusals."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvdb.domain import EmbeddingRequest, Implementation
from tvdb.errors import PermanentServiceError
from tvdb.services.local.embedder import HashEmbedder
from tvdb.tokens import count_tokens
from tvdb.vectors import top_k

DOCUMENTS = {
    "harbour": (
        "The harbour authority published its annual report on Tuesday. Cargo volumes rose for the third "
        "consecutive year, driven by container traffic from the eastern terminals, while bulk grain "
        "shipments fell after a poor harvest. Dredging of the main channel has fallen behind schedule and "
        "two of the older cranes will need replacement before the winter storms arrive."
    ),
    "sourdough": (
        "A sourdough starter is a culture of wild yeast and lactic acid bacteria kept alive with regular "
        "feedings of flour and water. Bakers fold the dough every half hour during bulk fermentation, then "
        "shape the loaf, proof it overnight in the refrigerator and bake it in a preheated cast iron pot so "
        "the crust blisters and the crumb stays open."
    ),
    "vaccine": (
        "The clinical trial enrolled four thousand volunteers across twelve hospitals. Participants received "
        "two doses of the candidate vaccine three weeks apart, and the independent monitoring board reported "
        "strong antibody responses with mild side effects such as fatigue, headache and a sore arm at the "
        "injection site."
    ),
    "football": (
        "The midfielder scored twice in the second half as the visitors came back from a goal down. The "
        "coach praised the pressing of the young full backs, while the home supporters booed the referee "
        "after a penalty appeal was waved away in stoppage time. The result lifts the club to third place "
        "in the league table."
    ),
    "compiler": (
        "The compiler lowers the abstract syntax tree into an intermediate representation in static single "
        "assignment form. Optimisation passes perform constant folding, dead code elimination and loop "
        "invariant code motion before the register allocator maps virtual registers onto the machine's "
        "physical registers and spills the rest to the stack."
    ),
    "glacier": (
        "Satellite measurements show the glacier retreating nearly forty metres a year. Meltwater lakes form "
        "on its surface each summer and drain through crevasses to the bed, lubricating the ice and speeding "
        "its flow toward the fjord, where icebergs calve from a terminus that has thinned markedly since the "
        "first aerial surveys."
    ),
    "mortgage": (
        "Mortgage rates climbed again this month as the central bank signalled further increases to curb "
        "inflation. First time buyers face higher monthly repayments, lenders have tightened affordability "
        "checks, and estate agents report that asking prices in the capital have started to fall for the "
        "first time in two years."
    ),
    "opera": (
        "The new production of the opera moves the story to a crumbling seaside hotel in the nineteen "
        "twenties. The soprano sang the final aria with remarkable restraint, the chorus was superbly "
        "drilled, and the conductor kept the orchestra light enough that every word of the libretto carried "
        "to the back of the balcony."
    ),
}

PARAPHRASES = [
    (
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "A fast brown fox leaped over a lazy dog by the riverbank.",
        "Quarterly revenue grew twelve percent on strong demand in European markets.",
    ),
    (
        "Embedding models turn documents into vectors for semantic search.",
        "Documents are converted into embedding vectors so that search can be semantic.",
        "The choir rehearsed the requiem twice before the Sunday concert.",
    ),
    (
        "Parsing failed because the PDF was encrypted with a password.",
        "The password-protected, encrypted PDF could not be parsed.",
        "Fresh basil and ripe tomatoes make the best summer salad.",
    ),
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def digest(vectors: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).hexdigest()


@pytest.mark.parametrize("dimensions", [1, 2, 3, 7, 256, 512, 1536, 3072])
def test_shape_dtype_finite_and_unit_norm(dimensions: int) -> None:
    texts = [*DOCUMENTS.values(), "x", "!!!", "日本語のテキスト", "a a a a a a"]
    vectors = HashEmbedder().embed_texts(texts, dimensions)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), dimensions)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float64), axis=1), 1.0, atol=1e-6)
    if dimensions == 1:
        assert set(np.abs(vectors[:, 0]).tolist()) == {1.0}


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=300).filter(lambda t: t.strip()), dimensions=st.integers(1, 3072))
def test_any_text_and_dimension_gives_a_finite_unit_vector(text: str, dimensions: int) -> None:
    (vector,) = HashEmbedder().embed_texts([text], dimensions)
    assert vector.shape == (dimensions,)
    assert np.isfinite(vector).all()
    assert abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-6


@pytest.mark.parametrize("dimensions", [0, -1, 3073])
def test_dimensions_out_of_range_are_refused(dimensions: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 3072"):
        HashEmbedder().embed_texts(["text"], dimensions)


@pytest.mark.parametrize("blank", ["", " ", "\n\t  \r\n", "\u3000"])
def test_blank_inputs_are_refused_naming_the_index(blank: str) -> None:
    with pytest.raises(ValueError, match="input 1 is empty or whitespace-only"):
        HashEmbedder().embed_texts(["fine", blank], 8)


def test_a_paraphrase_is_closer_than_an_unrelated_text() -> None:
    embedder = HashEmbedder()
    for text, paraphrase, unrelated in PARAPHRASES:
        a, p, u = embedder.embed_texts([text, paraphrase, unrelated], 1536)
        assert cosine(a, p) > cosine(a, u) + 0.2, (text, cosine(a, p), cosine(a, u))


def test_a_five_word_query_from_a_document_finds_it_first() -> None:
    embedder = HashEmbedder()
    names = list(DOCUMENTS)
    matrix = embedder.embed_texts([DOCUMENTS[n] for n in names], 1536)
    checked = 0
    for name, text in DOCUMENTS.items():
        words = text.split()
        for start in (0, len(words) // 3, len(words) // 2, len(words) - 5):
            query = " ".join(words[start : start + 5])
            (q,) = embedder.embed_texts([query], 1536)
            best, _ = top_k(q, matrix, 1)[0]
            assert names[best] == name, f"query {query!r} found {names[best]}, not {name}"
            checked += 1
    assert checked == 4 * len(DOCUMENTS)


@pytest.mark.parametrize("dimensions", [512, 769])  # 769: rows at odd offsets in a batch
def test_vectors_do_not_depend_on_batch_history_or_instance(dimensions: int) -> None:
    texts = list(DOCUMENTS.values())
    fresh = HashEmbedder().embed_texts(texts, dimensions)
    busy = HashEmbedder()
    busy.embed_texts(["unrelated words first, to shift every word id", *PARAPHRASES[0]], dimensions)
    busy.embed_texts(texts[::-1], 256)
    assert np.array_equal(busy.embed_texts(texts, dimensions), fresh)
    one_at_a_time = np.vstack([HashEmbedder().embed_texts([t], dimensions) for t in texts])
    assert np.array_equal(one_at_a_time, fresh)
    padded = busy.embed_texts(["padding"] * 300 + texts, dimensions)  # across a 256-row block edge
    assert np.array_equal(padded[300:], fresh)


_SUBPROCESS = """
import hashlib, sys
import numpy as np
from tvdb.services.local.embedder import HashEmbedder
texts = sys.stdin.read().split("\\x1e")
vectors = HashEmbedder().embed_texts(texts, 1536)
print(hashlib.sha256(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).hexdigest())
"""


def test_vectors_are_identical_across_processes() -> None:
    """Python's str hash is salted per process; the embedder must not depend on it."""
    texts = [*DOCUMENTS.values(), "日本語の文章", "Ærøskøbing façade"]
    expected = digest(HashEmbedder().embed_texts(texts, 1536))
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS],
            input="\x1e".join(texts),
            capture_output=True,
            text=True,
            encoding="utf-8",
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            check=True,
        )
        assert result.stdout.strip() == expected


def test_known_vector_values_do_not_drift() -> None:
    """Stored vectors from earlier runs are compared with new query vectors: the projection is a format."""
    (vector,) = HashEmbedder().embed_texts(["tvdb embeds documents deterministically"], 8)
    expected = [-0.461031, -0.293152, 0.185797, -0.101440, 0.457461, 0.286852, 0.079724, -0.598991]
    np.testing.assert_allclose(vector, expected, atol=1e-6)


def test_concurrent_callers_get_the_same_vectors() -> None:
    texts = list(DOCUMENTS.values()) * 20
    expected = HashEmbedder().embed_texts(texts, 384)
    shared = HashEmbedder()
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(shared.embed_texts(texts, 384))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(np.array_equal(r, expected) for r in results)


def test_threads_adding_new_words_while_others_project_get_exact_vectors() -> None:
    """The numpy work runs outside the cache lock: threads that add words (and grow the folded
    tables) while others project with the arrays they took must all get a fresh instance's vectors."""
    sets = [[f"text {t}-{i} word{t}x{i} shared harbour tide{i % 7}" for i in range(700)] for t in range(4)]
    dims = [384, 1536, 384, 64]
    expected = [HashEmbedder().embed_texts(texts, d) for texts, d in zip(sets, dims, strict=True)]
    shared = HashEmbedder()
    results: dict[int, np.ndarray] = {}

    def work(t: int) -> None:
        results[t] = shared.embed_texts(sets[t], dims[t])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(results[t], expected[t]) for t in range(4))


async def test_embed_satisfies_the_protocol_and_counts_tokens_like_the_api() -> None:
    embedder = HashEmbedder()
    texts = ("hello world", "日本語の文章を埋め込む", "<|endoftext|> is plain text here")
    counts = count_tokens(list(texts))
    assert counts[0] == 2
    request = EmbeddingRequest(
        texts=texts, model="text-embedding-3-small", dimensions=512, token_count=sum(counts)
    )
    result = await embedder.embed(request)
    assert embedder.service == "openai" and embedder.implementation is Implementation.MOCK
    assert result.prompt_tokens == sum(counts)
    assert dict(result.usage) == {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    assert result.model == "text-embedding-3-small"
    assert np.array_equal(result.vectors, embedder.embed_texts(texts, 512))


def _request(
    texts: list[str], *, model: str = "text-embedding-3-small", dimensions: int = 1536
) -> EmbeddingRequest:
    return EmbeddingRequest(texts=tuple(texts), model=model, dimensions=dimensions, token_count=0)


async def test_c06_the_per_input_cap_is_enforced_like_the_api() -> None:
    embedder = HashEmbedder()
    for tokens in (8191, 8192):
        result = await embedder.embed(_request([" hello" * tokens]))
        assert result.prompt_tokens == tokens
    with pytest.raises(PermanentServiceError) as refused:
        await embedder.embed(_request([" hello" * 9000]))
    assert refused.value.status == 400
    assert str(refused.value) == (
        "This model's maximum context length is 8192 tokens, however you requested 9000 tokens "
        "(9000 in your prompt; 0 for the completion). Please reduce your prompt; or completion length."
    )


async def test_request_limits_are_refused_with_the_api_messages() -> None:
    embedder = HashEmbedder()
    with pytest.raises(PermanentServiceError, match=r"'\$\.input' is invalid") as too_many:
        await embedder.embed(_request(["word"] * 2049))
    assert too_many.value.status == 400
    with pytest.raises(PermanentServiceError, match="Requested 303000 tokens, max 300000") as too_big:
        await embedder.embed(_request([" hello" * 7575] * 40))
    assert too_big.value.code == "max_tokens_per_request"
    with pytest.raises(PermanentServiceError, match="does not support specifying dimensions"):
        await embedder.embed(_request(["word"], model="text-embedding-ada-002", dimensions=512))
    with pytest.raises(ValueError, match="input 0 is empty"):
        await embedder.embed(_request([" "]))
    ada = await embedder.embed(_request(["word"], model="text-embedding-ada-002", dimensions=1536))
    assert ada.vectors.shape == (1, 1536)


def test_embedding_throughput() -> None:
    """~2,000 chunks of ~200 tokens (0.4M tokens) well within the budget (the benchmark does 20,000)."""
    words = " ".join(DOCUMENTS.values()).split()
    texts = [" ".join(words[(i * 37) % 200 :][:150]) + f" chunk {i}" for i in range(2_000)]
    embedder = HashEmbedder()
    started = time.perf_counter()
    vectors = embedder.embed_texts(texts, 1536)
    elapsed = time.perf_counter() - started
    assert vectors.shape == (2_000, 1536)
    assert elapsed < 2.0, f"{elapsed:.2f}s for 2,000 chunks"
