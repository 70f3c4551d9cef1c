"""Read-only SQL over past runs: the `run_summary` view, jobs, per-stage times, events, usage rows
and vectors. Every query of run history lives here; callers get frozen values.

A run is named by its full id or any unambiguous prefix of it (`resolve`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tvdb.errors import AmbiguousRunId, RunNotFound
from tvdb.storage import Database

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One row of the `run_summary` view. Money in USD; `spent_usd` / `would_cost_usd` are None when
    a call of the run has no known price (the priced part is in `*_known_usd`). `duration_s` is None
    while a run has not finished."""

    run_id: str
    scenario: str
    mode: str
    status: str
    passed: bool | None
    started_at: str
    finished_at: str | None
    duration_s: float | None
    documents: int
    complete: int
    failed: int
    deferred: int
    reused: int
    pages: int
    chunks: int
    tokens: int
    calls: int
    errors: int
    retries: int
    spent_usd: float | None
    would_cost_usd: float | None
    spent_known_usd: float
    would_cost_known_usd: float
    unknown_price_calls: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One job of a run. `stage_ms`: wall time per stage in milliseconds."""

    job_id: str
    ordinal: int
    path: str
    correlation_id: str
    state: str
    error_code: str | None
    error_message: str | None
    sha256: str | None
    pages: int
    chunks: int
    tokens: int
    reused_from: str | None
    stage_ms: Mapping[str, float]
    warnings: tuple[str, ...] = ()  # parse warnings of a document that completed anyway

    @property
    def source_job_id(self) -> str:
        return self.reused_from or self.job_id


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One usage row (one request attempt). Money in nano-USD (None: unknown price); latency in ms."""

    id: int
    ts: str
    run_id: str | None
    job_ids: tuple[str, ...]
    correlation_id: str | None
    scenario: str | None
    stage: str
    service: str
    implementation: str
    provenance: str | None
    model: str
    units: float
    unit: str
    credits: float | None
    cost_nusd: int | None
    would_cost_nusd: int | None
    status: str
    error_code: str | None
    http_status: int | None
    latency_ms: float | None
    request_id: str | None
    attempt: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One job event (a state transition, or a note when from_state == to_state)."""

    id: int
    ts: str
    run_id: str
    job_id: str
    correlation_id: str
    from_state: str | None
    to_state: str
    detail: str | None

    @property
    def transition(self) -> str:
        """The event in words, the same in `tvdb logs` and `tvdb runs show`: `created → uploaded` (a
        job's first event), `parsed → chunked`, or `note (parsed)` for a note that leaves the state."""
        if self.from_state == self.to_state:
            return f"note ({self.to_state})"
        return f"{self.from_state or 'created'} → {self.to_state}"


@dataclass(frozen=True, slots=True)
class DocumentVectors:
    """A document's vectors in one run: `space` is implementation family/model/dimensions (a mock and
    a real vector of the same text are not comparable); `matrix` float32 of shape (chunks, dimensions)."""

    space: str
    matrix: npt.NDArray[np.float32]


_SUMMARY_FIELDS = tuple(RunSummary.__dataclass_fields__)
_CALL_COLUMNS = ("id, ts, run_id, job_id, job_ids, correlation_id, scenario, stage, service, implementation, "
                 "provenance, model, units, unit, credits, cost_nusd, would_cost_nusd, status, error_code, "
                 "http_status, latency_ms, request_id, attempt")


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _summary(row: Mapping[str, Any]) -> RunSummary:
    values = {k: row[k] for k in _SUMMARY_FIELDS}
    values["passed"] = None if row["passed"] is None else bool(row["passed"])
    return RunSummary(**values)


def _call(row: Mapping[str, Any]) -> CallRecord:
    ids = tuple(json.loads(row["job_ids"] or "[]")) or ((row["job_id"],) if row["job_id"] else ())
    values = {k: row[k] for k in CallRecord.__dataclass_fields__ if k != "job_ids"}
    values["attempt"] = int(row["attempt"] or 1)
    values["units"] = float(row["units"] or 0)
    return CallRecord(**values, job_ids=ids)


def vector_space(implementation: str, model: str, dimensions: int) -> str:
    """`real/text-embedding-3-small/1536`; replayed vectors were recorded from the real service."""
    family = "mock" if implementation == "mock" else "real"
    return f"{family}/{model}/{dimensions}"


class RunStore:
    """Queries over past runs. Raises RunNotFound / AmbiguousRunId for a run id that names no run or
    more than one."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _not_found(self, ref: str) -> str:
        """Which database was searched (the SQLite file, or the PostgreSQL URL without its password) and how
        to see what it holds: a run id from another data dir or machine is the usual cause."""
        return (f"no run {ref!r} in {self.db.location}; list its runs with `tvdb runs list` (another database: "
                "--data-dir DIR, TVDB_DATA_DIR or TVDB_DATABASE_URL)")

    def resolve(self, ref: str) -> str:
        """The full run id for `ref`: an exact id or an unambiguous prefix of one."""
        ref = ref.strip()
        if not ref:
            raise RunNotFound("an empty run id names no run (see `tvdb runs list`)")
        if self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", [ref]).fetchone():
            return ref
        found = [r[0] for r in self.db.execute(
            "SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY started_at DESC LIMIT 6",
            [_like_prefix(ref)])]
        if not found:
            raise RunNotFound(self._not_found(ref))
        if len(found) > 1:
            more = ", …" if len(found) > 5 else ""
            raise AmbiguousRunId(f"run id prefix {ref!r} matches several runs ({', '.join(found[:5])}{more}); "
                                 "give more characters")
        return str(found[0])

    def list_runs(self, *, scenario: str | None = None, since: str | None = None,
                  limit: int | None = None) -> list[RunSummary]:
        """Runs newest first; `since` is an ISO UTC timestamp (the storage format)."""
        where: list[str] = []
        args: list[Any] = []
        if scenario is not None:
            where.append("scenario = ?")
            args.append(scenario)
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        sql = "SELECT * FROM run_summary" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started_at DESC, run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_summary(r) for r in self.db.query(sql, args)]

    def summary(self, run_id: str) -> RunSummary:
        rows = list(self.db.query("SELECT * FROM run_summary WHERE run_id = ?", [run_id]))
        if not rows:
            raise RunNotFound(self._not_found(run_id))
        return _summary(rows[0])

    def owners(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """pid, pid_started and host of each run (to tell a live run from a killed one)."""
        ids = list(run_ids)
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        return {r["run_id"]: r for r in self.db.query(
            f"SELECT run_id, pid, pid_started, host FROM runs WHERE run_id IN ({marks})", ids)}

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The stored `tvdb run --json` object of a finished run, or None."""
        row = self.db.execute("SELECT result_json FROM runs WHERE run_id = ?", [run_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def documents(self, run_id: str) -> list[DocumentRecord]:
        times: dict[str, dict[str, float]] = {}
        for job_id, stage, ms in self.db.execute(
                "SELECT job_id, stage, ms FROM job_stages WHERE run_id = ?", [run_id]):
            times.setdefault(job_id, {})[stage] = float(ms)
        out = []
        for r in self.db.query("SELECT * FROM jobs WHERE run_id = ? ORDER BY ordinal", [run_id]):
            out.append(DocumentRecord(
                job_id=r["job_id"], ordinal=r["ordinal"], path=r["path"], correlation_id=r["correlation_id"],
                state=r["state"], error_code=r["error_code"], error_message=r["error_message"], sha256=r["sha256"],
                pages=r["pages"] or 0, chunks=r["chunks"] or 0, tokens=r["tokens"] or 0,
                reused_from=r["reused_from"],
                stage_ms=times.get(r["job_id"]) or json.loads(r["stage_ms_json"] or "{}"),
                warnings=tuple(json.loads(r.get("warnings_json") or "[]")),
            ))
        return out

    def calls(self, run_id: str) -> list[CallRecord]:
        """Every usage row of the run, oldest first."""
        return [_call(r) for r in self.db.query(
            f"SELECT {_CALL_COLUMNS} FROM usage WHERE run_id = ? ORDER BY ts, id", [run_id])]

    def calls_for_job(self, job_id: str) -> list[CallRecord]:
        """The usage rows of one job, including batched requests that served it and others."""
        return [_call(r) for r in self.db.query(
            f"SELECT {_CALL_COLUMNS} FROM usage WHERE job_id = ? OR id IN "
            f"(SELECT u.id FROM usage u, {_json_items(self.db, 'u.job_ids')} WHERE u.job_id IS NULL AND j.value = ?) "
            "ORDER BY ts, id", [job_id, job_id])]

    def events(self, *, run_id: str | None = None, correlation_id: str | None = None) -> list[EventRecord]:
        """Job events of a run or of one correlation ID, in time order."""
        column, value = ("run_id", run_id) if run_id is not None else ("correlation_id", correlation_id)
        return [EventRecord(**r) for r in self.db.query(
            f"SELECT id, ts, run_id, job_id, correlation_id, from_state, to_state, detail FROM events "
            f"WHERE {column} = ? ORDER BY ts, id", [value])]

    def job_for_correlation(self, correlation_id: str) -> tuple[str, str]:
        """(run_id, job_id) of the job with this correlation ID (an unambiguous prefix works too)."""
        rows = self.db.execute(
            "SELECT run_id, job_id, correlation_id FROM jobs WHERE correlation_id LIKE ? ESCAPE '\\' LIMIT 2",
            [_like_prefix(correlation_id.strip())]).fetchall()
        exact = [r for r in rows if r[2] == correlation_id]
        if exact or len(rows) == 1:
            r = (exact or rows)[0]
            return str(r[0]), str(r[1])
        if not rows:
            raise RunNotFound(f"no job has correlation ID {correlation_id!r} (see `tvdb runs show RUN`)")
        raise AmbiguousRunId(f"correlation ID prefix {correlation_id!r} matches several jobs; give more characters")

    def vectors(self, run_id: str, documents: Sequence[DocumentRecord]) -> dict[str, DocumentVectors]:
        """The vectors of each complete document of a run, by job id, with their space."""
        from tvdb.vectors import decode_vectors

        sources = {d.job_id: d.source_job_id for d in documents if d.state == "complete"}
        if not sources:
            return {}
        impl: dict[str, str] = {}
        marks = ", ".join("?" for _ in set(sources.values()))
        batched = _json_items(self.db, "CASE WHEN u.job_id IS NULL THEN u.job_ids ELSE '[]' END")
        for job_id, implementation in self.db.execute(
            "SELECT COALESCE(u.job_id, j.value), u.implementation FROM usage u "
            f"LEFT JOIN {batched} ON TRUE "
            f"WHERE u.stage = 'embed' AND u.status = 'ok' AND COALESCE(u.job_id, j.value) IN ({marks})",
            sorted(set(sources.values())),
        ):
            impl[str(job_id)] = str(implementation)
        blobs: dict[str, list[bytes]] = {}
        meta: dict[str, tuple[str, int]] = {}
        for job_id, model, dims, blob in self.db.execute(
            "SELECT v.job_id, v.model, v.dimensions, v.vector FROM vectors v JOIN chunks c USING (chunk_id) "
            f"WHERE v.job_id IN ({marks}) ORDER BY v.job_id, c.idx", sorted(set(sources.values())),
        ):
            blobs.setdefault(job_id, []).append(bytes(blob))
            meta[job_id] = (str(model), int(dims))
        out = {}
        for job_id, source in sources.items():
            if source not in blobs:
                continue
            model, dims = meta[source]
            space = vector_space(impl.get(source, "unknown"), model, dims)
            out[job_id] = DocumentVectors(space, decode_vectors(blobs[source], dims))
        return out

    def stage_times_since(self, since: str | None) -> list[tuple[str, float]]:
        """(stage, ms) of every job stage of the runs started since `since` (ISO UTC; None: all)."""
        return [(str(s), float(ms)) for s, ms in self.db.execute(
            "SELECT js.stage, js.ms FROM job_stages js JOIN runs r USING (run_id) "
            "WHERE ? IS NULL OR r.started_at >= ?", [since, since])]

    def attempts_since(self, since: str | None) -> list[tuple[str, str, int]]:
        """(ts, status, attempt) of every request attempt since `since` (ISO UTC; None: all)."""
        return [(str(ts), str(status), int(attempt or 1)) for ts, status, attempt in self.db.execute(
            "SELECT ts, status, attempt FROM usage WHERE ? IS NULL OR ts >= ? ORDER BY ts", [since, since])]


def _json_items(db: Database, array: str) -> str:
    """A FROM item `j` whose `value` column holds each text element of the JSON array `array`
    (SQLite's json_each; PostgreSQL's jsonb_array_elements_text)."""
    if db.engine == "postgresql":
        return f"jsonb_array_elements_text(({array})::jsonb) AS j(value)"
    return f"json_each({array}) AS j"
