"""The whole pipeline (mock mode) over every real document in the shared corpus."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tvdb.clock import SystemClock
from tvdb.config import resolve_settings
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import start_run

CorpusRun = tuple[dict[str, dict[str, object]], Path, object]

FAILS = {
    "libreoffice-writer-password.pdf": "encrypted",
    "invalid.pdf": "corrupt",
    "c02-22.pdf": "no_text",
    "fake-text-all-whitespace.txt": "no_text",
}
TEXT = {
    "minimal-document.pdf": "Lorem ipsum dolor sit amet",
    "pdflatex-4-pages.pdf": "here is some text without a meaning",
    "r6-empty-password.pdf": "pdf encryption test",
    "selenium-pypdf-issue-177.pdf": "Hello World",
    "umlauts-non-utf8.md": "können",
    "docx-tables.docx": "Lorem ipsum",
    "handbook-1p.docx": "CHAPTER 1",
    "multilang.pdf": "Привет, мир",
    "korean-text-with-tables.pdf": "적립 제외 대상",
    "agstat.pdf": "MARKETABLE SURPLUS",
    "example-10k-1p.html": "TRANSITION REPORT PURSUANT TO SECTION 13",
}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    from tests.conftest import DOCUMENTS

    tmp = tmp_path_factory.mktemp("corpus")
    lines = ["name: corpus", f"documents: ['{DOCUMENTS}/*']", "expectations:", "  documents:"]
    for name, code in FAILS.items():
        lines += [f"    - document: {name}", "      status: failed", f"      error_code: {code}"]
    (tmp / "corpus.yaml").write_text("\n".join(lines) + "\n")
    loaded = load_scenario(tmp / "corpus.yaml")
    settings = resolve_settings(cwd=tmp, environ={"TVDB_DATA_DIR": str(tmp / ".tvdb")})
    result = asyncio.run(start_run(loaded, settings, clock=SystemClock()))
    docs = {Path(d.path).name: d.as_json() for d in result.documents}
    return docs, settings.database_path, result


def test_every_corpus_file_is_accounted_for(corpus_run: CorpusRun) -> None:
    from tests.conftest import DOCUMENTS

    docs, _, result = corpus_run
    assert set(docs) == {p.name for p in DOCUMENTS.iterdir()}
    assert set(docs) <= set(FAILS) | set(TEXT), "a new corpus file needs an expected outcome here"
    assert result.passed, [e for e in result.expectations if not e.passed]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(FAILS))
def test_bad_documents_fail_their_own_job(corpus_run: CorpusRun,
                                          name: str) -> None:
    docs, _, _ = corpus_run
    d = docs[name]
    assert (d["status"], d["error_code"], d["chunks"]) == ("failed", FAILS[name], 0)
    assert name in str(d["error_message"]) or d["error_message"]


@pytest.mark.parametrize("name", sorted(TEXT))
def test_good_documents_complete_with_their_text(corpus_run: CorpusRun,
                                                 name: str) -> None:
    docs, db, _ = corpus_run
    d = docs[name]
    assert d["status"] == "complete", d
    assert d["chunks"] >= 1 and d["vectors"] == d["chunks"]
    with sqlite3.connect(db) as conn:
        text = " ".join(r[0] for r in conn.execute("SELECT text FROM chunks WHERE job_id = ?", [d["job_id"]]))
    assert TEXT[name] in text
    assert "\ufffd" not in text  # no character split by a chunk boundary


def test_no_empty_input_ever_reaches_the_embedder(corpus_run: CorpusRun) -> None:
    _, db, _ = corpus_run
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM chunks WHERE trim(text) = ''").fetchone()[0] == 0
        assert conn.execute("SELECT MAX(token_count) FROM chunks").fetchone()[0] <= 512


def test_docx_table_cells_and_latin1_umlauts(corpus_run: CorpusRun) -> None:
    docs, db, _ = corpus_run
    with sqlite3.connect(db) as conn:
        def text_of(name: str) -> str:
            return " ".join(r[0] for r in conn.execute("SELECT text FROM chunks WHERE job_id = ?",
                                                       [docs[name]["job_id"]]))
        tables = text_of("docx-tables.docx")
        umlauts = text_of("umlauts-non-utf8.md")
    assert "Header Col 1" in tables and "A link example" in tables
    assert "äöüß" in umlauts
