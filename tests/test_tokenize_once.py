"""Tokenize once: the chunker's token counts travel with each chunk to the embedder and the ledger.

A counting wrapper around tiktoken's encoding is installed where each module looks it up; a mock
run then shows that no chunk's text went through the tokenizer again (the chunker counts a window
from its document's one encode, re-encoding only the few characters at its edges), the embedder
and the embedding driver counted nothing, and the ledger billed exactly the true token counts.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tvdb.clock import SystemClock
from tvdb.config import resolve_settings
from tvdb.domain import EmbeddingRequest
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import start_run
from tvdb.services.local.embedder import HashEmbedder
from tvdb.tokens import get_encoding

MODEL = "text-embedding-3-small"


class CountingEncoding:
    """tiktoken's Encoding, counting how often each text is tokenized (every other attribute delegates)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: Counter[str] = Counter()
        self.ordinary: Counter[str] = Counter()  # the encode_ordinary calls alone

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls[text] += 1
        self.ordinary[text] += 1
        return list(self.real.encode_ordinary(text))

    def encode_to_numpy(self, text: str, **kwargs: Any) -> Any:
        self.calls[text] += 1
        return self.real.encode_to_numpy(text, **kwargs)

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        self.calls[text] += 1
        return list(self.real.encode(text, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _install(monkeypatch: pytest.MonkeyPatch, module: str) -> CountingEncoding:
    counting = CountingEncoding(get_encoding("cl100k_base"))
    monkeypatch.setattr(f"{module}.get_encoding", lambda name="cl100k_base": counting)
    return counting


def _prose(seed: int, sentences: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["harbour", "sensor", "tide", "gauge", "barnacle", "window", "calibrate", "buoy", "salinity",
             "anchor", "current", "report", "export", "signal", "battery", "mooring", "drift", "alarm"]
    return "\n".join(f"{i}. " + " ".join(rng.choice(words, size=12)) + f" (note {seed}-{i})."
                     for i in range(sentences))


def test_a_mock_run_tokenizes_each_chunk_once_and_bills_the_true_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        (tmp_path / f"doc{n}.md").write_text(_prose(n, 60), encoding="utf-8")
    (tmp_path / "s.yaml").write_text(
        "name: once\ndocuments: ['doc*.md']\nchunking: {max_tokens: 96, overlap_tokens: 12}\n"
        "expectations:\n  retrieval:\n    - {query: calibrate the salinity gauge, document: doc1.md, top_k: 50}\n",
        encoding="utf-8",
    )
    chunker = _install(monkeypatch, "tvdb.pipeline.chunk")
    embedder = _install(monkeypatch, "tvdb.services.local.embedder")
    counter = _install(monkeypatch, "tvdb.tokens")  # count_tokens: the driver's fallback, the query
    loaded = load_scenario(tmp_path / "s.yaml")
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                scenario=loaded.scenario.settings_layer())
    result = asyncio.run(start_run(loaded, settings, clock=SystemClock()))
    assert [d.status for d in result.documents] == ["complete"] * 3

    db = sqlite3.connect(settings.database_path)
    chunks = db.execute("SELECT text, token_count FROM chunks").fetchall()
    assert len(chunks) > 3 * 5 and len({t for t, _ in chunks}) == len(chunks)
    assert all(chunker.calls[text] == 0 for text, _ in chunks)  # counted from its document's tokens
    edges = sum(len(text) * n for text, n in chunker.ordinary.items())
    assert 0 < edges < 0.10 * sum(len(text) for text, _ in chunks)  # its first and last words: 5.7 % here
    assert sum(embedder.calls.values()) == 0  # HashEmbedder used the counts the request carried
    assert dict(counter.calls) == {"calibrate the salinity gauge": 1}  # only the query, never a chunk
    real = get_encoding("cl100k_base")
    assert all(count == len(real.encode_ordinary(text)) for text, count in chunks)
    billed = db.execute("SELECT SUM(units) FROM usage WHERE stage = 'embed'").fetchone()[0]
    assert billed == sum(count for _, count in chunks)


def test_hash_embedder_takes_the_counts_a_request_carries(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = _install(monkeypatch, "tvdb.services.local.embedder")
    texts = ("tide gauge", "barnacles on the window")
    known = HashEmbedder().embed_request(EmbeddingRequest(texts, MODEL, 64, 9, (2, 7)))
    assert (known.prompt_tokens, sum(counting.calls.values())) == (9, 0)
    counted = HashEmbedder().embed_request(EmbeddingRequest(texts, MODEL, 64, 0))
    assert counted.prompt_tokens == 2 + 7 and counting.calls == Counter(texts)
    assert np.array_equal(known.vectors, counted.vectors)
    with pytest.raises(ValueError, match="1 token counts for 2 inputs"):
        HashEmbedder().embed_request(EmbeddingRequest(texts, MODEL, 64, 9, (9,)))
