"""The upload stage stores a window's files on one worker thread: a run stopped meanwhile (Ctrl-C)
lets that thread end after the file in hand, not after the whole window, and loses nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.run_support import mock_scenario
from tvdb.clock import FakeClock
from tvdb.db import open_db
from tvdb.pipeline import stages
from tvdb.scenarios.runner import resume_run, start_run


def test_a_stopped_run_stores_no_file_after_the_one_in_hand_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded, settings = mock_scenario(tmp_path, {f"d{n}.md": f"# {n}\nsensor reading {n}" for n in range(8)})
    original, stored = stages.store_document, []
    main: list[asyncio.Task[object]] = []

    def store(ctx: object, job: stages.Job) -> object:
        stored.append(Path(job.path).name)
        if len(stored) == 1:  # the run stops while the first file is in hand
            main[0].get_loop().call_soon_threadsafe(main[0].cancel)
            deadline = time.monotonic() + 10
            while not main[0].done() and time.monotonic() < deadline:
                time.sleep(0.01)
        return original(ctx, job)  # type: ignore[arg-type]

    monkeypatch.setattr(stages, "store_document", store)

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        main.append(task)
        await start_run(loaded, settings, clock=FakeClock())

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert stored == ["d0.md"]
    db = open_db(settings.database_path)
    assert db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall() == [("pending", 8)]
    (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    result = asyncio.run(resume_run(run_id, settings, clock=FakeClock(), force=True))
    assert [d.status for d in result.documents] == ["complete"] * 8
