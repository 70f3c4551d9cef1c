"""`tvdb.session()`: tvdb's modes, budgets, ledger, faults and cassettes around the user's own code.

    with tvdb.session(mode="mock") as s:          # or `async with`
        my_pipeline.ingest("report.pdf")           # the official SDKs, unchanged
    s.expect(max_cost_usd=0.01, requests=[{"service": "openai", "min": 1}])

See tvdb.sessions.bridge (what is intercepted), tvdb.sessions.engine (what happens to a request),
tvdb.sessions.summary (what it reports). Opening a session opens the ledger database (settings
`data_dir` / `db_path`) and, with a cassette, the cassette; nothing happens at construction but
validating the arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tvdb.clock import Clock, SystemClock
from tvdb.config import Settings
from tvdb.domain import Mode
from tvdb.errors import ConfigError
from tvdb.sessions.engine import Tags
from tvdb.sessions.placeholders import PLACEHOLDER_KEYS, remove_placeholder_keys, set_placeholder_keys
from tvdb.sessions.routes import LLAMA_CLOUD_DEFAULT, OPENAI_DEFAULT, Routes
from tvdb.sessions.summary import SessionSummary

if TYPE_CHECKING:
    from tvdb.recording.session import Tape
    from tvdb.scenarios.results import ExpectationResult

MODES = ("mock", "real", "hybrid", "record", "replay")
_TAGS: contextvars.ContextVar[Tags | None] = contextvars.ContextVar("tvdb_session_tags", default=None)


class Session:
    """A tvdb session; build it with `tvdb.session(...)` and use it once, as a (sync or async) context
    manager or with `open()` / `close()`.

    Attributes: `mode` (the effective mode: mock | real | hybrid | record | replay), `run_id` (the
    ledger rows' run id), `settings` (resolved; secrets masked in repr), `scenario` (its name or None),
    `tape` (the cassette in use or None), `is_open`.
    Methods: `scope()` (tag rows), `openai_client()` / `async_openai_client()` / `llama_cloud_client()` /
    `async_llama_cloud_client()` (SDK clients on the session's transports), `http_transport()` (httpx2) /
    `httpx_transport()` (httpx), `summary()` -> SessionSummary, `expect(...)` -> verdicts or
    ExpectationFailed.
    """

    def __init__(self, settings: Settings, *, mode: str, tape: Tape | None, faults: Any, block_network: bool,
                 intercept: bool, run_id: str, scenario: str | None, clock: Clock,
                 correlation_id: str | None = None) -> None:
        self.settings = settings
        self.correlation_id = correlation_id
        self.mode = mode
        self.run_id = run_id
        self.scenario = scenario
        self.tape = tape
        self.block_network = block_network
        self.intercept = intercept
        self._faults = faults
        self._clock = clock
        self._loop: Any = None
        self._engine: Any = None
        self._bridge: Any = None
        self._recorder: Any = None
        self._closed = False
        self._placeholders: list[str] = []
        self.routes = Routes(settings.openai_base_url, settings.llama_cloud_base_url)

    # -- lifecycle ------------------------------------------------------------------------------
    def open(self) -> Session:
        """Open the ledger (and cassette), start the engine, patch the transports. Raises ConfigError
        when this session was already used or another is open, CassetteError for a bad cassette."""
        import vcr.patch  # noqa: F401 - vcrpy keeps the transport methods it finds at import: the real ones

        from tvdb.ledger.prices import PriceTable
        from tvdb.sessions.bridge import _INSTALLED, Bridge, install, network_method, originals
        from tvdb.sessions.engine import Engine, Loop

        if self._loop is not None or self._closed:
            raise ConfigError("this tvdb.session was already opened; build a new one with tvdb.session(...)")
        if _INSTALLED and self.intercept:
            raise ConfigError("another tvdb.session is open in this process: sessions do not nest")
        passthrough = originals()
        if self.tape is not None:
            from tvdb.recording.session import use_tape

            self._recorder = use_tape(self.tape, self.settings, PriceTable.load(self.settings.prices),
                                      now=self._clock.now)
            self._recorder.__enter__()
        # through this session's own cassette while it records or replays; without one, straight to the
        # network, past any other vcrpy cassette that is open (pytest-recording's `vcr` marker): a request
        # tvdb serves is intercepted once, by tvdb, and never lands unscrubbed in someone else's cassette
        forward = network_method(own_cassette=self.tape is not None)
        self._loop = Loop()
        try:
            self._engine = Engine(self.settings, run_id=self.run_id, scenario=self.scenario, clock=self._clock,
                                  replay=self.tape is not None and self.tape.replay, faults=self._faults,
                                  forward=forward)
            self._loop.run(self._engine.setup())
            self._bridge = Bridge(self._engine, self._loop, self.routes, block_network=self.block_network,
                                  tags=lambda: self._tags(_TAGS.get()))
            if self.intercept:
                install(self._bridge, passthrough)
                self._placeholders = set_placeholder_keys(self.settings, replay=self.mode == "replay",
                                                          environ=os.environ)
        except BaseException:
            self._shutdown(None, None, None)
            raise
        return self

    def close(self, exc_type: type[BaseException] | None = None, exc: BaseException | None = None,
              tb: TracebackType | None = None) -> None:
        """Restore the transports, bill running parse jobs at their estimate, close the ledger and write
        the cassette (nothing is written when the block failed). Idempotent."""
        if self._loop is None:
            return
        self._shutdown(exc_type, exc, tb)

    def _shutdown(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from tvdb.sessions.bridge import uninstall

        self._closed = True
        remove_placeholder_keys(self._placeholders, os.environ)
        self._placeholders = []
        if self.intercept and self._bridge is not None:
            uninstall()
        loop, self._loop = self._loop, None
        try:
            if self._engine is not None and hasattr(self._engine, "db"):
                loop.run(self._engine.teardown())
        finally:
            loop.close()
            if self._recorder is not None:
                recorder, self._recorder = self._recorder, None
                recorder.__exit__(exc_type, exc, tb)

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(exc_type, exc, tb)

    async def __aenter__(self) -> Session:
        return self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close(exc_type, exc, tb)

    @property
    def is_open(self) -> bool:
        return self._loop is not None

    # -- tagging ----------------------------------------------------------------------------------
    def _tags(self, scoped: Tags | None) -> Tags:
        """The tags of a request: the `scope()` it was made in, under the session's `correlation_id`
        (`<session's>::<scope's>` when both are set)."""
        tags = scoped or Tags()
        if self.correlation_id is None:
            return tags
        cid = self.correlation_id if tags.correlation_id is None else f"{self.correlation_id}::{tags.correlation_id}"
        return Tags(cid, tags.job_id, tags.stage)

    @contextlib.contextmanager
    def scope(self, *, correlation_id: str | None = None, job_id: str | None = None,
              stage: str | None = None) -> Iterator[None]:
        """Rows written by requests made inside carry these (a context variable: per thread and task).
        `stage` replaces the default `embed` / `parse` (e.g. `query` for search-time embeddings)."""
        token = _TAGS.set(Tags(correlation_id, job_id, stage))
        try:
            yield
        finally:
            _TAGS.reset(token)

    # -- explicit clients and transports --------------------------------------------------------------
    def _require_open(self) -> Any:
        if self._bridge is None or self._loop is None:
            raise ConfigError("the tvdb.session is not open: use it inside `with tvdb.session(...) as s:`")
        return self._bridge

    def http_transport(self) -> Any:
        """An httpx2 transport (sync and async) that serves OpenAI/LlamaParse requests through this
        session and sends others with a default transport: `httpx2.Client(transport=s.http_transport())`."""
        import httpx2

        from tvdb.sessions.bridge import transport_class

        return transport_class(httpx2)(self._require_open())

    def httpx_transport(self) -> Any:
        """The same for legacy `httpx` (the llama-cloud SDK's library). Raises ImportError without httpx."""
        import httpx

        from tvdb.sessions.bridge import transport_class

        return transport_class(httpx)(self._require_open())

    def _key(self, service: str, given: Any) -> Any:
        if given is not None:
            return given
        secret = self.settings.openai_api_key if service == "openai" else self.settings.llama_cloud_api_key
        if secret is not None:
            return secret.get_secret_value()
        role = "embedder" if service == "openai" else "parser"
        if self.mode in ("real", "hybrid", "record") and getattr(self.settings.services, role) != Mode.MOCK:
            env = "OPENAI_API_KEY" if service == "openai" else "LLAMA_CLOUD_API_KEY"
            if self.mode != "hybrid":
                raise ConfigError(f"the {service} client needs an API key in {self.mode} mode: set {env}, "
                                  "or pass api_key=...")
        return PLACEHOLDER_KEYS[service]

    def openai_client(self, **kwargs: Any) -> Any:
        """`openai.OpenAI` on this session's transport (base URL and key from settings unless given)."""
        import httpx2
        import openai

        self._require_open()
        kwargs["api_key"] = self._key("openai", kwargs.get("api_key"))
        kwargs.setdefault("base_url", self.settings.openai_base_url or OPENAI_DEFAULT)
        kwargs.setdefault("http_client", httpx2.Client(transport=self.http_transport()))
        return openai.OpenAI(**kwargs)

    def async_openai_client(self, **kwargs: Any) -> Any:
        """`openai.AsyncOpenAI` on this session's transport."""
        import httpx2
        import openai

        self._require_open()
        kwargs["api_key"] = self._key("openai", kwargs.get("api_key"))
        kwargs.setdefault("base_url", self.settings.openai_base_url or OPENAI_DEFAULT)
        kwargs.setdefault("http_client", httpx2.AsyncClient(transport=self.http_transport()))
        return openai.AsyncOpenAI(**kwargs)

    def llama_cloud_client(self, **kwargs: Any) -> Any:
        """`llama_cloud.LlamaCloud` on this session's httpx transport. Raises ImportError without llama-cloud."""
        import httpx
        import llama_cloud

        self._require_open()
        kwargs["api_key"] = self._key("llamaparse", kwargs.get("api_key"))
        kwargs.setdefault("base_url", self.settings.llama_cloud_base_url or LLAMA_CLOUD_DEFAULT)
        kwargs.setdefault("http_client", httpx.Client(transport=self.httpx_transport()))
        return llama_cloud.LlamaCloud(**kwargs)

    def async_llama_cloud_client(self, **kwargs: Any) -> Any:
        """`llama_cloud.AsyncLlamaCloud` on this session's httpx transport."""
        import httpx
        import llama_cloud

        self._require_open()
        kwargs["api_key"] = self._key("llamaparse", kwargs.get("api_key"))
        kwargs.setdefault("base_url", self.settings.llama_cloud_base_url or LLAMA_CLOUD_DEFAULT)
        kwargs.setdefault("http_client", httpx.AsyncClient(transport=self.httpx_transport()))
        return llama_cloud.AsyncLlamaCloud(**kwargs)

    # -- results ----------------------------------------------------------------------------------
    def _hybrid_stages(self) -> list[str]:
        from tvdb.services.modes import service_mode

        return [stage for stage, role in (("parse", "parser"), ("embed", "embedder"))
                if service_mode(self.settings, role)[0] is Mode.HYBRID]  # type: ignore[arg-type]

    def _read(self, fn: Any) -> Any:
        """`fn(db)` on the session's ledger: on its loop while open, else on a fresh connection."""
        if self._loop is not None:
            engine = self._engine

            async def run() -> Any:
                return fn(engine.db, len(engine._pending))

            return self._loop.run(run())
        from tvdb.db import open_storage

        db = open_storage(self.settings)
        try:
            return fn(db, 0)
        finally:
            db.close()

    def summary(self) -> SessionSummary:
        """The session's calls so far (see `SessionSummary`); also after it closed."""
        from tvdb.sessions.summary import build_summary

        stages = self._hybrid_stages()
        summary: SessionSummary = self._read(lambda db, pending: build_summary(db, self.run_id, stages, pending))
        return summary

    def expect(self, *, max_cost_usd: float | None = None, max_spent_usd: float | None = None,
               requests: Sequence[Mapping[str, Any]] = (), provenance: Mapping[str, Any] | None = None,
               ) -> list[ExpectationResult]:
        """Check the scenario expectation vocabulary against this session's rows:
        `max_cost_usd` (at live prices), `max_spent_usd` (real money), `requests` (a list of
        `{service, status?, retries?, min?, max?}`), `provenance` (`{require_real, max_mock_fraction,
        max_fallbacks}`). Returns every verdict; raises `ExpectationFailed` (an AssertionError) listing
        the misses, ConfigError for an expectation that does not validate."""
        from tvdb.services.modes import service_mode
        from tvdb.sessions.summary import ExpectationFailed, evaluate

        summary = self.summary()
        modes = {role: service_mode(self.settings, role)[0] for role in ("parser", "embedder")}
        results: list[ExpectationResult] = self._read(lambda db, _: evaluate(
            db, self.run_id, modes, summary, max_cost_usd=max_cost_usd, max_spent_usd=max_spent_usd,
            requests=requests, provenance=provenance))
        if not all(r.passed for r in results):
            raise ExpectationFailed(self.run_id, results)
        return results


def _scenario(scenario: str | Path, cwd: Path) -> Any:
    from tvdb.scenarios.loader import load_scenario

    path = Path(scenario)
    if not path.is_absolute():
        path = cwd / path
    if not path.exists() and not path.suffix:
        for candidate in (cwd / "scenarios" / f"{scenario}.yaml", cwd / "scenarios" / f"{scenario}.yml"):
            if candidate.exists():
                path = candidate
                break
    return load_scenario(path)


def _named_origins(settings: Settings, mode: str | None) -> Settings:
    origins = {}
    for key in ("mode", "services.parser", "services.embedder"):
        origin = settings.origin_of(key)
        if origin == "set by --mode":
            origin = f"set by tvdb.session(mode={mode!r})"
        elif origin is not None and origin.startswith("set by --service "):
            origin = f"set by tvdb.session(services={{{origin.removeprefix('set by --service ')}}})"
        if origin is not None:
            origins[key] = origin
    return settings.with_origins(origins)


def session(
    *,
    mode: str | None = None,
    scenario: str | Path | None = None,
    cassette: str | Path | None = None,
    record_mode: str | None = None,
    daily_budget_usd: float | None = None,
    run_budget_usd: float | None = None,
    faults: Sequence[Mapping[str, Any]] | Any = None,
    block_network: bool = False,
    services: Mapping[str, str] | None = None,
    run_id: str | None = None,
    cwd: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    intercept: bool = True,
    clock: Clock | None = None,
    correlation_id: str | None = None,
) -> Session:
    """A tvdb session around the user's own code; open it with `with` / `async with`.

    `mode`: "mock" (the in-process emulator answers, no socket), "real" (out to the service under the
    budget guard, metered), "hybrid" (ServiceRouter per request), "record" (real, written to a fresh
    `cassette`), "replay" (answered from `cassette`, nothing sent); None: the settings layering
    (tvdb.yaml < `scenario` < TVDB_MODE; default mock). With mode real/hybrid and a `cassette`,
    `record_mode` ("once" | "new_episodes" | "all"; default "new_episodes") says how to use it.
    `scenario`: a scenario file (or a name under ./scenarios) whose settings, faults and name apply.
    `daily_budget_usd` / `run_budget_usd` (USD): the daily budget and this session's budget.
    `faults`: a scenario `faults:` list (or a FaultPlan). `services`: per-service modes, e.g.
    {"parser": "mock", "embedder": "real"}. `block_network`: refuse httpx/httpx2 requests tvdb does
    not serve. `run_id`: the ledger rows' run id (default `session-<UTC time>-<hex>`). `cwd` /
    `environ`: where tvdb.yaml and .env are read, and the environment (defaults: the process's).
    `settings`: use these resolved settings instead of the layering. `intercept=False`: patch nothing
    (use `s.openai_client()` & co. or `s.http_transport()`). `correlation_id`: every ledger row of the
    session carries it (a `s.scope(correlation_id=X)` inside makes it `<correlation_id>::X`); the
    pytest fixture passes the test's node id.

    Raises ConfigError (bad mode, record/replay without a cassette, bad budget), ScenarioError (a bad
    scenario file, file:line:key); CassetteError at open for a missing or hostile replay cassette."""
    from tvdb.config import resolve_settings
    from tvdb.recording.session import RECORD_MODES, Tape

    if mode is not None and mode not in MODES:
        raise ConfigError(f"tvdb.session(mode={mode!r}): expected one of {', '.join(MODES)}")
    if mode in ("record", "replay") and cassette is None:
        raise ConfigError(f"tvdb.session(mode={mode!r}) needs cassette=PATH (a vcrpy YAML file)")
    if record_mode is not None and record_mode not in RECORD_MODES:
        raise ConfigError(f"tvdb.session(record_mode={record_mode!r}): expected one of {', '.join(RECORD_MODES)}")
    base = Path(cwd) if cwd is not None else Path.cwd()
    loaded = _scenario(scenario, base) if scenario is not None else None
    if settings is None:
        flags: dict[str, Any] = {"mode": {"record": "real", "replay": "real"}.get(mode or "", mode),
                                 "daily_budget_usd": daily_budget_usd, "services": dict(services) if services else None}
        if run_budget_usd is not None:
            flags["budget"] = {"max_usd": run_budget_usd}
        settings = _named_origins(resolve_settings(
            cwd=base, environ=os.environ if environ is None else environ, flags=flags,
            scenario=loaded.scenario.settings_layer() if loaded else None,
            scenario_doc=loaded.source if loaded else None), mode)
    else:
        settings = _with_arguments(settings, mode, daily_budget_usd, run_budget_usd, services)
    effective = mode or str(settings.mode)
    if faults is None and loaded is not None and loaded.scenario.faults:
        faults = list(loaded.scenario.faults)
    plan = _fault_plan(faults)
    tape = None
    if cassette is not None:
        if effective == "mock":
            raise ConfigError("a cassette keeps real HTTP traffic and mode mock sends none: use mode real, "
                              "hybrid, record or replay with cassette=")
        path = Path(cassette) if Path(cassette).is_absolute() else base / cassette
        name = loaded.scenario.name if loaded else None
        if effective == "replay":
            tape = Tape(path, "none", scenario=name)
        elif effective == "record":
            tape = Tape(path, "all", fresh=True, scenario=name)
        else:
            tape = Tape(path, record_mode or "new_episodes", scenario=name)
    clock = clock or SystemClock()
    return Session(settings, mode=effective, tape=tape, faults=plan, block_network=block_network,
                   intercept=intercept, run_id=run_id or f"session-{clock.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
                   scenario=loaded.scenario.name if loaded else None, clock=clock, correlation_id=correlation_id)


def _with_arguments(settings: Settings, mode: str | None, daily_budget_usd: float | None,
                    run_budget_usd: float | None, services: Mapping[str, str] | None) -> Settings:
    """Resolved `settings` (from a caller that did the layering) with this call's arguments on top."""
    update: dict[str, Any] = {}
    origins = {k: o for k in ("mode", "services.parser", "services.embedder") if (o := settings.origin_of(k))}
    if mode is not None:
        update["mode"] = Mode({"record": "real", "replay": "real"}.get(mode, mode))
        origins["mode"] = f"set by tvdb.session(mode={mode!r})"
    if daily_budget_usd is not None:
        update["daily_budget_usd"] = daily_budget_usd
    if run_budget_usd is not None:
        update["budget"] = settings.budget.model_copy(update={"max_usd": run_budget_usd})
    if services:
        unknown = sorted(set(services) - {"parser", "embedder"})
        bad = sorted(v for v in services.values() if v not in ("mock", "real", "hybrid"))
        if unknown or bad:
            raise ConfigError(f"tvdb.session(services=...): services are parser and embedder, modes mock, real "
                              f"and hybrid (got {', '.join(unknown + bad)})")
        update["services"] = settings.services.model_copy(update={k: Mode(v) for k, v in services.items()})
        origins.update({f"services.{k}": f"set by tvdb.session(services={{{k}={v}}})" for k, v in services.items()})
    if not update:
        return settings
    from pydantic import ValidationError

    from tvdb.validation import describe, dotted

    try:
        validated = Settings.model_validate({**settings.model_dump(), **update})
    except ValidationError as exc:
        problems = "; ".join(f"{dotted(e['loc'])}: {describe(e, Settings)}" for e in exc.errors())
        raise ConfigError(f"tvdb.session(...): {problems}") from None
    return validated.with_origins(origins)


def _fault_plan(faults: Any) -> Any:
    if faults is None:
        return None
    from pydantic import ValidationError

    from tvdb.faults.plan import FaultPlan
    from tvdb.validation import describe

    if isinstance(faults, FaultPlan):
        return faults
    try:
        return FaultPlan.of(list(faults))
    except ValidationError as exc:
        problems = "; ".join(f"faults[{'.'.join(str(p) for p in e['loc'][1:])}]: {describe(e, FaultPlan)}"
                             for e in exc.errors())
        raise ConfigError(f"tvdb.session(faults=...): {problems}") from None
