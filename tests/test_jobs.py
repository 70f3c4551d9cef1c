"""The persisted job state machine: allowed transitions only, one event per transition."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvdb.clock import FakeClock
from tvdb.db import open_db
from tvdb.domain import JobState
from tvdb.errors import RunNotFound
from tvdb.pipeline.jobs import TRANSITIONS, IllegalTransition, JobStore
from tvdb.storage import Database


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(open_db(tmp_path / "t.db"), FakeClock())


def test_happy_path_writes_an_event_per_transition(store: JobStore) -> None:
    (job,) = store.create_run(run_id="r1", scenario="s", scenario_path="/s.yaml", mode="mock", spec={},
                              documents=["/a.txt"])
    assert job.state is JobState.PENDING and len(job.correlation_id) == 32
    path = [JobState.UPLOADED, JobState.PARSING, JobState.PARSED, JobState.CHUNKED, JobState.EMBEDDING,
            JobState.EMBEDDED, JobState.STORED, JobState.COMPLETE]
    for state in path:
        job = store.transition(job, state)
        assert job.state is state
    events = list(store.db.query("SELECT from_state, to_state FROM events WHERE job_id = ? ORDER BY id",
                                 [job.job_id]))
    assert [e["to_state"] for e in events] == ["pending", *[s.value for s in path]]
    assert all(e["correlation_id"] == job.correlation_id
               for e in store.db.query("SELECT correlation_id FROM events"))


def test_a_transition_carries_its_stage_time_in_the_same_update(store: JobStore) -> None:
    """`stage_time=` adds to the job's stage_ms and its `job_stages` row as `add_stage_time` does,
    without the extra read and write: the statements sent are the job read, one UPDATE, the event
    and the job_stages upsert."""
    (job,) = store.create_run(run_id="r1", scenario="s", scenario_path="/s.yaml", mode="mock", spec={},
                              documents=["/a.txt"])
    store.add_stage_time(job, "upload", 1.5)
    sent: list[str] = []
    conn = store.db.conn  # type: ignore[attr-defined]
    conn.set_trace_callback(sent.append)
    try:
        job = store.transition(job, JobState.UPLOADED, stage_time=("upload", 2.25))
    finally:
        conn.set_trace_callback(None)
    assert [s.split()[0] for s in sent] == ["BEGIN", "SELECT", "UPDATE", "INSERT", "INSERT", "COMMIT"]
    assert job.stage_ms == {"upload": 3.75} and store.job(job.job_id).stage_ms == {"upload": 3.75}
    job = store.transition(job, JobState.PARSING, stage_time=("parse", 7.0))
    assert job.stage_ms == {"upload": 3.75, "parse": 7.0} == store.job(job.job_id).stage_ms
    assert store.db.execute("SELECT stage, ms, run_id, correlation_id FROM job_stages ORDER BY stage").fetchall() == [
        ("parse", 7.0, "r1", job.correlation_id), ("upload", 3.75, "r1", job.correlation_id)]


def test_illegal_transitions_raise_and_change_nothing(store: JobStore) -> None:
    (job,) = store.create_run(run_id="r1", scenario="s", scenario_path="/s.yaml", mode="mock", spec={},
                              documents=["/a.txt"])
    with pytest.raises(IllegalTransition):
        store.transition(job, JobState.EMBEDDED)
    assert store.job(job.job_id).state is JobState.PENDING
    job = store.transition(job, JobState.FAILED, error_code="corrupt")
    for state in JobState:
        if state is not JobState.FAILED:
            with pytest.raises(IllegalTransition):
                store.transition(job, state)


def test_final_states_have_no_exits() -> None:
    assert TRANSITIONS[JobState.COMPLETE] == frozenset()
    assert TRANSITIONS[JobState.FAILED] == frozenset()
    assert set(TRANSITIONS) == set(JobState)


def test_unknown_run(store: JobStore) -> None:
    with pytest.raises(RunNotFound):
        store.run("nope")


def test_select_reads_rows_as_query_does_without_a_savepoint(any_db: Database) -> None:
    """`Database.select` (the job reads of every transition) gives the rows `query` gives, on both
    engines; on SQLite it sends the SELECT alone, not sqlite-utils' SAVEPOINT/RELEASE pair."""
    from tvdb.storage import transaction

    with transaction(any_db):
        any_db.execute("INSERT INTO events (ts, run_id, job_id, correlation_id, from_state, to_state, detail) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", ["2026-12-03T00:00:00.000000Z", "r1", "j1", "c1", None,
                                                       "pending", "first"])
    sql = "SELECT run_id, job_id, to_state, detail FROM events WHERE run_id = ? ORDER BY id"
    expected = [{"run_id": "r1", "job_id": "j1", "to_state": "pending", "detail": "first"}]
    assert list(any_db.query(sql, ["r1"])) == expected
    assert any_db.select(sql, ["r1"]) == expected
    assert any_db.select(sql, ["no such run"]) == []
    if any_db.engine == "sqlite":
        sent: list[str] = []
        conn = any_db.conn  # type: ignore[attr-defined]
        conn.set_trace_callback(sent.append)
        try:
            any_db.select(sql, ["r1"])
        finally:
            conn.set_trace_callback(None)
        assert [s.split()[0] for s in sent] == ["SELECT"]


def _duration(db: Database, run_id: str) -> float:
    return float(db.select("SELECT duration_s FROM run_summary WHERE run_id = ?", [run_id])[0]["duration_s"])


def test_a_resumed_run_counts_the_time_it_worked_not_the_time_it_lay_interrupted(any_db: Database) -> None:
    """10 s of work, interrupted, a day idle, resumed, 5 s more: 15 s, on both engines. A killed
    process leaves no `finished_at`; its last event ends that segment (20 s here, then 1 s more)."""
    from tvdb.clock import iso

    clock = FakeClock()
    store = JobStore(any_db, clock)
    (job,) = store.create_run(run_id="r1", scenario="s", scenario_path="/s.yaml", mode="mock", spec={},
                              documents=["/a.txt"])
    clock.advance(10)
    store.set_run("r1", status="interrupted", finished_at=iso(clock.now()))
    clock.advance(86_400)
    store.claim_run("r1")
    clock.advance(5)
    store.set_run("r1", status="finished", finished_at=iso(clock.now()))
    assert _duration(any_db, "r1") == 15.0

    (job2,) = store.create_run(run_id="r2", scenario="s", scenario_path="/s.yaml", mode="mock", spec={},
                               documents=["/b.txt"])
    clock.advance(20)
    store.transition(job2, JobState.UPLOADED)  # the last thing the killed process wrote
    clock.advance(3_600)
    store.set_run("r2", pid=1, host="elsewhere")  # its owner is gone; nothing set finished_at
    store.claim_run("r2", force=True)
    clock.advance(1)
    store.set_run("r2", status="finished", finished_at=iso(clock.now()))
    assert _duration(any_db, "r2") == 21.0
