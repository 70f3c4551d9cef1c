"""Replay one scenario from its cassette and say how it went: the unit `tvdb replay --all` runs in
parallel and the pytest plugin runs once per collected item.

A replay runs the real clients with every HTTP answer taken from the cassette and the network
blocked (tvdb.recording.session); vcrpy and the network block patch the process, so one replay
runs per process at a time (the suite uses worker processes, pytest-xdist has one per worker).
Replayed calls make no budget reservation, so replays share one ledger safely.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tvdb.errors import EXIT_EXPECTATION_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, TvdbError
from tvdb.redaction import redact

if TYPE_CHECKING:
    from tvdb.config import Settings
    from tvdb.scenarios.loader import LoadedScenario
    from tvdb.scenarios.results import RunResult

Status = Literal["passed", "failed", "skipped", "error"]
_INTERACTION = re.compile(rb"^- request:", re.M)  # vcrpy writes each interaction as a top-level list item


@dataclass(frozen=True)
class ReplayEnv:
    """Where a replay's settings come from, as the CLI resolves them: defaults < config file
    (`config_file`, else `<cwd>/tvdb.yaml`) < scenario < `environ` < `data_dir`. Picklable."""

    cwd: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    data_dir: Path | None = None

    def settings(self, loaded: LoadedScenario | None = None) -> Settings:
        """Raises ConfigError (or ScenarioError for a scenario key)."""
        from tvdb.config import resolve_settings

        return resolve_settings(
            cwd=self.cwd, environ=self.environ, config_file=self.config_file,
            flags={"data_dir": self.data_dir} if self.data_dir is not None else None,
            scenario=loaded.scenario.settings_layer() if loaded else None,
            scenario_doc=loaded.source if loaded else None,
        )


def cassette_for(loaded: LoadedScenario, settings: Settings, cwd: Path) -> Path:
    """`<recording.cassette_dir>/<scenario name>.yaml`, the configured folder (default `cassettes`)
    taken relative to `cwd` — what `tvdb replay --scenario` uses."""
    from tvdb.recording.session import cassette_path

    path = cassette_path(settings, loaded.scenario.name)
    return path if path.is_absolute() else cwd / path


def _elsewhere_hint(cassette: Path, scenario: Path, cwd: Path) -> str | None:
    """When the cassette folder is relative and the cassette sits under a folder above the scenario
    instead (a suite replayed from another directory): say where it looked and where it is, rather
    than advising a paid re-recording."""
    try:
        relative = cassette.relative_to(cwd)
    except ValueError:
        return None  # an absolute cassette_dir: nothing to look for elsewhere
    for root in list(scenario.resolve().parents)[:3]:
        found = root / relative
        if found.is_file() and found.resolve() != cassette.resolve():
            return (f"cassettes are looked up from the current directory ({cwd.resolve()}), and one is at "
                    f"{found}: run from {root} or set recording.cassette_dir")
    return None


def shown(path: Path, cwd: Path) -> str:
    """`path` as a user types it from `cwd`: relative when inside it, else absolute."""
    try:  # the folder is resolved, not the file: a symlink loop there is named, not followed
        return (path.parent.resolve() / path.name).relative_to(cwd.resolve()).as_posix()
    except ValueError:
        return str(path)


def _first_line(text: str) -> str:
    first, _, rest = text.partition("\n")
    return first + (" …" if rest.strip() else "")


def document_errors(failed: Iterable[tuple[str, str]], base: Path) -> list[str]:
    """Failed documents grouped by identical error text (one miss usually fails a whole batch):
    `documents a.md, b.pdf failed: cassette_miss: …` with the message's own lines kept."""
    groups: dict[str, list[str]] = {}
    for path, error in failed:
        try:
            name = Path(path).relative_to(base.resolve()).as_posix()
        except ValueError:
            name = path
        groups.setdefault(error, []).append(name)
    return [f"{'document' if len(names) == 1 else 'documents'} {', '.join(names)} failed: {error}"
            for error, names in groups.items()]


def _from_here(path: Path) -> Path:
    """`path` relative to the working directory when inside it (still opens the same file)."""
    try:
        return (path.parent.resolve() / path.name).relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def count_interactions(cassette: Path) -> int:
    """Recorded interactions in a cassette without parsing it (for balancing shards): vcrpy's
    top-level `- request:` items. 0 for a missing or unreadable file."""
    from tvdb.files import read_regular_file
    from tvdb.recording.store import MAX_CASSETTE_BYTES

    try:  # never a plain read: a FIFO in the cassette's place would hang the planning of --all
        return len(_INTERACTION.findall(read_regular_file(cassette, MAX_CASSETTE_BYTES)))
    except OSError:
        return 0


@dataclass(frozen=True)
class ScenarioOutcome:
    """How one scenario's replay went.

    status: passed | failed (an expectation failed, e.g. after a cassette miss) | skipped (no
    cassette) | error (the scenario or cassette cannot be used; `message` says why and how to fix).
    `result` is the run (its `as_json()` is the `tvdb run --json` object); None unless it ran.
    `interactions`: recorded interactions in the cassette; `duration_s`: wall time of this replay."""

    path: Path
    name: str | None
    status: Status
    message: str = ""
    cassette: Path | None = None
    result: RunResult | None = None
    interactions: int = 0
    duration_s: float = 0.0
    internal: bool = False  # the error is a bug in tvdb (exit 70), not a problem of the inputs

    @property
    def exit_code(self) -> int:
        if self.result is not None:
            return self.result.exit_code
        if self.status == "error":
            return EXIT_INTERNAL if self.internal else EXIT_USAGE
        return EXIT_EXPECTATION_FAILED if self.status == "failed" else EXIT_OK

    @property
    def replayed_calls(self) -> int:
        tape = self.result.tape if self.result is not None else None
        return int(tape.get("replayed_calls") or 0) if tape else 0

    @property
    def avoided_usd(self) -> float | None:
        """The money the replayed calls would have cost live; None when one was unpriced."""
        tape = self.result.tape if self.result is not None else None
        if not tape:
            return 0.0
        value = tape.get("avoided_usd")
        return float(value) if isinstance(value, int | float) else None

    def failed_documents(self) -> list[tuple[str, str]]:
        """(document path, `error_code: message`) of each failed document: a cassette miss's diff lives here."""
        if self.result is None:
            return []
        return [(d.path, f"{d.error_code}: {d.error_message or ''}".rstrip(": "))
                for d in self.result.documents if d.status == "failed"]

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(expectation, detail) of each failed expectation, for sub-results in a report."""
        if self.result is None:
            return []
        return [(e.description, e.detail) for e in self.result.expectations if not e.passed]

    def report(self) -> str:
        """The failure text a CI log shows: each failed expectation on a line, then each distinct
        document error (a cassette miss's diff) once, with the documents it failed."""
        if self.result is None:
            return self.message
        lines = [f"✗ {desc}" + (f" — {_first_line(detail)}" if detail else "") for desc, detail in self.failures]
        lines += document_errors(self.failed_documents(), self.path.parent)
        if self.result.status == "interrupted":
            lines.append("the run was interrupted")
        return "\n".join(lines) or self.message

    def as_json(self) -> dict[str, Any]:
        """The scenario's entry in `tvdb replay --all --json`: the run object (as `tvdb run --json`)
        when it ran, with `scenario_path`, `outcome`, `message`, `cassette`, `interactions` and
        `duration_s` beside it; without a run, those keys and `passed`/`exit_code` (`passed` null
        for a skipped scenario, which neither passed nor failed; false for an error)."""
        passed = None if self.status == "skipped" else False
        base: dict[str, Any] = self.result.as_json(self.path.resolve().parent) if self.result is not None else {
            "scenario": self.name, "passed": passed, "exit_code": self.exit_code}
        return {**base, "scenario_path": str(self.path), "outcome": self.status, "message": self.message,
                "cassette": str(self.cassette) if self.cassette else None, "interactions": self.interactions,
                "duration_s": round(self.duration_s, 3)}


def _error(path: Path, exc: BaseException, *, name: str | None = None, cassette: Path | None = None,
           started: float, secrets: list[str]) -> ScenarioOutcome:
    internal = not isinstance(exc, TvdbError)
    text = str(exc) if not internal else f"internal error: {type(exc).__name__}: {exc} (a bug in tvdb; report it)"
    return ScenarioOutcome(path=path, name=name, status="error", message=redact(text, secrets), cassette=cassette,
                           duration_s=time.perf_counter() - started, internal=internal)


def replay_scenario(path: Path, env: ReplayEnv, *, require_cassette: bool = False) -> ScenarioOutcome:
    """Load `path`, find its cassette and replay it in this process (network blocked, sleeps skipped).

    Never raises for a bad scenario, configuration or cassette: those are `error` outcomes whose
    message names the file (and line) and what to do. A scenario without a cassette is `skipped`,
    or an `error` with `require_cassette`. Not thread-safe (see the module docstring)."""
    from tvdb.clock import VirtualClock
    from tvdb.recording.session import Tape, configured_secrets, record_hint
    from tvdb.recording.store import read_cassette
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import start_run

    started = time.perf_counter()
    secrets: list[str] = []
    name: str | None = None
    cassette: Path | None = None
    try:
        loaded = load_scenario(path)
        name = loaded.scenario.name
        settings = env.settings(loaded)
        secrets = configured_secrets(settings)
        cassette = cassette_for(loaded, settings, env.cwd)
        if not os.path.lexists(cassette):  # a directory or FIFO there is refused below, not skipped
            where = shown(cassette, env.cwd)
            hint = _elsewhere_hint(cassette, loaded.path, env.cwd) or record_hint(shown(path, env.cwd))
            if require_cassette:
                return ScenarioOutcome(path=path, name=name, status="error", cassette=cassette,
                                       message=f"{where}: no such cassette (--require-cassettes); {hint}",
                                       duration_s=time.perf_counter() - started)
            return ScenarioOutcome(path=path, name=name, status="skipped", cassette=cassette,
                                   message=f"no cassette at {where}; {hint}",
                                   duration_s=time.perf_counter() - started)
        cassette = _from_here(cassette)  # messages and reports name `cassettes/x.yaml`, as a user types it
        recorded = read_cassette(cassette).tvdb  # a hostile or malformed cassette is refused before a run is created
        tape = Tape(path=cassette, record_mode="none", scenario=name, scenario_path=str(loaded.path),
                    recorded=recorded)
        result = asyncio.run(start_run(loaded, settings, clock=VirtualClock(), tape=tape))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001  (one scenario's failure must not end the suite)
        return _error(path, exc, name=name, cassette=cassette, started=started, secrets=secrets)
    outcome = ScenarioOutcome(path=path, name=name, status="passed" if result.passed else "failed",
                              cassette=cassette, result=result, interactions=count_interactions(cassette),
                              duration_s=time.perf_counter() - started)
    return outcome if result.passed else _with_report(outcome, secrets)


def _with_report(outcome: ScenarioOutcome, secrets: list[str]) -> ScenarioOutcome:
    from dataclasses import replace

    return replace(outcome, message=redact(outcome.report(), secrets))
