"""Runs a scenario end to end, or resumes an interrupted run, and returns a `RunResult`. No printing.

A run's resolved settings (without secrets) and scenario are stored with it, so `tvdb resume`
continues with exactly what the run started with, taking only secrets from the current environment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tvdb.clock import Clock, iso
from tvdb.config import Settings
from tvdb.db import open_db, open_storage
from tvdb.domain import Stage
from tvdb.errors import StorageError
from tvdb.ledger.prices import PriceTable, nusd_to_usd
from tvdb.ledger.provenance import run_provenance
from tvdb.ledger.usage_store import UsageStore
from tvdb.pipeline.context import NullProgress, PipelineContext, ProgressSink
from tvdb.pipeline.jobs import Job, JobStore
from tvdb.pipeline.objects import ObjectStore, load_or_create_secret
from tvdb.pipeline.runner import run_pipeline
from tvdb.pipeline.store import space_counts, vector_counts
from tvdb.scenarios.expectations import count_fallbacks, evaluate
from tvdb.scenarios.loader import LoadedScenario
from tvdb.scenarios.results import DocumentResult, ExpectationResult, RunResult, UsageSummary
from tvdb.scenarios.schema import SETTINGS_KEYS, RetrievalExpectation, Scenario
from tvdb.services.calls import ServiceCaller
from tvdb.storage import Database

if TYPE_CHECKING:
    from tvdb.http import AsyncBaseTransport
    from tvdb.recording.session import Tape
    from tvdb.scenarios.hookrun import SessionOpener
    from tvdb.scenarios.hooks import ScenarioHooks
    from tvdb.services.router import ServiceRouter

# A run keeps only its ingestion settings; budgets, limits, keys, paths, alert channels and prices
# come from the environment of a resuming process, so a resume obeys today's budget and a run never
# stores a secret.
INGESTION_KEYS = SETTINGS_KEYS


@dataclass(frozen=True)
class RunHooks:
    progress: ProgressSink = field(default_factory=NullProgress)
    after_stage: Callable[[Stage], None] = lambda stage: None
    on_start: Callable[[str, Sequence[Job]], None] = lambda run_id, jobs: None
    # replaces the network of a real service's client and health probe ("openai", "llamaparse")
    transports: Mapping[str, AsyncBaseTransport] = field(default_factory=dict)
    # opens the tvdb session a `pipeline:` scenario's hooks run in (default: tvdb.session)
    open_session: SessionOpener | None = None


def ingestion_settings(settings: Settings) -> dict[str, Any]:
    """The settings a run stores (JSON): its ingestion keys only, no secrets. `parse.webhook_url` is
    left out: its path or query carries the receiver's token, and resume takes it from the current
    settings instead (it decides where results are delivered, not what a document becomes)."""
    stored = settings.model_dump(mode="json", include=set(INGESTION_KEYS))
    if isinstance(stored.get("parse"), dict):
        stored["parse"].pop("webhook_url", None)
    return stored


RESUMED_ORIGIN = "set by the run being resumed"  # a resumed run's provenance reason: "<this>: <key>"


def restore_settings(stored: Mapping[str, Any], current: Settings) -> Settings:
    """The current settings with a stored run's ingestion keys put back."""
    data = current.model_dump()
    data.update({k: v for k, v in stored.items() if k in INGESTION_KEYS})
    if isinstance(stored.get("parse"), dict):  # never stored (a secret): the current one
        data["parse"] = {**stored["parse"], "webhook_url": current.parse.webhook_url}
    settings = Settings.model_validate(data)
    # one wording for every restored mode key, as "set by scenario: <key>" is for a run's own: the
    # parse stage (often a services.parser override) and the embed stage (often the mode) of one
    # resumed run then read alike in its provenance
    keys = ["mode", *(f"services.{role}" for role, value in (stored.get("services") or {}).items()
                      if value is not None)]
    return settings.with_origins({key: f"{RESUMED_ORIGIN}: {key}" for key in keys})


def new_run_id(clock: Clock) -> str:
    return f"{clock.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _with_placeholder_keys(settings: Settings) -> Settings:
    """`settings` with a placeholder for each missing API key: for building a router that sends nothing
    (a forecast's checks; a `pipeline:` run, whose requests the user's code makes with its own keys)."""
    from pydantic import SecretStr

    placeholders = {"openai_api_key": "sk-placeholder-for-checks", "llama_cloud_api_key": "llx-placeholder-for-checks"}
    missing = {k: SecretStr(v) for k, v in placeholders.items() if getattr(settings, k) is None}
    return settings.model_copy(update=missing)


def _context(settings: Settings, db: Database, clock: Clock, run_id: str, scenario: Scenario,
             hooks: RunHooks, tape: Tape | None = None, *, reuse: bool = True) -> PipelineContext:
    from tvdb.services.factory import build_budget, build_faults, build_retry, build_router

    # a `pipeline:` run's requests go through its session, which carries the user's own keys; tvdb's router
    # only answers questions (modes, deferral windows) and must not demand keys the user's code has
    router_settings = _with_placeholder_keys(settings) if scenario.pipeline else settings
    secret = (settings.signing_secret.get_secret_value().encode() if settings.signing_secret
              else load_or_create_secret(settings.data_dir))
    faults = build_faults(scenario.faults)
    caller = ServiceCaller(db=db, prices=PriceTable.load(settings.prices), clock=clock,
                           retry=build_retry(settings, clock, seed=scenario.name),
                           budget=build_budget(db, settings, clock))
    return PipelineContext(
        settings=settings, db=db, clock=clock, jobs=JobStore(db, clock),
        objects=ObjectStore(settings.object_store_dir, secret, clock),
        router=build_router(router_settings, caller, clock, faults=faults, transports=hooks.transports,
                            replay=tape is not None and tape.replay),
        run_id=run_id, scenario=scenario.name,
        progress=hooks.progress, after_stage=hooks.after_stage, reuse=reuse and tape is None,
    )


def check_runnable(settings: Settings, scenario: Scenario, *, need_keys: bool = True) -> None:
    """Everything `start_run` refuses before creating anything, without creating anything: the tokenizer,
    modes and services that are not available, the fault plan, and (with `need_keys`) missing API keys.
    `--estimate` calls it (without keys: a forecast needs none) so that it refuses what the run would
    refuse. Raises ConfigError."""
    from tvdb.catalog import embedding_model
    from tvdb.errors import ConfigError
    from tvdb.tokens import get_encoding

    if scenario.pipeline is not None:
        raise ConfigError(f"scenario {scenario.name!r} runs your own code (pipeline: {scenario.pipeline}), whose "
                          "requests tvdb cannot foresee: run it in mock mode (`--mode mock`, free) and read "
                          "`would cost` instead")
    get_encoding(embedding_model(settings.embedding.model).encoding)
    _offline_router(_with_placeholder_keys(settings) if not need_keys else settings, scenario, lambda router: "")


def forecast_reuse_key(settings: Settings, scenario: Scenario) -> str:
    """The reuse key (`settings_key`) a run of `scenario` under `settings` would store and look up, from
    a router that sends nothing (`--estimate` needs no key for it: keys are not part of the identity)."""
    from tvdb.pipeline.context import settings_key

    return _offline_router(_with_placeholder_keys(settings), scenario, lambda router: settings_key(settings, router))


def _offline_router(settings: Settings, scenario: Scenario, use: Callable[[ServiceRouter], str]) -> str:
    """`use` applied to the router a run would build, over an in-memory ledger; closed after."""
    from tvdb.clock import SystemClock
    from tvdb.services.factory import build_faults, build_retry, build_router

    clock = SystemClock()
    db = open_db(Path(":memory:"))
    caller = ServiceCaller(db=db, prices=PriceTable.load(settings.prices), clock=clock,
                           retry=build_retry(settings, clock), budget=None)
    router = build_router(settings, caller, clock, faults=build_faults(scenario.faults))
    try:
        return use(router)
    finally:
        asyncio.run(router.aclose())
        db.close()


def masked_scenario(loaded: LoadedScenario, secrets: Sequence[str]) -> LoadedScenario:
    """`loaded` with every configured secret (and anything key-shaped) in its text — name,
    description, retrieval queries, fault messages — replaced by `***`, so a key pasted into a
    scenario is never stored (runs, ledger, result), reported, logged or sent as a query. Document
    paths are left alone: they name files."""
    from dataclasses import replace

    from tvdb.redaction import redact
    from tvdb.scenarios.schema import Scenario

    def walk(value: Any, key: str = "") -> Any:
        if key in ("documents", "document"):
            return value
        if isinstance(value, str):
            return redact(value, secrets)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        return value

    raw = loaded.scenario.model_dump()
    clean = walk(raw)
    return loaded if clean == raw else replace(loaded, scenario=Scenario.model_validate(clean))


async def start_run(
    loaded: LoadedScenario, settings: Settings, *, clock: Clock, hooks: RunHooks = RunHooks(),
    tape: Tape | None = None, fresh: bool = False,
) -> RunResult:
    """Create a run for `loaded` and drive it to the end. Raises ConfigError before creating anything.

    With `tape`, the run's HTTP traffic is recorded to, or replayed from, a cassette, and nothing
    is reused from earlier runs. Raises CassetteError for a cassette that cannot be used. `fresh`
    (or the scenario's `reuse: false`): parse and embed every document, even one whose identical
    bytes and settings are stored."""
    from tvdb.catalog import embedding_model
    from tvdb.tokens import get_encoding

    get_encoding(embedding_model(settings.embedding.model).encoding)  # fail before creating anything
    loaded = masked_scenario(loaded, settings.secret_values())
    recorder: AbstractContextManager[Any] = nullcontext()
    if tape is not None and tape.replay:
        from tvdb.recording.session import with_recorded

        tape = with_recorded(tape)  # the modes it was recorded with: a service recorded as mock replays mock
    elif tape is not None:
        from tvdb.recording.session import file_identity

        # so the summary can tell whether the run wrote the file (and, with --record, that it overwrote one)
        tape = dataclasses.replace(tape, existing=file_identity(tape.path))
    if tape is not None and loaded.hooks is None:  # a `pipeline:` run's session records and replays itself
        from tvdb.recording.session import replay_settings, use_tape

        if tape.replay:
            settings = replay_settings(settings, tape)
        recorder = use_tape(tape, settings, PriceTable.load(settings.prices), now=clock.now)
    fresh = fresh or not loaded.scenario.reuse  # stored below, so a resume stays fresh too
    db = open_storage(settings)
    run_id = new_run_id(clock)
    ctx = _context(settings, db, clock, run_id, loaded.scenario, hooks, tape, reuse=not fresh)
    spec: dict[str, Any] = {
        "scenario": loaded.scenario.model_dump(mode="json"), "scenario_path": str(loaded.path),
        "documents": [str(p) for p in loaded.documents], "settings": ingestion_settings(settings),
        "fresh": fresh,
    }
    if tape is not None:
        spec["tape"] = tape.as_json()
    mode = "replay" if tape is not None and tape.replay else str(settings.mode)  # `tvdb runs` tells replays apart
    jobs = ctx.jobs.create_run(run_id=run_id, scenario=loaded.scenario.name, scenario_path=str(loaded.path),
                               mode=mode, spec=spec, documents=spec["documents"])
    hooks.on_start(run_id, jobs)
    return await _execute(ctx, loaded.scenario, loaded.path.parent, recorder, tape,
                          user=loaded.hooks, open_session=hooks.open_session)


async def resume_run(
    run_id: str, current: Settings, *, clock: Clock, hooks: RunHooks = RunHooks(), force: bool = False
) -> RunResult:
    """Continue `run_id` from each job's last completed state, with the run's ingestion settings and
    the current budgets. Raises RunNotFound, or RunBusy when another live process works on it.

    A run that already finished is not touched (no stage, query or ledger row, nothing written): its
    stored result comes back with a note, and documents a budget refused are named with what to run."""
    db = open_storage(current)
    store = JobStore(db, clock)
    stored = store.run(run_id)
    if stored["status"] == "finished" and stored.get("result_json"):
        jobs = store.jobs(run_id)
        if all(j.state.value in ("complete", "failed") for j in jobs):  # nothing deferred or half-done
            db.close()
            return _already_finished(stored, jobs)
    spec = json.loads(stored["spec_json"])
    if spec.get("tape"):  # refused before the claim, which would mark the run as running in this process
        from tvdb.errors import ConfigError

        what = "replay" if spec["tape"]["record_mode"] == "none" else "recording"
        raise ConfigError(f"run {run_id} was a {what} ({spec['tape']['cassette']}); a cassette session cannot be "
                          f"resumed half way: run it again (`tvdb replay` or `tvdb run --record`)")
    store.claim_run(run_id, force=force)
    settings = restore_settings(spec["settings"], current)
    scenario = Scenario.model_validate(spec["scenario"])
    from tvdb.scenarios.hookcheck import scenario_hooks

    user = scenario_hooks(scenario, Path(spec["scenario_path"]))  # the user's code as it is now
    ctx = _context(settings, db, clock, run_id, scenario, hooks, reuse=not spec.get("fresh", False))
    hooks.on_start(run_id, ctx.jobs.jobs(run_id))
    return await _execute(ctx, scenario, Path(spec["scenario_path"]).parent, user=user,
                          open_session=hooks.open_session)


def _already_finished(row: Mapping[str, Any], jobs: Sequence[Job]) -> RunResult:
    result = RunResult.from_json(json.loads(row["result_json"]))
    note = f"run {row['run_id']} had already finished: nothing was done and nothing written"
    refused = [j for j in jobs if j.error_code == "budget" and j.state.value == "failed"]
    if refused:
        scenario = shlex.quote(str(row.get("scenario_path") or "SCENARIO"))
        note += (f"; {len(refused)} document(s) failed with `budget`: when the budget has room, run "
                 f"`tvdb run {scenario}` again, which reuses the completed documents and retries those")
    return dataclasses.replace(result, notes=(*result.notes, note))


async def _execute(ctx: PipelineContext, scenario: Scenario, base: Path,
                   recorder: AbstractContextManager[Any] | None = None, tape: Tape | None = None, *,
                   user: ScenarioHooks | None = None, open_session: SessionOpener | None = None) -> RunResult:
    try:
        # the cassette covers the pipeline and the expectations' retrieval queries, not the alert
        # deliveries after them (a webhook must never be recorded, nor be refused by a replay)
        with recorder or nullcontext():
            if user is None:
                documents, verdicts, ingestion = await _evaluate(ctx, scenario, base, await run_pipeline(ctx))
            else:
                documents, verdicts, ingestion = await _run_user_code(ctx, scenario, base, user, tape, open_session)
        return await _finish(ctx, scenario, documents, verdicts, tape, ingestion)
    except (KeyboardInterrupt, asyncio.CancelledError):
        ctx.jobs.set_run(ctx.run_id, status="interrupted", finished_at=iso(ctx.clock.now()))
        raise
    except StorageError:
        try:  # may not fit either; a run whose process ended shows as interrupted all the same
            ctx.jobs.set_run(ctx.run_id, status="interrupted", finished_at=iso(ctx.clock.now()))
        except StorageError:
            pass
        raise
    finally:
        await ctx.router.aclose()
        if ctx.db.engine == "postgresql":  # the pool's connections go back to the server now, not at exit
            ctx.db.close()


async def _evaluate(ctx: PipelineContext, scenario: Scenario, base: Path, jobs: list[Job]
                    ) -> tuple[tuple[DocumentResult, ...], list[ExpectationResult], UsageSummary]:
    """Documents, verdicts, and the usage of ingestion alone (before the retrieval queries run)."""
    documents = tuple(document_results(ctx.db, jobs))
    usage = dataclasses.replace(ingestion_usage(ctx.db, ctx.run_id), **_reused_cost(ctx, documents))
    return documents, await evaluate(ctx, scenario.expectations, documents, usage, base), usage


async def _run_user_code(ctx: PipelineContext, scenario: Scenario, base: Path, user: ScenarioHooks,
                         tape: Tape | None, open_session: SessionOpener | None
                         ) -> tuple[tuple[DocumentResult, ...], list[ExpectationResult], UsageSummary]:
    """A `pipeline:` scenario: its documents through the user's code, then the expectations (the `search:`
    hook's queries too), all inside one tvdb session, with the hook modules importable throughout."""
    from tvdb.scenarios import hookrun
    from tvdb.scenarios.hookoutput import hook_stdout_to_stderr
    from tvdb.scenarios.hooks import hook_import_path, import_dirs

    opener = open_session or hookrun.open_session
    # what the user's code prints must not land in stdout, which carries `--json`'s one object
    with hook_import_path(import_dirs(base, scenario.python_path)), \
            hookrun.placeholder_keys(ctx.settings, tape, os.environ), hook_stdout_to_stderr(hookrun.secrets_of(ctx)):
        async with opener(ctx, scenario, tape) as session:
            jobs = await hookrun.run_hook_jobs(ctx, user.pipeline, session)
            documents = tuple(hookrun.hook_document_results(ctx.db, jobs, ctx.jobs.failure_detail))
            search, secrets = user.search, hookrun.secrets_of(ctx)

            async def retrieve(r: RetrievalExpectation) -> ExpectationResult:
                assert search is not None  # the loader refuses retrieval: without search:
                return await hookrun.hook_retrieval(search, session, r, documents, base, secrets,
                                                    ctx.settings.hooks.timeout_s)

            ingestion = ingestion_usage(ctx.db, ctx.run_id)
            verdicts = await evaluate(ctx, scenario.expectations, documents, ingestion, base,
                                      retrieve if search is not None else None)
    return documents, verdicts, ingestion


async def _finish(ctx: PipelineContext, scenario: Scenario, documents: tuple[DocumentResult, ...],
                  verdicts: list[ExpectationResult], tape: Tape | None, ingestion: UsageSummary) -> RunResult:
    # retrieval queries add requests; ingestion's own figures (and the reused documents') stay as
    # max_cost_usd measured them, so the Spent line and --json show the same numbers
    usage = dataclasses.replace(summarize_usage(ctx.db, ctx.run_id),
                                ingestion_would_cost_usd=ingestion.ingestion_would_cost_usd,
                                reused_documents=ingestion.reused_documents,
                                reused_would_cost_usd=ingestion.reused_would_cost_usd)
    result = RunResult(
        run_id=ctx.run_id, scenario=scenario.name, mode=str(ctx.settings.mode), status="finished",
        documents=documents, expectations=tuple(verdicts), usage=usage,
        provenance=tuple(run_provenance(ctx.db, ctx.run_id)), fallbacks=count_fallbacks(ctx),
        spaces=tuple(space_counts(ctx.db, [d.reused_from or d.job_id for d in documents])),
        alerts=await _raise_alerts(ctx), tape=tape_summary(ctx.db, ctx.run_id, tape), pipeline=scenario.pipeline,
    )
    ctx.jobs.set_run(ctx.run_id, status="finished", finished_at=iso(ctx.clock.now()), passed=int(result.passed),
                     result_json=json.dumps(result.as_json()))
    return result


async def _raise_alerts(ctx: PipelineContext) -> tuple[str, ...]:
    """New budget/error-rate alerts, delivered to the configured channels; delivery never fails the run."""
    from tvdb.alerts.delivery import deliver_alerts
    from tvdb.ledger.alerts import evaluate_alerts, format_alert

    refusals = [j.error_message for j in ctx.jobs.jobs(ctx.run_id) if j.error_code == "budget" and j.error_message]
    new = evaluate_alerts(ctx.db, ctx.settings, ctx.clock, refusals=sorted(set(refusals)))
    if new:
        await asyncio.to_thread(deliver_alerts, new, ctx.settings, db=ctx.db, clock=ctx.clock)
    return tuple(format_alert(a) for a in new)


def _reused_cost(ctx: PipelineContext, documents: Sequence[DocumentResult]) -> dict[str, Any]:
    """How many documents were reused, and what ingesting them cost in the runs that did it (None: unpriced)."""
    sources = {d.reused_from for d in documents if d.reused_from}
    if not sources:
        return {}
    by_run: dict[str, set[str]] = {}
    for job_id in sources:
        by_run.setdefault(ctx.jobs.job(job_id).run_id, set()).add(job_id)
    cost: dict[str, float | None] = {}
    for run_id, ids in by_run.items():  # a document's share of its run's embedding needs the whole run
        cost.update((r.job_id, r.would_cost_usd) for r in document_results(ctx.db, ctx.jobs.jobs(run_id))
                    if r.job_id in ids)
    shares = [cost.get(d.reused_from) for d in documents if d.reused_from]
    total = None if any(c is None for c in shares) else sum(c for c in shares if c is not None)
    return {"reused_documents": len(shares), "reused_would_cost_usd": total}


def tape_summary(db: Database, run_id: str, tape: Tape | None) -> dict[str, Any] | None:
    """What a recording or replay run did with its cassette: calls replayed or recorded, cost avoided."""
    if tape is None:
        return None
    store = UsageStore(db)
    # a recording stores only the calls that got an answer: one cut off or timed out is not in the file
    calls, would, unknown, missed = store.run_calls(run_id, "replay" if tape.replay else "real",
                                                    answered_only=not tape.replay)
    usd = None if unknown else nusd_to_usd(would or 0)
    if not tape.replay:
        return _recording_summary(tape, calls, usd, missed, sent=store.run_calls(run_id, "real")[0])
    return {**tape.as_json(), "replayed_calls": int(calls), "avoided_usd": usd,
            "missed_calls": missed}  # requests the cassette had no answer for: neither replayed nor sent


def _recording_summary(tape: Tape, calls: int, usd: float | None, missed: int, *, sent: int) -> dict[str, Any]:
    """A recording's figures (`calls` answered, of `sent`), and whether it wrote its file: vcrpy writes
    nothing when no call got an answer (a connection error or timeout leaves nothing to store), and
    the calls sent are then not "recorded" anywhere."""
    from tvdb.recording.session import file_identity, not_written_reason

    written = file_identity(tape.path) != tape.existing  # an atomic rename gives the file a new identity
    out: dict[str, Any] = {**tape.as_json(), "recorded_calls": int(calls) if written else 0,
                           "recorded_cost_usd": usd if written else 0.0, "missed_calls": missed,
                           "written": written}
    if not written:
        out["not_written"] = not_written_reason(tape, sent)
    # a fresh recording replaced a cassette that was there (a tracked one, in the default folder)
    out["overwrote"] = tape.fresh and written and tape.existing is not None
    return out


def summarize_usage(db: Database, run_id: str) -> UsageSummary:
    usage = UsageStore(db)
    cost, would, unpriced = usage.run_totals(run_id)
    requests = usage.run_requests(run_id)
    return UsageSummary(nusd_to_usd(cost), None if unpriced else nusd_to_usd(would), unpriced, requests)


def ingestion_usage(db: Database, run_id: str) -> UsageSummary:
    """The run's usage before the retrieval queries run: every call so far is ingestion."""
    usage = summarize_usage(db, run_id)
    return dataclasses.replace(usage, ingestion_would_cost_usd=usage.would_cost_usd)


def document_results(db: Database, jobs: Sequence[Job]) -> list[DocumentResult]:
    """Per-document outcome; a document's cost is its parse plus its token share of the run's embedding."""
    if not jobs:
        return []
    run_id = jobs[0].run_id
    usage = UsageStore(db)
    embed_nusd, embed_unknown = usage.run_embed_cost(run_id)
    parse = usage.run_parse_costs(run_id)
    vectors = vector_counts(db, sorted({j.source_job_id for j in jobs}))
    embedded = {j.job_id for j in jobs if j.reused_from is None and j.tokens and vectors.get(j.job_id)}
    total_tokens = sum(j.tokens or 0 for j in jobs if j.job_id in embedded) or 1
    out = []
    for job in jobs:
        parse_nusd, parse_unknown = parse.get(job.job_id, (0, 0))
        mine = job.job_id in embedded
        share = int(embed_nusd) * (job.tokens or 0) / total_tokens if mine else 0
        unknown = parse_unknown or (embed_unknown and mine)
        out.append(DocumentResult(
            path=job.path, job_id=job.job_id, correlation_id=job.correlation_id, status=job.state.value,
            error_code=job.error_code, error_message=job.error_message, media_type=job.media_type,
            pages=job.pages or 0, chunks=job.chunks or 0, tokens=job.tokens or 0,
            vectors=int(vectors.get(job.source_job_id, 0)),
            # summed in nano-dollars, converted once: no float noise (0.0037534599999999997)
            would_cost_usd=None if unknown else nusd_to_usd(parse_nusd + round(share)),
            reused_from=job.reused_from, stage_ms=dict(job.stage_ms or {}), warnings=job.warnings,
        ))
    return out
