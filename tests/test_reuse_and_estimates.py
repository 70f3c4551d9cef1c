"""Issue 7, items 10 and 12: the reuse key covers everything that changes a stored result, and the
LlamaParse page estimate reads the PDF's page tree; a 0-byte file is `empty`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.openai_support import KEY, emulator
from tvdb.clock import FakeClock
from tvdb.config import Settings, resolve_settings
from tvdb.db import open_db
from tvdb.errors import DocumentError, ErrorCode
from tvdb.ledger.prices import PriceTable
from tvdb.pipeline.context import settings_key
from tvdb.pipeline.stages import estimate_pages, read_document
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import start_run
from tvdb.services.calls import ServiceCaller
from tvdb.services.local.embedder import HashEmbedder
from tvdb.services.router import ServiceRouter, fixed_router


def _services(embedder: Any) -> ServiceRouter:
    caller = ServiceCaller(db=open_db(":memory:"), prices=PriceTable.load(), clock=FakeClock())
    return fixed_router(caller, embedder=embedder)


def _key(settings: Settings, embedder: Any = None) -> str:
    return settings_key(settings, _services(embedder or HashEmbedder()))


def test_the_reuse_key_changes_with_everything_that_changes_a_result() -> None:
    from tvdb.services.remote.openai_embedder import build_openai_embedder

    base = Settings()
    keys = {
        "base": _key(base),
        "tier": _key(Settings(parse={"tier": "agentic"})),
        "chunking": _key(Settings(chunking={"max_tokens": 256})),
        "overlap": _key(Settings(chunking={"overlap_tokens": 0})),
        "model": _key(Settings(embedding={"model": "text-embedding-3-large"})),
        "dimensions": _key(Settings(embedding={"dimensions": 512})),
        "tokenizer": _key(Settings(embedding={"model": "text-embedding-ada-002"})),
    }
    real = [build_openai_embedder(Settings(openai_api_key=KEY, openai_base_url=url))
            for url in ("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "http://127.0.0.1:2/v1/")]
    keys["real endpoint 1"] = _key(base, real[0])
    keys["real endpoint 2"] = _key(base, real[1])
    assert len(set(keys.values())) == len(keys), keys
    assert _key(base, real[2]) == keys["real endpoint 2"]  # a trailing slash is the same endpoint
    assert _key(base) == keys["base"]  # and the key is stable


def test_vectors_from_one_endpoint_are_not_reused_against_another(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Alpha\nTide sensors need calibration every spring.")
    path = tmp_path / "s.yaml"
    path.write_text("name: endpoints\nmode: real\nservices: {parser: mock}\ndocuments: [a.md]\n")
    loaded = load_scenario(path)
    results = []
    with emulator() as first, emulator() as second:
        for server in (first, second, second):
            settings = resolve_settings(
                cwd=tmp_path, scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source,
                environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": KEY,
                         "OPENAI_BASE_URL": server.openai_base_url})
            results.append(asyncio.run(start_run(loaded, settings, clock=FakeClock())))
        assert (first.count(), second.count()) == (1, 1)
    assert [r.documents[0].reused_from is None for r in results] == [True, True, False]


def test_the_page_estimate_reads_the_page_tree(documents_dir: Path) -> None:
    pdf = (documents_dir / "pdflatex-4-pages.pdf").read_bytes()
    assert estimate_pages(pdf, "application/pdf") == 4  # a raw /Type /Page count finds none (1 after max)
    assert estimate_pages((documents_dir / "minimal-document.pdf").read_bytes(), "application/pdf") == 1
    # pypdf cannot open it: never fewer than 1
    assert estimate_pages((documents_dir / "invalid.pdf").read_bytes(), "application/pdf") >= 1
    assert estimate_pages(b"# notes", "text/markdown") == 1


def test_a_zero_byte_file_is_empty_not_a_scan(tmp_path: Path) -> None:
    (tmp_path / "blank.pdf").write_bytes(b"")
    with pytest.raises(DocumentError) as failed:
        read_document(tmp_path / "blank.pdf", 1024, 1.0)
    assert failed.value.code is ErrorCode.EMPTY and "OCR" not in str(failed.value)
    path = tmp_path / "s.yaml"
    path.write_text("name: blank\ndocuments: [blank.pdf]\nexpectations:\n  documents:\n"
                    "    - {document: blank.pdf, status: failed, error_code: empty}\n")
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
    result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    assert result.documents[0].error_code == "empty" and result.passed


def test_a_consistency_sample_over_the_model_limit_is_refused_before_anything_is_paid(tmp_path: Path) -> None:
    from tvdb.errors import ScenarioError

    (tmp_path / "a.md").write_text("# Alpha\nTide sensors.")
    path = tmp_path / "s.yaml"
    path.write_text("name: big-sample\ndocuments: [a.md]\nembedding:\n  consistency_check: {sample: 2049}\n")
    with pytest.raises(ScenarioError) as refused:  # when the scenario loads, before any run exists
        loaded = load_scenario(path)
        resolve_settings(cwd=tmp_path, environ={}, scenario=loaded.scenario.settings_layer(),
                         scenario_doc=loaded.source)
    assert "2048" in str(refused.value) and "s.yaml" in str(refused.value)
    Settings(embedding={"consistency_check": {"sample": 2048}})  # the limit itself is fine


async def test_a_check_that_cannot_be_made_never_fails_paid_vectors(tmp_path: Path) -> None:
    """The budget fits the embedding request but not the consistency check's: the vectors stand."""
    import numpy as np

    from tests.openai_support import metered_caller, settings_for
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.ledger.guard import CallScope
    from tvdb.services.embedding import embed_batches
    from tvdb.services.factory import budget_settings
    from tvdb.services.remote.openai_embedder import build_openai_embedder

    clock = FakeClock()
    texts = [f"tide sensor note {i}" for i in range(4)]
    with emulator() as server:
        settings = settings_for(server, daily_budget_usd=24 * 20 / 1e9,
                                embedding={"consistency_check": {"sample": 4}})
        caller = metered_caller(tmp_path, clock)
        caller.budget = LedgerBudget(caller.db, budget_settings(settings), clock)
        embedder = build_openai_embedder(settings)
        try:
            vectors = await embed_batches(texts, embedder=embedder, caller=caller, settings=settings, clock=clock,
                                          token_counts=[5] * 4, scope=CallScope("r", "s", "embed"))
        finally:
            await embedder.aclose()
        assert server.count() == 1  # the check was refused before sending
    assert vectors.shape == (4, 1536) and not np.isnan(vectors).any()


def test_a_reused_document_keeps_its_parse_warnings(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("Café résumé naïve: tide sensors need calibration. ".encode() + b"\xff end.\n")
    path = tmp_path / "s.yaml"
    path.write_text("name: warned\ndocuments: [a.txt]\n")
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
    first, second = (asyncio.run(start_run(loaded, settings, clock=FakeClock())) for _ in range(2))
    warning = ("1 invalid UTF-8 byte sequence replaced with U+FFFD",)
    assert first.documents[0].warnings == warning and first.documents[0].reused_from is None
    assert second.documents[0].reused_from is not None and second.documents[0].warnings == warning
    from tvdb.history.detail import run_detail
    from tvdb.history.store import RunStore

    shown = run_detail(RunStore(open_db(tmp_path / ".tvdb" / "tvdb.db")), second.run_id)
    assert [d.document.warnings for d in shown.documents] == [warning]  # `runs show` reads the stored job


def test_a_job_completed_under_a_partial_fault_is_reused_only_under_the_same_faults(tmp_path: Path) -> None:
    import shutil

    shutil.copy(Path(__file__).parents[1] / "scenarios" / "quickstart" / "field-guide.pdf", tmp_path / "g.pdf")
    fault = "faults:\n  - {service: llamaparse, kind: partial, pages: 1}\n"
    runs = []
    for name, faults in (("faulted", fault), ("clean", ""), ("faulted-again", fault), ("clean-again", "")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"name: {name}\ndocuments: [g.pdf]\n{faults}")
        loaded = load_scenario(path)
        settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                    scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
        runs.append(asyncio.run(start_run(loaded, settings, clock=FakeClock())).documents[0])
    faulted, clean, faulted_again, clean_again = runs
    assert any("PAGE_PARSING_FAILED" in w for w in faulted.warnings)
    # the clean run parses the whole document again instead of taking the one that lost a page
    assert clean.reused_from is None and not any("PAGE_PARSING_FAILED" in w for w in clean.warnings)
    assert clean.tokens > faulted.tokens
    # the same faults (or none) find their own earlier job
    assert faulted_again.reused_from is not None and faulted_again.tokens == faulted.tokens
    assert clean_again.reused_from is not None and clean_again.tokens == clean.tokens
