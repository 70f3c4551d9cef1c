"""Scenario files as pytest items: one item per scenario file, replayed from its cassette or run mock.

The mode is decided at collection (so `-m tvdb_replay` selects): --tvdb-record → record;
--tvdb-mode auto → replay when `<recording.cassette_dir>/<name>.yaml` exists, else mock; any other
--tvdb-mode as given (replay without a cassette: skipped, saying how to record one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tvdb.pytest_plugin.options import PluginState, state

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr

    from tvdb.scenarios.replay import ScenarioOutcome

MODE_MARKERS = ("tvdb_replay", "tvdb_mock", "tvdb_real", "tvdb_hybrid", "tvdb_record")


class ScenarioFailed(Exception):
    """A scenario item failed (an expectation, a cassette miss) or could not run (`outcome.status` error)."""

    def __init__(self, outcome: ScenarioOutcome, mode: str) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome
        self.mode = mode


def _identity(path: Path, st: PluginState) -> tuple[str, Path | None]:
    """(scenario name, the cassette it would replay) read cheaply at collection; (file stem, None)
    when the file or the config cannot be read (the item then reports why when it runs)."""
    from tvdb.yamlfile import load_yaml

    try:
        data = load_yaml(path).data
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            return path.stem, None
        return name, st.cassette_dir() / f"{name}.yaml"
    except Exception:  # noqa: BLE001  (a broken scenario still becomes an item, which fails with file:line)
        return path.stem, None


def planned_mode(st: PluginState, cassette: Path | None) -> str:
    if st.record:
        return "record"
    if st.mode == "auto":
        return "replay" if cassette is not None and cassette.is_file() else "mock"
    return st.mode


class ScenarioFile(pytest.File):
    """A YAML file that is a tvdb scenario: it yields one `ScenarioItem`."""

    def collect(self) -> Iterator[pytest.Item]:
        st = state(self.config)
        name, cassette = _identity(self.path, st)
        item = ScenarioItem.from_parent(self, name=name, mode=planned_mode(st, cassette), cassette=cassette)
        yield item


class ScenarioItem(pytest.Item):
    """One scenario: `mode` is replay | mock | real | hybrid | record; `outcome` once it ran."""

    def __init__(self, *, mode: str, cassette: Path | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.cassette = cassette
        self.outcome: ScenarioOutcome | None = None
        self.add_marker("tvdb")
        self.add_marker(f"tvdb_{mode}")

    def runtest(self) -> None:
        from tvdb.scenarios.replay import ReplayEnv, replay_scenario
        from tvdb.scenarios.single import run_scenario

        st = state(self.config)
        try:
            env = ReplayEnv(cwd=st.cwd, environ=st.environ(), data_dir=st.worker_data_dir())
        except Exception as exc:  # noqa: BLE001  (a broken tvdb.yaml: this item's error, said plainly)
            raise ScenarioFailed(_unusable(self.path, exc), self.mode) from None
        if self.mode == "replay":
            outcome = replay_scenario(self.path, env)
        else:
            outcome = run_scenario(self.path, env, self.mode,  # type: ignore[arg-type]
                                   record_base="hybrid" if st.mode == "hybrid" else "real")
        self.outcome = outcome
        self._record_properties(outcome)
        if outcome.status == "skipped":
            pytest.skip(outcome.message)
        if outcome.status != "passed":
            raise ScenarioFailed(outcome, self.mode)

    def _record_properties(self, outcome: ScenarioOutcome) -> None:
        from tvdb.pytest_plugin.tally import money_properties

        self.user_properties.append(("tvdb_mode", "skipped" if outcome.status == "skipped" else self.mode))
        self.user_properties.append(("tvdb_scenario", outcome.name or self.name))
        if outcome.cassette is not None:
            self.user_properties.append(("tvdb_cassette", str(outcome.cassette)))
        result = outcome.result
        if result is not None:
            self.user_properties.append(("tvdb_replayed_calls", outcome.replayed_calls))
            self.user_properties += money_properties("tvdb", result.usage.cost_usd, result.usage.would_cost_usd)

    def repr_failure(self, excinfo: ExceptionInfo[BaseException],
                     style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, ScenarioFailed):
            from tvdb.pytest_plugin.report import failure_text

            return failure_text(excinfo.value.outcome, excinfo.value.mode, self.config.invocation_params.dir)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"tvdb scenario {self.name} ({self.mode})"


def _unusable(path: Path, exc: BaseException) -> ScenarioOutcome:
    from tvdb.scenarios.replay import ScenarioOutcome

    return ScenarioOutcome(path=path, name=None, status="error", message=str(exc))
