"""`scenarios/real-embeddings-emulated.yaml` exercises the embedder's retry on every run, reruns in
the same data dir included: `reuse: false` keeps the injected 429 on a document embedding request,
where a rerun that reused the documents would have sent it to the retrieval query."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.openai_support import CANARY, emulator

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "scenarios" / "real-embeddings-emulated.yaml"
# what one run of the scenario writes for openai: the 429, its retry, then the retrieval query
RETRIED_EMBED = [("embed", "error", 1, 429), ("embed", "ok", 2, 200), ("query", "ok", 1, 200)]

pytestmark = pytest.mark.slow


def _run(cwd: Path, base_url: str, scenario: Path) -> dict[str, Any]:
    env = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": CANARY}
    done = subprocess.run([sys.executable, "-m", "tvdb", "run", str(scenario), "--json"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _openai_rows(cwd: Path, run_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(cwd / ".tvdb" / "tvdb.db") as db:
        return list(db.execute("SELECT stage, status, attempt, http_status FROM usage "
                               "WHERE run_id = ? AND service = 'openai' ORDER BY rowid", [run_id]))


def _twice(cwd: Path, scenario: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with emulator() as server:  # one server, as a developer reruns against one `tvdb emulate`
        return _run(cwd, server.openai_base_url, scenario), _run(cwd, server.openai_base_url, scenario)


def test_the_rerun_still_retries_a_document_embedding_request(tmp_path: Path) -> None:
    first, second = _twice(tmp_path, REAL)
    assert _openai_rows(tmp_path, first["run_id"]) == RETRIED_EMBED
    assert second["passed"] is True
    assert [d["reused_from"] for d in second["documents"]] == [None] * 4  # embedded again, not reused
    assert second["requests"] == {"embed/real": 2, "parse/mock": 4, "query/real": 1}
    assert _openai_rows(tmp_path, second["run_id"]) == RETRIED_EMBED  # the 429 and its retry: embed, not query
    verdicts = {e["description"]: (e["passed"], e["detail"]) for e in second["expectations"]}
    assert verdicts["openai embed requests with status error ≥ 1 and ≤ 1"] == (True, "got 1")
    assert verdicts["openai embed retries ≥ 1"] == (True, "got 1")


def test_without_reuse_false_the_rerun_fails_its_embed_stage_expectations(tmp_path: Path) -> None:
    # the scenario as it was: its rerun reuses the documents, the 429 hits the query, and the
    # embed-stage request expectations now say so instead of passing
    scenario = yaml.safe_load(REAL.read_text())
    del scenario["reuse"]
    scenario["documents"] = [str(REAL.parent / d) for d in scenario["documents"]]
    scenario["expectations"]["retrieval"][0]["document"] = str(REAL.parent / "quickstart" / "field-guide.pdf")
    path = tmp_path / "reusing.yaml"
    path.write_text(yaml.safe_dump(scenario, allow_unicode=True))
    first, second = _twice(tmp_path, path)
    assert first["passed"] is True
    assert _openai_rows(tmp_path, second["run_id"]) == [("query", "error", 1, 429), ("query", "ok", 2, 200)]
    assert [(e["description"], e["detail"]) for e in second["expectations"] if not e["passed"]] == [
        ("openai embed requests with status error ≥ 1 and ≤ 1", "got 0"), ("openai embed retries ≥ 1", "got 0")]
