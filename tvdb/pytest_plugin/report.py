"""The failure report of a scenario item, as a CI log shows it: the scenario, how it ran, then every
expectation as a sub-result (✓ / ✗ with its detail), then each distinct document error once (a
cassette miss with its diff), then the money."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tvdb.scenarios.replay import ScenarioOutcome

HOW = {"replay": "replayed from {cassette}", "mock": "mock (no cassette)", "real": "real mode",
       "hybrid": "hybrid mode", "record": "recorded to {cassette}"}


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def failure_text(outcome: ScenarioOutcome, mode: str, cwd: Path) -> str:
    from tvdb.money import format_usd
    from tvdb.pytest_plugin.tally import avoided
    from tvdb.scenarios.replay import document_errors, shown

    where = shown(outcome.path, cwd)
    cassette = shown(outcome.cassette, cwd) if outcome.cassette else "its cassette"
    how = HOW.get(mode, mode).format(cassette=cassette)
    result = outcome.result
    if result is None:  # it could not run: the message names the file (and line) and the fix
        return f"tvdb scenario {where} ({how}): error\n{_indent(outcome.message, '  ')}"
    checks = result.expectations
    passed = sum(1 for e in checks if e.passed)
    lines = [f"tvdb scenario {outcome.name} ({where}), {how}: failed, {passed} of {len(checks)} expectations passed"]
    for e in checks:
        lines.append(f"  {'✓' if e.passed else '✗'} {e.description}")
        if e.detail and not e.passed:
            lines.append(_indent(e.detail, "      "))
    errors = document_errors(outcome.failed_documents(), outcome.path.parent)
    if errors:
        lines.append("  documents:")
        lines += [_indent(text, "    ") for text in errors]
    if result.status == "interrupted":
        lines.append("  the run was interrupted")
    usage = result.usage
    lines.append(f"  {outcome.replayed_calls} calls replayed, real spend {format_usd(usage.cost_usd)}, "
                 f"dollars avoided {format_usd(avoided(usage.would_cost_usd, usage.cost_usd))}")
    return "\n".join(lines)
