"""Scenario faults in mock mode: the local services raise the same typed errors a real client would,
the one retry policy handles them, and the ledger shows every attempt."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.errors import ScenarioError
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import start_run


def _run(tmp_path: Path, extra: str) -> tuple[RunResult, FakeClock, Path]:
    (tmp_path / "a.md").write_text("# Alpha\nThe alpha document talks about tide sensors and calibration.")
    (tmp_path / "b.txt").write_text("Beta notes: battery packs last eighteen months in cold water.")
    path = tmp_path / "faults.yaml"
    path.write_text("name: faults\ndocuments: [a.md, b.txt]\n" + extra)
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
    clock = FakeClock()
    result = asyncio.run(start_run(loaded, settings, clock=clock))
    return result, clock, settings.database_path


def _attempts(db: Path, stage: str) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT attempt, status, error_code FROM usage WHERE stage = ? ORDER BY id",
                            [stage]).fetchall()


def test_transient_embed_error_is_retried_after_retry_after(tmp_path: Path) -> None:
    result, clock, db = _run(tmp_path, (
        "faults:\n  - {service: openai, kind: status, status: 429, code: rate_limit_exceeded, retry_after: 2, nth: 1}\n"
        "expectations:\n  requests:\n    - {service: openai, retries: true, min: 1, max: 1}\n"
    ))
    assert result.passed, result.expectations
    assert _attempts(db, "embed") == [(1, "error", "rate_limit_exceeded"), (2, "ok", None)]
    assert 2.0 in clock.sleeps  # honoured retry-after on the injected clock, no real waiting


def test_quota_error_is_permanent_and_fails_the_documents(tmp_path: Path) -> None:
    result, _, db = _run(tmp_path, (
        "faults:\n  - {service: openai, kind: status, status: 429, type: insufficient_quota}\n"
    ))
    assert _attempts(db, "embed") == [(1, "error", "insufficient_quota")]  # exactly one request
    assert {d.error_code for d in result.documents} == {"quota"}
    assert result.exit_code == 1


def test_parse_fault_fails_only_that_document(tmp_path: Path) -> None:
    result, _, db = _run(tmp_path, (
        "faults:\n  - {service: llamaparse, kind: status, status: 400, nth: 1}\n"
        "expectations:\n  documents:\n    - {document: a.md, status: failed, error_code: service_error}\n"
    ))
    assert result.passed, [e for e in result.expectations if not e.passed]
    statuses = {Path(d.path).name: d.status for d in result.documents}
    assert statuses == {"a.md": "failed", "b.txt": "complete"}


def test_bad_vector_fault_fails_validation(tmp_path: Path) -> None:
    result, _, _ = _run(tmp_path, "faults:\n  - {service: openai, kind: bad_vector, vector: nan}\n")
    assert {d.error_code for d in result.documents} == {"invalid_vector"}


def test_bad_fault_is_a_scenario_error_with_line(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [a.md]\nfaults:\n  - service: openai\n    kind: explode\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line == 5 and info.value.key == "faults[0].kind"


def test_nth_faults_hit_the_same_documents_every_time(tmp_path: Path) -> None:
    """Parse calls start in document order even with 4 in flight, so `nth` names documents reliably."""
    for attempt in range(5):
        run_dir = tmp_path / str(attempt)
        run_dir.mkdir()
        for i in range(8):
            (run_dir / f"d{i}.txt").write_text(f"document number {i} about harbour sensor {i}")
        path = run_dir / "s.yaml"
        path.write_text("name: nth\ndocuments: ['d*.txt']\nparse: {concurrency: 4}\n"
                        "faults:\n  - {service: llamaparse, kind: status, status: 400, nth: [3, 6]}\n")
        loaded = load_scenario(path)
        settings = resolve_settings(cwd=run_dir, environ={"TVDB_DATA_DIR": str(run_dir / ".tvdb")},
                                    scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
        result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
        failed = sorted(Path(d.path).name for d in result.documents if d.status == "failed")
        assert failed == ["d2.txt", "d5.txt"], attempt


def test_backoff_jitter_is_the_same_in_every_run_of_a_scenario(tmp_path: Path) -> None:
    """Retries without a retry-after back off with jitter; two runs of one scenario sleep alike."""
    faults = ("faults:\n  - {service: openai, kind: status, status: 503, nth: [1, 2]}\n"
              "  - {service: llamaparse, kind: status, status: 500, nth: 1}\n")
    sleeps = []
    for attempt in ("first", "second"):
        run_dir = tmp_path / attempt
        run_dir.mkdir()
        result, clock, db = _run(run_dir, faults)
        assert result.exit_code == 0
        assert [a for a, _, _ in _attempts(db, "embed")] == [1, 2, 3]
        sleeps.append(clock.sleeps)
    assert len(sleeps[0]) == 3  # one parse retry, two embed retries
    assert sleeps[0] == sleeps[1]
    assert len(set(sleeps[0])) == 3  # still jittered
