"""Runs and jobs (tables `runs`, `jobs`, `events`, `job_stages`, owned here with their migrations):
the persisted job state machine, with an event row per transition.

    pending → uploaded → parsing → parsed → chunked → embedding → embedded → stored → complete
    any non-final state → failed (with an error code)
    uploaded → complete (an identical document was already ingested with the same settings: reused;
                         or a scenario's `pipeline:` hook, the user's own code, ingested it)
    uploaded | parsed | chunked | embedding → deferred → back to where it was (budget window reopened)

A transition that the table does not allow raises `IllegalTransition`; it is a bug, never user error.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from tvdb.clock import Clock, iso
from tvdb.domain import JobState
from tvdb.errors import RunBusy, RunNotFound
from tvdb.owner import owner_alive, process_owner
from tvdb.storage import Database, Migration, insert, transaction, update

S = JobState
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    S.PENDING: frozenset({S.UPLOADED, S.FAILED}),
    S.UPLOADED: frozenset({S.PARSING, S.COMPLETE, S.FAILED, S.DEFERRED}),
    S.PARSING: frozenset({S.PARSED, S.FAILED, S.DEFERRED}),
    S.PARSED: frozenset({S.CHUNKED, S.FAILED, S.DEFERRED}),
    S.CHUNKED: frozenset({S.EMBEDDING, S.FAILED, S.DEFERRED}),
    S.EMBEDDING: frozenset({S.EMBEDDED, S.FAILED, S.DEFERRED}),
    S.EMBEDDED: frozenset({S.STORED, S.FAILED}),
    S.STORED: frozenset({S.COMPLETE, S.FAILED}),
    S.DEFERRED: frozenset({S.UPLOADED, S.PARSED, S.CHUNKED, S.FAILED}),
    S.COMPLETE: frozenset(),
    S.FAILED: frozenset(),
}
FINAL = frozenset({S.COMPLETE, S.FAILED})


class IllegalTransition(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    run_id: str
    ordinal: int
    correlation_id: str
    path: str
    state: JobState
    media_type: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    object_key: str | None = None
    settings_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    pages: int | None = None
    chunks: int | None = None
    tokens: int | None = None
    reused_from: str | None = None
    deferred_from: str | None = None
    deferred_until: str | None = None
    stage_ms: Mapping[str, float] | None = None
    warnings: tuple[str, ...] = ()  # parse warnings (a page not parsed, a recovered PDF), in order

    @property
    def source_job_id(self) -> str:
        """The job whose chunks and vectors this job's document uses (itself unless reused)."""
        return self.reused_from or self.job_id

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        names = cls.__dataclass_fields__
        values = {k: row[k] for k in names if k in row and k not in ("state", "stage_ms", "warnings")}
        return cls(**values, state=JobState(row["state"]), stage_ms=json.loads(row.get("stage_ms_json") or "{}"),
                   warnings=tuple(json.loads(row.get("warnings_json") or "[]")))


def warnings_json(warnings: Sequence[str]) -> str | None:
    """`jobs.warnings_json` for a job's parse warnings: a JSON list, NULL for none. A reused job stores
    its source's too, so its run's output and `runs show` name them as the first run did."""
    return json.dumps(list(warnings)) if warnings else None


class JobStore:
    """Reads and writes runs and jobs; every write is one `BEGIN IMMEDIATE` transaction."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def create_run(self, *, run_id: str, scenario: str, scenario_path: str, mode: str,
                   spec: Mapping[str, Any], documents: Iterable[str]) -> list[Job]:
        now = iso(self.clock.now())
        with transaction(self.db):
            insert(self.db, "runs", {
                "run_id": run_id, "scenario": scenario, "scenario_path": scenario_path, "mode": mode,
                "status": "running", "started_at": now, "spec_json": json.dumps(spec, sort_keys=True),
                **process_owner(),
            })
            for ordinal, path in enumerate(documents):
                job_id = f"{run_id}-{ordinal:03d}"
                correlation_id = uuid.uuid4().hex
                insert(self.db, "jobs", {
                    "job_id": job_id, "run_id": run_id, "ordinal": ordinal, "correlation_id": correlation_id,
                    "path": path, "state": S.PENDING.value, "created_at": now, "updated_at": now,
                    "stage_ms_json": "{}",
                })
                self._event(run_id, job_id, correlation_id, None, S.PENDING, "created", now)
        return self.jobs(run_id)

    def run(self, run_id: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        if not rows:
            where = self.db.location
            raise RunNotFound(f"no run {run_id!r} in {where} (see `tvdb runs`; another data dir? "
                              "pass --data-dir or set TVDB_DATA_DIR)")
        return rows[0]

    def claim_run(self, run_id: str, *, force: bool = False) -> dict[str, Any]:
        """Make this process the run's owner, atomically. Raises RunNotFound, or RunBusy when another
        live process owns it (unless `force`): two processes working on one run would pay twice."""
        with transaction(self.db):
            row = self.run(run_id)
            me = process_owner()
            theirs = (row.get("pid"), row.get("host")) != (me["pid"], me["host"])
            if row["status"] == "running" and theirs and not force:
                alive = owner_alive(row)
                if alive is not False:
                    where = f"pid {row.get('pid')}" + ("" if alive else f" on host {row.get('host')}")
                    raise RunBusy(
                        f"run {run_id} is being worked on by {where}; wait for it or stop it first "
                        "(if you are sure that process is not working on it, pass --force)"
                    )
            update(self.db, "runs", {"run_id": run_id}, {
                "status": "running", "finished_at": None, **me,
                "active_s": (row.get("active_s") or 0.0) + self._segment_s(row), "resumed_at": iso(self.clock.now()),
            })
        return row

    def _segment_s(self, row: Mapping[str, Any]) -> float:
        """Seconds the run worked since it last started or resumed, so its duration leaves out the time
        it lay interrupted. A process that was killed set no `finished_at`: its last event ends it."""
        end = row.get("finished_at") or next(iter(self.db.select(
            "SELECT MAX(ts) AS ts FROM events WHERE run_id = ?", [row["run_id"]])), {}).get("ts")
        start = row.get("resumed_at") or row["started_at"]
        if not end or not start:
            return 0.0
        return max(0.0, (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds())

    def set_run(self, run_id: str, **fields: Any) -> None:
        with transaction(self.db):
            update(self.db, "runs", {"run_id": run_id}, fields)

    def jobs(self, run_id: str) -> list[Job]:
        return [Job.from_row(r) for r in
                self.db.select("SELECT * FROM jobs WHERE run_id = ? ORDER BY ordinal", [run_id])]

    def jobs_by_id(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs of `job_ids`, in run then ordinal order."""
        out: list[Job] = []
        for i in range(0, len(job_ids), 500):  # well under SQLite's limit of bound parameters
            part = list(job_ids[i:i + 500])
            marks = ", ".join("?" for _ in part)
            out += [Job.from_row(r) for r in self.db.select(f"SELECT * FROM jobs WHERE job_id IN ({marks})", part)]
        return sorted(out, key=lambda j: (j.run_id, j.ordinal))

    def job(self, job_id: str) -> Job:
        rows = self.db.select("SELECT * FROM jobs WHERE job_id = ?", [job_id])
        return Job.from_row(rows[0])

    def transition(self, job: Job, to: JobState, *, detail: str | None = None,
                   stage_time: tuple[str, float] | None = None, **fields: Any) -> Job:
        """Move `job` to `to` (checked against the table), update `fields`, log an event; one transaction.

        `stage_time` (stage, milliseconds) adds the time the stage took, as `add_stage_time` does, in
        the same UPDATE: a separate call per stage was a read, a write and a commit more per document."""
        now = iso(self.clock.now())
        with transaction(self.db):
            # the row as it is under the write lock, so the job returned is the stored one without
            # reading it again (a second read per transition was a tenth of a small document's time)
            row = self.db.select("SELECT * FROM jobs WHERE job_id = ?", [job.job_id])[0]
            current = JobState(row["state"])
            if to not in TRANSITIONS[current]:
                raise IllegalTransition(f"job {job.job_id}: {current} → {to} is not allowed")
            changes = {**fields, "state": to.value, "updated_at": now}
            if stage_time is not None:
                stage_json, total = _add_stage_ms(row["stage_ms_json"], *stage_time)
                changes["stage_ms_json"] = stage_json
            update(self.db, "jobs", {"job_id": job.job_id}, changes)
            self._event(job.run_id, job.job_id, job.correlation_id, current, to, detail, now)
            if stage_time is not None:
                self._stage_row(job, stage_time[0], total, now)
        return Job.from_row({**row, **changes})

    def update(self, job: Job, **fields: Any) -> None:
        """Change a job's columns without a state change (e.g. stage timings)."""
        with transaction(self.db):
            update(self.db, "jobs", {"job_id": job.job_id}, {**fields, "updated_at": iso(self.clock.now())})

    def add_stage_time(self, job: Job, stage: str, ms: float) -> None:
        """Add `ms` of wall time to the job's `stage`: on the job (stage_ms_json) and as a `job_stages`
        row, which run history reads (p50/p95 per stage) and SQL tools can query. A stage that ends
        in a transition passes `stage_time=` to `transition` instead (one write less)."""
        now = iso(self.clock.now())
        with transaction(self.db):
            stored = self.db.execute("SELECT stage_ms_json FROM jobs WHERE job_id = ?", [job.job_id]).fetchone()
            stage_json, total = _add_stage_ms(stored[0], stage, ms)
            update(self.db, "jobs", {"job_id": job.job_id}, {"stage_ms_json": stage_json, "updated_at": now})
            self._stage_row(job, stage, total, now)

    def _stage_row(self, job: Job, stage: str, total_ms: float, now: str) -> None:
        self.db.execute(
            "INSERT INTO job_stages (job_id, stage, run_id, correlation_id, ms, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, stage) DO UPDATE SET run_id = excluded.run_id, "
            "correlation_id = excluded.correlation_id, ms = excluded.ms, updated_at = excluded.updated_at",
            [job.job_id, str(stage), job.run_id, job.correlation_id, total_ms, now],
        )

    def failure_detail(self, job_id: str) -> str | None:
        """The detail of the job's last transition to `failed` (a `pipeline:` hook's traceback), or None."""
        row = self.db.execute("SELECT detail FROM events WHERE job_id = ? AND to_state = 'failed' "
                              "ORDER BY id DESC LIMIT 1", [job_id]).fetchone()
        return None if row is None else row[0]

    def note(self, job: Job, detail: str) -> None:
        """An event without a state change (e.g. a resumed stage)."""
        with transaction(self.db):
            self._event(job.run_id, job.job_id, job.correlation_id, job.state, job.state, detail,
                        iso(self.clock.now()))

    def _event(self, run_id: str, job_id: str, correlation_id: str, frm: JobState | None, to: JobState,
               detail: str | None, ts: str) -> None:
        insert(self.db, "events", {
            "ts": ts, "run_id": run_id, "job_id": job_id, "correlation_id": correlation_id,
            "from_state": frm.value if frm else None, "to_state": to.value, "detail": detail,
        })

    def find_reusable(self, sha256: str, settings_key: str, exclude_run: str) -> Job | None:
        """A completed job of an earlier run with identical bytes and ingestion settings."""
        rows = list(self.db.query(
            "SELECT * FROM jobs WHERE sha256 = ? AND settings_key = ? AND state = 'complete' "
            "AND run_id != ? AND reused_from IS NULL ORDER BY created_at LIMIT 1",
            [sha256, settings_key, exclude_run],
        ))
        return Job.from_row(rows[0]) if rows else None


def _add_stage_ms(stored_json: str | None, stage: str, ms: float) -> tuple[str, float]:
    """(the job's stage_ms_json with `ms` added to `stage`, that stage's new total in ms)."""
    current: dict[str, float] = json.loads(stored_json or "{}")
    current[str(stage)] = current.get(str(stage), 0.0) + ms
    return json.dumps(current, sort_keys=True), current[str(stage)]


# -- migrations of the tables owned here (their place in the one history: tvdb.schema) ----------------


def _m001_runs_jobs(db: sqlite_utils.Database) -> None:
    db.table("runs").create(
        {
            "run_id": str, "scenario": str, "scenario_path": str, "mode": str, "status": str,
            "started_at": str, "finished_at": str, "spec_json": str, "passed": int, "result_json": str,
        },
        pk="run_id",
    )
    db.table("jobs").create(
        {
            "job_id": str, "run_id": str, "ordinal": int, "correlation_id": str, "path": str,
            "media_type": str, "size_bytes": int, "sha256": str, "object_key": str, "settings_key": str,
            "state": str, "error_code": str, "error_message": str, "pages": int, "chunks": int,
            "tokens": int, "reused_from": str, "created_at": str, "updated_at": str, "stage_ms_json": str,
            "deferred_from": str, "deferred_until": str,
        },
        pk="job_id",
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.table("jobs").create_index(["run_id", "ordinal"], unique=True)
    db.table("jobs").create_index(["sha256", "settings_key", "state"])
    db.table("events").create(
        {
            "id": int, "ts": str, "run_id": str, "job_id": str, "correlation_id": str,
            "from_state": str, "to_state": str, "detail": str,
        },
        pk="id",
    )
    db.table("events").create_index(["job_id"])


def _m013_run_owner(db: sqlite_utils.Database) -> None:
    """Which process runs a run (pid, host), so `tvdb runs` can tell a live run from a killed one."""
    db.table("runs").add_column("pid", int)
    db.table("runs").add_column("host", str)


def _m014_run_owner_started(db: sqlite_utils.Database) -> None:
    """The owner's process start time: a pid reused by another process does not hold the run."""
    db.table("runs").add_column("pid_started", str)


def _m020_job_stages(db: sqlite_utils.Database) -> None:
    """Per-stage metrics as rows (`job_stages`: one per job and stage, milliseconds of wall time),
    backfilled from `jobs.stage_ms_json`, so they are queryable with SQL; events by correlation id and run."""
    db.table("job_stages").create(
        {"job_id": str, "stage": str, "run_id": str, "correlation_id": str, "ms": float, "updated_at": str},
        pk=("job_id", "stage"),
    )
    db.table("job_stages").create_index(["run_id", "stage"])
    db.execute(
        "INSERT INTO job_stages (job_id, stage, run_id, correlation_id, ms, updated_at) "
        "SELECT j.job_id, s.key, j.run_id, j.correlation_id, s.value, j.updated_at "
        "FROM jobs j, json_each(COALESCE(j.stage_ms_json, '{}')) s"
    )
    db.table("events").create_index(["correlation_id"])
    db.table("events").create_index(["run_id"])


def _m022_job_warnings(db: sqlite_utils.Database) -> None:
    """`jobs.warnings_json`: the parse warnings of a document that completed anyway (a page the
    service could not parse, pypdf's recovery notes), a JSON list of strings, so the run's output,
    `--json` and `runs show` name them. Older jobs have NULL (their warnings are only in the `parsed`
    event's detail)."""
    db.table("jobs").add_column("warnings_json", str)


def _m023_spec_without_webhook_url(db: sqlite_utils.Database) -> None:
    """Drop `parse.webhook_url` from runs stored before a run stopped saving it: its path or query
    carries the receiver's token. `secure_delete` zeroes the freed bytes instead of leaving the old
    JSON in free pages of the file."""
    before = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete = ON")
    try:
        db.execute(_M023_SQLITE)
    finally:
        db.execute(f"PRAGMA secure_delete = {int(before)}")  # zeroing every later delete costs I/O


def _m024_run_active_time(db: sqlite_utils.Database) -> None:
    """`runs.active_s` (seconds worked before the latest resume) and `runs.resumed_at`, so a run
    resumed a day later does not report a day's duration."""
    db.table("runs").add_column("active_s", float)
    db.table("runs").add_column("resumed_at", str)


# PostgreSQL's steps (tvdb.storage.postgres), the same schema in its dialect: bigint for INTEGER,
# double precision for REAL, bytea for BLOB, identity columns for integer ids (tests/test_pg_schema.py).

_PG_M001 = (
    "CREATE TABLE runs (run_id text PRIMARY KEY, scenario text, scenario_path text, mode text, status text, "
    "started_at text, finished_at text, spec_json text, passed bigint, result_json text)",
    "CREATE TABLE jobs (job_id text PRIMARY KEY, run_id text REFERENCES runs (run_id), ordinal bigint, "
    "correlation_id text, path text, media_type text, size_bytes bigint, sha256 text, object_key text, "
    "settings_key text, state text, error_code text, error_message text, pages bigint, chunks bigint, "
    "tokens bigint, reused_from text, created_at text, updated_at text, stage_ms_json text, "
    "deferred_from text, deferred_until text)",
    "CREATE UNIQUE INDEX idx_jobs_run_id_ordinal ON jobs (run_id, ordinal)",
    "CREATE INDEX idx_jobs_sha256_settings_key_state ON jobs (sha256, settings_key, state)",
    "CREATE TABLE events (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, ts text, run_id text, job_id text, "
    "correlation_id text, from_state text, to_state text, detail text)",
    "CREATE INDEX idx_events_job_id ON events (job_id)",
)

_PG_M013 = (
    "ALTER TABLE runs ADD COLUMN pid bigint, ADD COLUMN host text",
)

_PG_M014 = (
    "ALTER TABLE runs ADD COLUMN pid_started text",
)

_PG_M022 = (
    "ALTER TABLE jobs ADD COLUMN warnings_json text",
)

_M023_SQLITE = ("UPDATE runs SET spec_json = json_remove(spec_json, '$.parse.webhook_url') "
                "WHERE json_valid(spec_json) AND json_extract(spec_json, '$.parse.webhook_url') IS NOT NULL")
_PG_M023 = (
    "UPDATE runs SET spec_json = (spec_json::jsonb #- '{parse,webhook_url}')::text "
    "WHERE spec_json LIKE '%webhook_url%' AND spec_json::jsonb #> '{parse,webhook_url}' IS NOT NULL",
)

_PG_M024 = (
    "ALTER TABLE runs ADD COLUMN active_s double precision",
    "ALTER TABLE runs ADD COLUMN resumed_at text",
)

_PG_M020 = (
    "CREATE TABLE job_stages (job_id text, stage text, run_id text, correlation_id text, ms double precision, "
    "updated_at text, PRIMARY KEY (job_id, stage))",
    "CREATE INDEX idx_job_stages_run_id_stage ON job_stages (run_id, stage)",
    "INSERT INTO job_stages (job_id, stage, run_id, correlation_id, ms, updated_at) "
    "SELECT j.job_id, s.key, j.run_id, j.correlation_id, s.value::double precision, j.updated_at "
    "FROM jobs j, jsonb_each_text(COALESCE(j.stage_ms_json, '{}')::jsonb) s",
    "CREATE INDEX idx_events_correlation_id ON events (correlation_id)",
    "CREATE INDEX idx_events_run_id ON events (run_id)",
)


M001 = Migration(__name__, _m001_runs_jobs, postgresql=_PG_M001)
M013 = Migration(__name__, _m013_run_owner, postgresql=_PG_M013)
M014 = Migration(__name__, _m014_run_owner_started, postgresql=_PG_M014)
M020 = Migration(__name__, _m020_job_stages, postgresql=_PG_M020)
M022 = Migration(__name__, _m022_job_warnings, postgresql=_PG_M022)
M023 = Migration(__name__, _m023_spec_without_webhook_url, postgresql=_PG_M023)
M024 = Migration(__name__, _m024_run_active_time, postgresql=_PG_M024)
