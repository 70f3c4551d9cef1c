"""A bug in one embed request (here: storing its vectors raises once) fails the documents still in
the embed stage and nothing else: later windows' documents complete, and no document is left
`embedded` (moved there by the drain before it raised) in a finished run. The model's per-request
limits are shrunk so that a few documents make several requests and windows."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest

import tvdb.pipeline.embed
from tests.run_support import mock_scenario
from tvdb import catalog
from tvdb.clock import FakeClock
from tvdb.scenarios.runner import start_run

MODEL = "text-embedding-3-small"
SMALL = dataclasses.replace(catalog.EMBEDDING_MODELS[MODEL], max_inputs_per_request=8, max_tokens_per_request=700)


@pytest.mark.parametrize(("window", "lookahead", "failed_documents"), [
    # one group of two requests: the first carried all of d0, the second fails; both were in the stage
    ("2", "2", ["d0.md", "d1.md"]),
    # groups of one request, a document per window: d0 (the first window's) left the stage, embedded,
    # in the second window's drain before its next request failed; it is validated and stored, not stranded
    ("1", "1", ["d1.md"]),
])
def test_a_failing_request_fails_only_the_documents_in_the_embed_stage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: str, lookahead: str, failed_documents: list[str],
) -> None:
    monkeypatch.setitem(catalog.EMBEDDING_MODELS, MODEL, SMALL)
    original, calls = tvdb.pipeline.embed.insert_vectors, [0]

    def fails_once(*args: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] == 2:  # the second request: the first one had carried all of d0
            raise RuntimeError("a bug while storing vectors")
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tvdb.pipeline.embed, "insert_vectors", fails_once)
    loaded, settings = mock_scenario(
        tmp_path, {f"d{n}.md": f"# {n}\n" + " ".join(f"w{n}x{i} tide" for i in range(100 if n == 0 else 300))
                   for n in range(6)},
        "chunking: {max_tokens: 100, overlap_tokens: 0}\n",
        {"TVDB_STREAMING_WINDOW_DOCUMENTS": window, "TVDB_STREAMING_LOOKAHEAD_REQUESTS": lookahead})
    asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    with sqlite3.connect(settings.database_path) as db:
        jobs = db.execute("SELECT path, state, error_code, error_message FROM jobs ORDER BY ordinal").fetchall()
    states = [(Path(p).name, s, code) for p, s, code, _ in jobs]
    failed = [name for name, state, _ in states if state == "failed"]
    # the documents in the embed stage when the bug hit fail, with the bug named; all others complete
    assert failed == failed_documents, states
    assert {(code, message) for (name, _, _), (_, _, code, message) in zip(states, jobs, strict=True)
            if name in failed} == {("internal", "a bug while storing vectors")}
    assert [s for name, s, _ in states if name not in failed] == ["complete"] * (6 - len(failed))
    assert calls[0] > 3
