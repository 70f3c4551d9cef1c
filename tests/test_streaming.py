"""Streaming in bounded memory changes nothing in a run's result.

The same corpus run with one document per window and with every document in one window gives the
same chunks, the same vectors bit for bit, the same usage rows (request by request: which chunks,
how many tokens, what it cost; in order within each stage, since windows interleave the stages in
time) and the same job histories. The model's per-request limits are made
small (a spec with 8 inputs / 700 tokens per request) so that a few small documents already fill
several request groups, and groups span documents of different windows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tvdb import catalog
from tvdb.clock import SystemClock
from tvdb.config import resolve_settings
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import start_run
from tvdb.services.batching import group_sizes, lower_bound, plan_batches

MODEL = "text-embedding-3-small"
SMALL = dataclasses.replace(catalog.EMBEDDING_MODELS[MODEL], max_inputs_per_request=8, max_tokens_per_request=700)


def _prose(seed: int, sentences: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["harbour", "sensor", "tide", "gauge", "barnacle", "window", "calibrate", "buoy", "salinity",
             "anchor", "current", "report", "export", "signal", "battery", "mooring", "drift", "alarm"]
    return "\n".join(f"{i}. " + " ".join(rng.choice(words, size=12)) + f" (note {seed}-{i})."
                     for i in range(sentences))


def _run(tmp_path: Path, name: str, window: int, lookahead: int) -> dict[str, Any]:
    data = tmp_path / name
    settings = resolve_settings(
        cwd=tmp_path, scenario=load_scenario(tmp_path / "s.yaml").scenario.settings_layer(),
        environ={"TVDB_DATA_DIR": str(data), "TVDB_STREAMING_WINDOW_DOCUMENTS": str(window),
                 "TVDB_STREAMING_LOOKAHEAD_REQUESTS": str(lookahead)})
    result = asyncio.run(start_run(load_scenario(tmp_path / "s.yaml"), settings, clock=SystemClock()))
    db = sqlite3.connect(settings.database_path)
    run_id = result.run_id

    def local(job_id: str) -> str:  # job ids carry the run id, which differs between the two runs
        return job_id.replace(run_id, "RUN")

    # in order within each stage: windows interleave the stages' rows in time
    usage = [(r[0], r[1], r[2], r[3], r[4], r[5], local(r[6] or ""))
             for r in db.execute("SELECT service, stage, model, units, cost_nusd, status, job_ids FROM usage "
                                 "WHERE run_id = ? ORDER BY stage, id", [run_id])]
    return {
        "statuses": [d.status for d in result.documents],
        "passed": [(e.description, e.passed, e.detail) for e in result.expectations],
        "chunks": [(local(c), t, n, p) for c, t, n, p in
                   db.execute("SELECT chunk_id, text, token_count, pages FROM chunks ORDER BY chunk_id")],
        "vectors": [(local(c), m, d, bytes(v), i) for c, m, d, v, i in db.execute(
            "SELECT chunk_id, model, dimensions, vector, implementation FROM vectors ORDER BY chunk_id")],
        "usage": usage,
        "events": [(local(j), f, t, d) for j, f, t, d in db.execute(
            "SELECT job_id, from_state, to_state, detail FROM events WHERE run_id = ? ORDER BY job_id, id",
            [run_id])],
        "jobs": [(local(j), s, c, t) for j, s, c, t in db.execute(
            "SELECT job_id, state, chunks, tokens FROM jobs WHERE run_id = ? ORDER BY ordinal", [run_id])],
        "token_counts": [n for (n,) in db.execute(
            "SELECT c.token_count FROM chunks c JOIN jobs j USING (job_id) ORDER BY j.ordinal, c.idx")],
    }


@pytest.fixture()
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(catalog.EMBEDDING_MODELS, MODEL, SMALL)
    for n in range(5):
        (tmp_path / f"doc{n}.md").write_text(_prose(n, 8 + 5 * n), encoding="utf-8")
    (tmp_path / "s.yaml").write_text(
        "name: stream\ndocuments: ['doc*.md']\nchunking: {max_tokens: 60, overlap_tokens: 8}\n"
        "expectations:\n  vectors: {dimension: 1536, finite: true, unit_norm: true}\n"
        "  retrieval:\n    - {query: 'note 3-7 note 3-8 note 3-9', document: doc3.md, top_k: 4}\n",
        encoding="utf-8",
    )
    return tmp_path


def test_a_run_is_identical_with_a_small_and_a_large_window(corpus: Path) -> None:
    small = _run(corpus, "small", window=1, lookahead=2)
    large = _run(corpus, "large", window=100, lookahead=2)
    assert small["statuses"] == ["complete"] * 5
    assert all(ok for _, ok, _ in small["passed"]), small["passed"]
    for key in ("chunks", "vectors", "usage", "events", "jobs", "passed"):
        assert small[key] == large[key], key
    # requests span documents (several job ids in one usage row), and there are several groups
    embeds = [u for u in small["usage"] if u[1] == "embed"]
    assert any("," in u[6] for u in embeds)
    counts = small["token_counts"]
    sizes = group_sizes(counts, SMALL, 2)
    assert len(sizes) >= 3 and sum(sizes) == len(counts) == len(small["vectors"])
    # the requests are the groups' plans, in order: each group at its own lower bound
    expected, start = [], 0
    for size in sizes:
        group = counts[start:start + size]
        expected += [sum(group[i] for i in batch) for batch in plan_batches(group, SMALL)]
        assert len(plan_batches(group, SMALL)) == lower_bound(group, SMALL)
        start += size
    assert [int(u[3]) for u in embeds] == expected


def test_the_lookahead_changes_the_requests_but_never_the_chunks_or_vectors(corpus: Path) -> None:
    one = _run(corpus, "one", window=2, lookahead=1)
    many = _run(corpus, "many", window=2, lookahead=50)
    assert one["chunks"] == many["chunks"] and one["vectors"] == many["vectors"]
    tokens = sum(one["token_counts"])
    billed = [sum(int(u[3]) for u in r["usage"] if u[1] == "embed") for r in (one, many)]
    assert billed == [tokens, tokens]  # every token billed once, however the requests were cut
    # one group for the whole corpus: exactly the corpus' lower bound
    assert len([u for u in many["usage"] if u[1] == "embed"]) == lower_bound(many["token_counts"], SMALL)


def test_group_sizes_are_the_longest_runs_the_lookahead_can_carry() -> None:
    spec = dataclasses.replace(SMALL, max_inputs_per_request=3, max_tokens_per_request=10)
    assert group_sizes([], spec, 1) == []
    assert group_sizes([4, 4, 4, 4], spec, 1) == [2, 2]  # 10 tokens: two 4s, not three
    assert group_sizes([1] * 7, spec, 1) == [3, 3, 1]  # 3 inputs
    assert group_sizes([1] * 7, spec, 2) == [6, 1]
    assert group_sizes([2, 30, 2], spec, 1) == [1, 1, 1]  # an input over a group's tokens goes alone
