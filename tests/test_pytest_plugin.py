"""tvdb's pytest plugin: scenario files collected by the `tvdb replay --all` rule, replayed when their
cassette exists and run mock otherwise, with sub-results in the failure report, markers, options,
pytest-xdist workers with a data dir each, pytest's own --junitxml and the summary line.

The inner runs are in-process (`pytester.runpytest`) except the pytest-xdist one, which needs
worker processes; the recorded scenario is the repository's own (scenarios/, cassettes/)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[1]
FAILING = """name: too-dear
mode: mock
documents: [quickstart/getting-started.md]
expectations:
  documents: [{document: "*", status: complete}]
  max_cost_usd: 0.000000001
  requests: [{service: openai, min: 1}]
"""
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"  # pytest-asyncio's warning otherwise
PASSING_MOCK = """name: cheap
mode: mock
documents: [quickstart/getting-started.md]
expectations:
  documents: [{document: "*", status: complete}]
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """scenarios/: the recorded emulator scenario (its cassette in cassettes/), a passing and a failing
    mock scenario, a cassette and a config that are YAML but no scenarios; plus one test_*.py."""
    root = pytester.path
    (root / "scenarios").mkdir()
    shutil.copytree(REPO / "scenarios" / "quickstart", root / "scenarios" / "quickstart")
    shutil.copy(REPO / "scenarios" / "real-embeddings-emulated.yaml", root / "scenarios")
    (root / "cassettes").mkdir()
    shutil.copy(REPO / "cassettes" / "real-embeddings-emulated.yaml", root / "cassettes")
    (root / "scenarios" / "cheap.yaml").write_text(PASSING_MOCK)
    (root / "scenarios" / "too-dear.yml").write_text(FAILING)
    (root / "scenarios" / "settings.yaml").write_text("name: not-a-scenario\nmode: mock\n")  # no documents
    shutil.copy(REPO / "cassettes" / "real-embeddings-emulated.yaml", root / "scenarios" / "old-cassette.yaml")
    (root / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (root / "pytest.ini").write_text(INI)
    return root


def _outcomes(result: pytest.RunResult) -> dict[str, str]:
    """nodeid → the -v status word (`PASSED (replay)`, `FAILED (mock)`, `SKIPPED`)."""
    out = {}
    for line in result.outlines:
        if "::" in line and (" PASSED" in line or " FAILED" in line or " SKIPPED" in line):
            node, _, rest = line.partition(" ")
            out[node] = rest.split("  ")[0].strip().rsplit(" [", 1)[0].strip()
    return out


def test_scenario_files_collect_by_the_replay_all_rule(pytester: pytest.Pytester, project: Path) -> None:
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    ids = sorted(line for line in result.outlines if "::" in line)
    assert ids == ["scenarios/cheap.yaml::cheap", "scenarios/real-embeddings-emulated.yaml::real-embeddings-emulated",
                   "scenarios/too-dear.yml::too-dear", "test_plain.py::test_plain"]


def test_replay_mock_failure_report_junit_and_summary(pytester: pytest.Pytester, project: Path) -> None:
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "--junitxml", "out.xml", "scenarios/")
    assert _outcomes(result) == {
        "scenarios/cheap.yaml::cheap": "PASSED (mock)",
        "scenarios/real-embeddings-emulated.yaml::real-embeddings-emulated": "PASSED (replay)",
        "scenarios/too-dear.yml::too-dear": "FAILED (mock)",
    }
    assert result.ret == 1
    text = result.stdout.str()
    # the failure lists every expectation as a sub-result, with the failed one's detail under it
    assert "tvdb scenario too-dear (scenarios/too-dear.yml), mock (no cassette): failed, 2 of 3 expectations " \
           "passed" in text
    at = result.outlines.index("  ✓ quickstart/getting-started.md: complete")
    assert result.outlines[at + 1] == "  ✗ ingesting the documents costs at most $0.000000001 at live prices"
    assert result.outlines[at + 2].startswith("      ingestion would cost $0.00")
    assert result.outlines[at + 3] == "  ✓ openai requests ≥ 1"
    assert "  0 calls replayed, real spend $0, dollars avoided $" in text
    summary = [line for line in result.outlines if line.startswith("tvdb: ")]
    assert len(summary) == 1 and summary[0].startswith("tvdb: 3 scenarios (1 replayed, 2 mock); real spend $0, "
                                                       "dollars avoided $0.0")
    suite = ET.parse(project / "out.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert sorted(cases) == ["cheap", "real-embeddings-emulated", "too-dear"]
    assert [child.tag for child in cases["cheap"] if child.tag != "properties"] == []
    failure = cases["too-dear"].find("failure")
    assert failure is not None and "2 of 3 expectations passed" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in cases["real-embeddings-emulated"].iter("property")}
    assert props["tvdb_mode"] == "replay" and props["tvdb_spent_usd"] == "0.0"
    assert props["tvdb_cassette"] == "cassettes/real-embeddings-emulated.yaml"
    assert int(props["tvdb_replayed_calls"] or 0) >= 2


def test_markers_select_and_strict_markers_accepts_them(pytester: pytest.Pytester, project: Path) -> None:
    result = pytester.runpytest("--strict-markers", "-q", "-p", "no:cacheprovider", "-m", "tvdb_replay", "scenarios/")
    result.assert_outcomes(passed=1, deselected=2)
    assert "tvdb: 1 scenario (1 replayed); real spend $0" in result.stdout.str()
    result = pytester.runpytest("--strict-markers", "-q", "-p", "no:cacheprovider", "-m", "tvdb and not tvdb_mock")
    result.assert_outcomes(passed=1, deselected=3)


def test_tvdb_mode_mock_and_replay_without_a_cassette(pytester: pytest.Pytester, project: Path) -> None:
    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "--tvdb-mode", "mock", "-k", "emulated")
    assert _outcomes(result) == {"scenarios/real-embeddings-emulated.yaml::real-embeddings-emulated": "PASSED (mock)"}
    result = pytester.runpytest("-rs", "-q", "-p", "no:cacheprovider", "--tvdb-mode", "replay", "-k", "cheap")
    result.assert_outcomes(skipped=1)
    assert "no cassette at cassettes/cheap.yaml; record one with `tvdb run scenarios/cheap.yaml --mode real --record`" \
           in result.stdout.str()
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--tvdb-record", "--tvdb-mode", "mock")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--tvdb-record sends real requests and --tvdb-mode mock sends none" in result.stderr.str()


def test_tvdb_collect_false_collects_no_scenario(pytester: pytest.Pytester, project: Path) -> None:
    (project / "pytest.ini").write_text(INI + "tvdb_collect = false\n")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    assert [line for line in result.outlines if "::" in line] == ["test_plain.py::test_plain"]


def test_xdist_workers_each_get_a_data_dir(pytester: pytest.Pytester, project: Path) -> None:
    pytest.importorskip("xdist")
    (project / "scenarios" / "too-dear.yml").unlink()
    data = project / "data"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--tvdb-data-dir", str(data),
                                           "--junitxml", "x.xml", "scenarios/")
    result.assert_outcomes(passed=2)
    assert "tvdb: 2 scenarios (1 replayed, 1 mock); real spend $0" in result.stdout.str()
    ledgers = sorted(p.relative_to(data).as_posix() for p in data.glob("xdist/*/tvdb.db"))
    assert ledgers == ["xdist/gw0/tvdb.db", "xdist/gw1/tvdb.db"]
    assert not (data / "tvdb.db").exists()
    cases = list(ET.parse(project / "x.xml").getroot().iter("testcase"))
    assert sorted(c.get("name") or "" for c in cases) == ["cheap", "real-embeddings-emulated"]
    assert all(not [e for e in c if e.tag in ("failure", "error", "skipped")] for c in cases)


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    """pytest loads it in every run of every project with tvdb installed: pytest and the stdlib only."""
    import subprocess
    import sys

    code = ("import sys, tvdb.pytest_plugin.plugin; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tvdb', 'yaml', 'pydantic', 'openai', 'httpx', 'httpx2', 'vcr', 'numpy', 'sqlite_utils')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(["tvdb", "tvdb.pytest_plugin", "tvdb.pytest_plugin.fixture",
                                       "tvdb.pytest_plugin.options", "tvdb.pytest_plugin.plugin"])


def test_the_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "tvdb"] == ["tvdb.pytest_plugin.plugin"]
