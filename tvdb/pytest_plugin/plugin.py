"""The hooks pytest calls (entry point `pytest11: tvdb`). Imports pytest and the standard library
only; everything else is imported when a scenario item or a tvdb session runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tvdb.pytest_plugin.fixture import tvdb_fixture  # noqa: F401  (registers the `tvdb` fixture)
from tvdb.pytest_plugin.options import STATE, PluginState, add_options, state

MARKERS = {
    "tvdb": "tvdb(**session_kwargs): a tvdb scenario item, or a test whose tvdb session the marker opens "
            "(the arguments of tvdb.session(), e.g. mode='replay', cassette='cassettes/x.yaml')",
    "tvdb_replay": "a tvdb scenario item replayed from its cassette",
    "tvdb_mock": "a tvdb scenario item run in mock mode (no cassette, or --tvdb-mode mock)",
    "tvdb_real": "a tvdb scenario item run in real mode (--tvdb-mode real)",
    "tvdb_hybrid": "a tvdb scenario item run in hybrid mode (--tvdb-mode hybrid)",
    "tvdb_record": "a tvdb scenario item recording a fresh cassette (--tvdb-record)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}" if not text.startswith(name) else text)
    config.stash[STATE] = PluginState.from_config(config)
    if not hasattr(config, "workerinput"):  # an xdist worker's reports are added up by the controller
        config.pluginmanager.register(TallyReporter(), "tvdb-tally")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix.lower() not in (".yaml", ".yml") or not state(parent.config).collect:
        return None
    from tvdb.scenarios.discover import is_scenario_file

    if not is_scenario_file(file_path):
        return None
    from tvdb.pytest_plugin.items import ScenarioFile

    item: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
    return item


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test with `@pytest.mark.tvdb(...)` gets the `tvdb` fixture even when it does not ask for it."""
    for item in items:
        fixturenames = getattr(item, "fixturenames", None)
        if isinstance(fixturenames, list) and "tvdb" not in fixturenames and item.get_closest_marker("tvdb") \
                and isinstance(item, pytest.Function):
            fixturenames.append("tvdb")


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """`PASSED (replay)` / `FAILED (mock)` in `-v` output for a scenario item."""
    if report.when != "call":
        return None
    mode = next((v for k, v in report.user_properties if k == "tvdb_mode"), None)
    if mode is None or mode == "skipped":
        return None
    if report.passed:
        return "passed", ".", (f"PASSED ({mode})", {"green": True})
    if report.failed:
        return "failed", "F", (f"FAILED ({mode})", {"red": True})
    return None


class TallyReporter:
    """Adds up each test's tvdb properties once, from its teardown report (on the pytest-xdist
    controller these are the workers' reports), and prints the summary line. One per pytest run."""

    def __init__(self) -> None:
        from tvdb.pytest_plugin.tally import Tally

        self.tally = Tally()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and any(k.startswith("tvdb_") for k, _ in report.user_properties):
            self.tally.add_report(list(report.user_properties))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        line = self.tally.line()
        if line:
            terminalreporter.write_line(line)
