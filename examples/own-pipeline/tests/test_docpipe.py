"""docpipe's own tests, as a team would write them with tvdb: the pipeline code is unchanged; a
`tvdb.session` serves its llama-cloud and openai SDK calls (mock: offline and free; replay: the
recorded real answers) and meters what they would have cost."""

from __future__ import annotations

from pathlib import Path

import pytest
from docpipe.chunker import chunk
from docpipe.ingest import ingest
from docpipe.search import query
from docpipe.store import get_store

import tvdb

HERE = Path(__file__).resolve().parents[1]
DOCS = [HERE / "docs" / n for n in ("getting-started.md", "release-notes.txt", "field-guide.pdf")]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCPIPE_DB", str(tmp_path / "vectors.db"))
    monkeypatch.setenv("DOCPIPE_POLL_S", "0.01")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")  # the SDKs want a key; mock sends nothing
    monkeypatch.setenv("LLAMA_CLOUD_API_KEY", "llx-test-not-a-real-key")
    monkeypatch.setenv("TVDB_DATA_DIR", str(tmp_path / ".tvdb"))  # tvdb's ledger for this test only
    for name in ("OPENAI_BASE_URL", "LLAMA_CLOUD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_chunks_keep_paragraphs_and_overlap() -> None:
    assert chunk("a b c d e f g h i j", max_words=4, overlap_words=1) == ["a b c d", "d e f g", "g h i j"]
    assert chunk("one two\n\nthree four", max_words=10, overlap_words=2) == ["one two three four"]
    assert chunk("   \n\n  ") == []


def test_ingest_and_search_offline_under_a_mock_session(tmp_path: Path) -> None:
    with tvdb.session(mode="mock", block_network=True, cwd=tmp_path) as s:
        chunks = [ingest(path, path.read_bytes()) for path in DOCS]
        best = query("clean barnacles off the sensor window", top_k=3)
    assert all(n >= 1 for n in chunks)
    assert Path(best[0]).name == "field-guide.pdf"
    summary = s.summary()
    assert summary.spent_usd == 0 and summary.would_cost_usd is not None and summary.would_cost_usd < 0.01
    s.expect(max_cost_usd=0.01, requests=[{"service": "openai", "min": 4, "max": 4},
                                          {"service": "llamaparse", "status": "error", "max": 0}])


def test_the_recorded_real_answers_replay_to_the_same_vectors(tmp_path: Path) -> None:
    with tvdb.session(mode="replay", cassette=HERE / "cassettes" / "own-pipeline.yaml", cwd=tmp_path) as s:
        for path in DOCS:
            ingest(path, path.read_bytes())
    store = get_store(str(tmp_path / "vectors.db"))
    assert {Path(d).name for d in store.documents()} == {p.name for p in DOCS}
    assert len(store.vectors(str(DOCS[0]))[0]) == 1536
    assert s.summary().spent_usd == 0 and s.summary().replayed > 0
