"""Budgets inside runs (real mode against the emulator, injected clock): fail and defer policies,
resume once the window has room, and the per-run budget."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

from tests.openai_support import KEY, emulator
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import resume_run, start_run


def _scenario(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text(" ".join(f"alpha{i} tide" for i in range(1000)))  # ~2,000+ tokens
    path = tmp_path / "s.yaml"
    path.write_text("name: money\nmode: real\nservices: {parser: mock, embedder: real}\ndocuments: [a.txt]\n"
                    "chunking: {max_tokens: 4000, overlap_tokens: 0}\n")
    return path


def _settings(tmp_path: Path, base_url: str, **env: str):  # type: ignore[no-untyped-def]
    loaded = load_scenario(_scenario(tmp_path))
    environ = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url, **env}
    return loaded, resolve_settings(cwd=tmp_path, environ=environ, scenario=loaded.scenario.settings_layer(),
                                    scenario_doc=loaded.source)


def test_daily_budget_refusal_fails_the_job_and_exits_3(tmp_path: Path) -> None:
    with emulator() as server:
        loaded, settings = _settings(tmp_path, server.openai_base_url, TVDB_DAILY_BUDGET_USD="0.00001")
        result: RunResult = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
        assert server.count() == 0  # refused before any HTTP request
    (doc,) = result.documents
    assert (doc.status, doc.error_code) == ("failed", "budget")
    assert "daily" in (doc.error_message or "") and "budget" in (doc.error_message or "")
    assert result.exit_code == 3


def test_defer_parks_the_job_until_the_next_day_then_resume_finishes(tmp_path: Path) -> None:
    from tvdb.db import open_db
    from tvdb.domain import Implementation
    from tvdb.ledger.usage import Pricing, UsageRow, insert_usage

    clock = FakeClock(dt.datetime(2026, 11, 29, 23, 0, tzinfo=dt.UTC))
    with emulator() as server:
        loaded, settings = _settings(tmp_path, server.openai_base_url, TVDB_DAILY_BUDGET_USD="0.0001",
                                     TVDB_ON_BUDGET_EXCEEDED="defer")
        # earlier today something already spent $0.00008 of the $0.0001
        insert_usage(open_db(settings.database_path), UsageRow(
            ts=clock.now(), run_id=None, stage="embed", service="openai", implementation=Implementation.REAL,
            model="text-embedding-3-small", units=4000, unit="tokens", pricing=Pricing(80_000, 80_000, "x"),
        ))
        first = asyncio.run(start_run(loaded, settings, clock=clock))
        (doc,) = first.documents
        assert (doc.status, doc.error_code, first.exit_code) == ("deferred", "budget", 3)
        with sqlite3.connect(settings.database_path) as conn:
            until = conn.execute("SELECT deferred_until FROM jobs").fetchone()[0]
        assert until.startswith("2026-11-30T00:00:00")

        # still the same day: still no room, deferred again, nothing sent
        again = asyncio.run(resume_run(first.run_id, settings, clock=clock))
        assert again.documents[0].status == "deferred" and server.count() == 0

        clock.advance(3600)  # midnight UTC: a new daily window
        done = asyncio.run(resume_run(first.run_id, settings, clock=clock))
        assert done.documents[0].status == "complete", done.documents[0]
        assert done.exit_code == 0 and server.count() == 1


def test_request_larger_than_the_whole_budget_fails_instead_of_deferring(tmp_path: Path) -> None:
    with emulator() as server:
        loaded, settings = _settings(tmp_path, server.openai_base_url, TVDB_DAILY_BUDGET_USD="0.00001",
                                     TVDB_ON_BUDGET_EXCEEDED="defer")
        result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    assert (result.documents[0].status, result.documents[0].error_code) == ("failed", "budget")


def test_run_budget_is_enforced_per_run(tmp_path: Path) -> None:
    with emulator() as server:
        loaded, settings = _settings(tmp_path, server.openai_base_url, TVDB_BUDGET_MAX_USD="0.00001")
        result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
        assert server.count() == 0
    assert result.documents[0].error_code == "budget"
    assert "run" in (result.documents[0].error_message or "")



def test_a_refused_batch_tells_each_document_the_cost_is_the_requests_and_how_to_fix_it(tmp_path: Path) -> None:
    # two documents' chunks go in one embedding request: the $ requested is that request's estimate,
    # not either document's own, and the message says which setting lets it through
    for name in ("b", "c"):
        (tmp_path / f"{name}.txt").write_text(" ".join(f"{name}{i} reef" for i in range(100)))
    (tmp_path / "s.yaml").write_text("name: batch\nmode: real\nservices: {parser: mock, embedder: real}\n"
                                     "documents: [b.txt, c.txt]\n")
    loaded = load_scenario(tmp_path / "s.yaml")
    with emulator() as server:
        environ = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": KEY,
                   "OPENAI_BASE_URL": server.openai_base_url, "TVDB_BUDGET_MAX_USD": "0.000001"}
        settings = resolve_settings(cwd=tmp_path, environ=environ, scenario=loaded.scenario.settings_layer(),
                                    scenario_doc=loaded.source)
        result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
        assert server.count() == 0
    expected = (f"run {result.run_id} budget $0.000001 would be exceeded: spent $0, reserved $0, requested "
                "$0.000012 (the estimated cost of one embedding request covering 2 documents); to allow "
                "it, raise the run budget to at least $0.000012: --max-usd, or budget.max_usd in the scenario or "
                "tvdb.yaml")
    assert [(d.error_code, d.error_message) for d in result.documents] == [("budget", expected)] * 2
    assert result.exit_code == 3
