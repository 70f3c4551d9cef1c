"""The validate stage checks what the stored vectors are without reading them back: each batch's
values were checked as its request returned (tests/test_embedding_driver.py), so here a document
must have one vector per chunk, all of the run's dimensions (counted from the space index)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from tests.run_support import mock_scenario
from tvdb.clock import FakeClock
from tvdb.domain import Stage
from tvdb.scenarios.runner import RunHooks, start_run


def _run(tmp_path: Path, tamper: str) -> dict[str, tuple[str, str | None, str | None]]:
    loaded, settings = mock_scenario(
        tmp_path, {f"{name}.md": f"# {name}\n" + " ".join(f"{name}word{i} tide" for i in range(900)) for name in "ab"},
        "chunking: {max_tokens: 200, overlap_tokens: 0}\n")

    def after(stage: Stage) -> None:
        if stage is Stage.EMBED:  # embedded, not yet validated: another process changes a's vectors
            with sqlite3.connect(settings.database_path) as conn:
                conn.execute(tamper)

    result = asyncio.run(start_run(loaded, settings, clock=FakeClock(), hooks=RunHooks(after_stage=after)))
    with sqlite3.connect(settings.database_path) as conn:
        rows = conn.execute("SELECT path, state, error_code, error_message FROM jobs").fetchall()
    assert result.passed is False or all(r[1] == "complete" for r in rows)
    return {Path(p).name: (state, code, message) for p, state, code, message in rows}


def test_a_document_missing_a_vector_fails_validation_and_the_other_completes(tmp_path: Path) -> None:
    jobs = _run(tmp_path, "DELETE FROM vectors WHERE chunk_id = (SELECT chunk_id FROM vectors "
                          "WHERE job_id = (SELECT job_id FROM jobs WHERE path LIKE '%a.md') LIMIT 1)")
    assert jobs["b.md"] == ("complete", None, None)
    state, code, message = jobs["a.md"]
    assert (state, code) == ("failed", "invalid_vector")
    found = re.fullmatch(r"(\d+) vectors for (\d+) chunks", message or "")
    assert found is not None, message
    assert int(found[1]) == int(found[2]) - 1 > 0


@pytest.mark.parametrize("dims", [768, 3072])
def test_vectors_of_other_dimensions_fail_validation(tmp_path: Path, dims: int) -> None:
    jobs = _run(tmp_path, f"UPDATE vectors SET dimensions = {dims} WHERE job_id = "
                          "(SELECT job_id FROM jobs WHERE path LIKE '%a.md')")
    assert jobs["a.md"] == ("failed", "invalid_vector", f"vectors have dimension {dims}, expected 1536")
    assert jobs["b.md"] == ("complete", None, None)
