"""`tvdb replay --all` over a folder of recorded scenarios (passing, failing expectation, missing
cassette, replay miss): outcomes, JSON, JUnit validated against the schema CI tools read, the
Markdown summary, --require-cassettes, bad input, and canary keys on every new write path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import in_process_cli
from tests.openai_support import CANARY
from tests.suite_support import build_project, scenario_text, valid_junit

NAMES = ["failing", "miss", "missing-cassette", "passing"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("recorded"))


@pytest.fixture
def project(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(recorded, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)  # only used to scrub: it must appear nowhere
    return root


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    return in_process_cli(monkeypatch, capsys)


def test_every_outcome_in_json_with_run_objects_and_totals(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(monkeypatch, capsys)("replay", "--all", "scenarios", "--jobs", "1", "--json")
    doc = json.loads(out)
    assert code == 1
    runs = {r["scenario"]: r for r in doc["runs"]}
    assert [r["scenario"] for r in doc["runs"]] == NAMES  # in path order
    assert {n: r["outcome"] for n, r in runs.items()} == {
        "failing": "failed", "miss": "failed", "missing-cassette": "skipped", "passing": "passed"}
    passing = runs["passing"]
    # the run object of `tvdb run --json`, with the replay block and the suite's keys beside it
    assert {"run_id", "mode", "passed", "exit_code", "documents", "expectations", "provenance"} <= set(passing)
    assert passing["replay"]["replayed_calls"] == 2 and passing["replay"]["record_mode"] == "none"
    assert passing["replay"]["cassette"] == "cassettes/passing.yaml"
    assert passing["replay"]["avoided_usd"] == pytest.approx(1.596e-05)
    assert passing["scenario_path"] == "scenarios/passing.yaml" and passing["interactions"] == 2
    assert passing["passed"] is True and passing["exit_code"] == 0 and passing["cost_usd"] == 0
    failing = runs["failing"]
    assert failing["exit_code"] == 1 and failing["message"].startswith(
        "✗ query 'clean barnacles off the sensor window' finds docs/support.html in the top 1 — top 1 of")
    miss = runs["miss"]
    assert {d["error_code"] for d in miss["documents"]} == {"cassette_miss"}
    assert "closest recorded request: #1 POST /v1/embeddings" in miss["message"]
    assert "differs at word 17: 'TSV for any date range." in miss["message"]
    assert miss["message"].count("closest recorded request") == 1  # one miss, said once for its four documents
    # the request the cassette could not answer was neither replayed nor sent: a miss, not a replayed call
    replay = miss["replay"]
    assert (replay["replayed_calls"], replay["missed_calls"], replay["avoided_usd"]) == (0, 1, 0)
    skipped = runs["missing-cassette"]
    assert skipped["exit_code"] == 0 and skipped["passed"] is None and "run_id" not in skipped
    assert skipped["message"] == (
        "no cassette at cassettes/missing-cassette.yaml; record one with "
        "`tvdb run scenarios/missing-cassette.yaml --mode real --record` (real mode: it spends money once)")
    totals = doc["totals"]
    assert {k: totals[k] for k in ("scenarios", "passed", "failed", "skipped", "errors", "replayed_calls",
                                   "exit_code")} == {"scenarios": 4, "passed": 1, "failed": 2, "skipped": 1,
                                                     "errors": 0, "replayed_calls": 4, "exit_code": 1}
    assert totals["expectations"] == 15 and totals["expectations_failed"] == 6
    assert totals["avoided_usd"] == pytest.approx(2 * 1.596e-05)
    assert doc["jobs"] == 1 and doc["shard"] is None
    assert "✓ passed  scenarios/passing.yaml  2 calls" in err and "– skipped scenarios/missing-cassette.yaml" in err
    assert CANARY not in out + err


def test_junit_validates_and_holds_a_testcase_per_scenario_and_expectation(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(monkeypatch, capsys)("replay", "--all", "scenarios", "-j", "1", "--junit", "out/replay.xml")
    assert code == 1
    root = valid_junit(project / "out" / "replay.xml")
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    # 4 scenarios + 5 expectations for each of the three that ran
    assert len(cases) == 4 + 15 == int(suite.get("tests")) == int(root.get("tests"))
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("8", "0", "1")
    by_name = {c.get("name"): c for c in cases}
    assert by_name["passing"].get("classname") == "scenarios.passing" and len(by_name["passing"]) == 1
    assert by_name["passing"].findtext("system-out") == (
        "replayed 2 calls, avoided $0.00001596 · from cassettes/passing.yaml")
    skipped = by_name["missing-cassette"].find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("no cassette at cassettes/missing-cassette")
    miss = by_name["miss"].find("failure")
    assert miss is not None and miss.get("message") == "5 of 5 expectations failed"
    assert "closest recorded request: #1 POST /v1/embeddings" in (miss.text or "")
    sub = by_name["miss :: missdocs/field-guide.pdf: complete"].find("failure")
    assert sub is not None and sub.get("classname") is None
    assert "differs at word 17: 'TSV for any date range." in (sub.text or "")
    query = by_name["miss :: query 'clean barnacles off the sensor window' finds missdocs/field-guide.pdf in the top 3"]
    text = query.findtext("failure") or ""
    assert text.startswith("no complete document matches 'missdocs/field-guide.pdf'")
    assert "documents missdocs/field-guide.pdf, missdocs/getting-started.md" in text and "differs at word 17" in text
    failing = by_name["failing :: query 'clean barnacles off the sensor window' finds docs/support.html in the top 1"]
    assert (failing.find("failure") is not None
            and failing.find("failure").get("message", "").startswith("top 1 of 15 real vectors: docs/field-guide.pdf"))
    assert by_name["failing :: docs/support.html: complete"].find("failure") is None
    assert CANARY.encode() not in (project / "out" / "replay.xml").read_bytes()


def test_markdown_summary_table(project: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = _cli(monkeypatch, capsys)("replay", "--all", "scenarios", "-j", "1", "--summary-md", "summary.md")
    assert code == 1
    text = (project / "summary.md").read_text()
    lines = text.splitlines()
    assert lines[:9] == [
        "## ❌ tvdb replay: 1 of 4 scenarios passed",
        "",
        "| scenario | result | calls replayed | dollars avoided |",
        "|---|---|---:|---:|",
        "| `failing` (scenarios/failing.yaml) | ❌ failed (4/5 expectations) | 2 | $0.00001596 |",
        "| `miss` (scenarios/miss.yaml) | ❌ failed (0/5 expectations) | 0 | $0 |",
        "| `missing-cassette` (scenarios/missing-cassette.yaml) | ⏭️ skipped (no cassette) | 0 | – |",
        "| `passing` (scenarios/passing.yaml) | ✅ passed | 2 | $0.00001596 |",
        "| **total** | 1 passed, 2 failed, 1 skipped | **4** | **$0.00003192** |",
    ]
    assert "<details><summary>scenarios/miss.yaml: failed</summary>" in lines
    assert "  - body field 'input'[9] differs at word 17: 'TSV for any date range. - Alarms: a', recorded " \
           "'CSV for any date range. - Alarms: a'" in lines
    assert CANARY not in text


def test_the_step_summary_file_is_appended_to(project: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    summary = project / "step-summary.md"
    summary.write_text("# earlier step output\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _cli(monkeypatch, capsys)("replay", "--all", "scenarios/passing.yaml", "--summary-md", str(summary))
    assert summary.read_text().startswith("# earlier step output\n## ✅ tvdb replay: 1 of 1 scenarios passed")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    other = project / "pr-comment.md"
    other.write_text("# kept\n")
    for _ in range(2):
        _cli(monkeypatch, capsys)("replay", "--all", "scenarios/passing.yaml", "--summary-md", str(other))
    text = other.read_text()
    assert text.startswith("# kept\n## ✅") and text.count("## ✅ tvdb replay: 1 of 1 scenarios passed") == 2


def test_require_cassettes_turns_a_skip_into_an_error(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(monkeypatch, capsys)("replay", "--all", "scenarios", "-j", "1", "--require-cassettes",
                                             "--json", "--junit", "r.xml")
    doc = json.loads(out)
    assert code == 2 and doc["totals"]["exit_code"] == 2 and doc["totals"]["errors"] == 1
    entry = next(r for r in doc["runs"] if r["scenario"] == "missing-cassette")
    assert entry["outcome"] == "error" and entry["exit_code"] == 2
    assert entry["message"].startswith("cassettes/missing-cassette.yaml: no such cassette (--require-cassettes); "
                                       "record one with `tvdb run scenarios/missing-cassette.yaml --mode real "
                                       "--record`")
    case = next(c for c in valid_junit(project / "r.xml").iter("testcase") if c.get("name") == "missing-cassette")
    assert case.find("error") is not None and case.find("error").get("type") == "tvdb.error"


def test_a_broken_scenario_is_an_error_naming_file_and_line_and_the_rest_still_run(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "scenarios" / "broken.yaml").write_text("name: broken\ndocuments: [docs/*]\nchunking:\n  max_tokns: 5\n")
    (project / "scenarios" / "bad-yaml.yaml").write_text("name: bad\ndocuments: [docs/*\n")
    code, out, err = _cli(monkeypatch, capsys)("replay", "--all", "scenarios", "-j", "1", "--json")
    runs = {Path(r["scenario_path"]).name: r for r in json.loads(out)["runs"]}
    assert code == 2
    assert runs["broken.yaml"]["outcome"] == "error"
    assert runs["broken.yaml"]["message"].startswith(f"{project / 'scenarios' / 'broken.yaml'}:4: chunking.max_tokns:")
    assert runs["bad-yaml.yaml"]["outcome"] == "error" and "invalid YAML" in runs["bad-yaml.yaml"]["message"]
    assert runs["passing.yaml"]["outcome"] == "passed"  # one bad file does not stop the others


def test_terminal_table_and_verdict(project: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(monkeypatch, capsys)("replay", "--all", "scenarios", "-j", "1", "--format", "plain")
    assert code == 1
    rows = [line.split() for line in out.splitlines()]
    assert ["passing", "scenarios/passing.yaml", "passed", "5/5", "2", "$0.00001596"] == rows[5][:6]
    assert ["missing-cassette", "scenarios/missing-cassette.yaml", "skipped", "–", "0", "–"] == rows[4][:6]
    assert "4 scenarios: 1 passed, 2 failed, 1 skipped · replayed 4 calls, avoided $0.00003192" in out
    assert out.rstrip().endswith("FAILED  (exit code 1)")
    # a skip passes the suite: its reason is in the log, not only in --json
    assert ("scenarios/missing-cassette.yaml:\n  skipped: no cassette at cassettes/missing-cassette.yaml; "
            "record one with `tvdb run scenarios/missing-cassette.yaml --mode real --record` "
            "(real mode: it spends money once)\n") in out


def test_parallel_workers_give_the_serial_outcomes(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cli = _cli(monkeypatch, capsys)
    serial = json.loads(cli("replay", "--all", "scenarios", "-j", "1", "--json")[1])
    code, out, _ = cli("replay", "--all", "scenarios", "-j", "2", "--json")
    parallel = json.loads(out)
    assert code == 1 and parallel["jobs"] == 2

    def essence(doc: dict[str, Any]) -> list[Any]:
        return [(r["scenario"], r["outcome"], r.get("replay"), [e["passed"] for e in r.get("expectations", [])])
                for r in doc["runs"]]

    assert essence(parallel) == essence(serial)
    # both suites went to the one ledger, every run whole
    code, out, _ = cli("runs", "--json")
    assert code == 0 and len(json.loads(out)["runs"]) == 6


def test_usage_errors_say_what_to_do(project: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    cli = _cli(monkeypatch, capsys)
    code, out, err = cli("replay", "cassettes/passing.yaml", "--junit", "x.xml", "--json")
    assert code == 2 and json.loads(out)["error"]["message"] == "--junit work with --all (tvdb replay --all DIR)"
    code, out, _ = cli("replay", "--all", "scenarios", "--shard", "3/2", "--json")
    assert code == 2 and "expected I/N with 1 ≤ I ≤ N" in json.loads(out)["error"]["message"]
    assert json.loads(out)["passed"] is False
    code, out, _ = cli("replay", "--all", "nowhere", "--json")
    assert code == 2 and json.loads(out)["error"]["message"].startswith("nowhere: no such folder")
    (project / "empty").mkdir()
    code, out, _ = cli("replay", "--all", "empty", "--json")
    assert code == 2 and "no scenario files" in json.loads(out)["error"]["message"]
    code, _, err = cli("replay", "--all", "scenarios", "--jobs", "0")
    assert code == 2 and "--jobs" in err


def test_a_single_replay_still_works_beside_the_group(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(monkeypatch, capsys)("replay", "cassettes/passing.yaml", "--json")
    assert code == 0 and json.loads(out)["replay"]["replayed_calls"] == 2


def test_the_schema_accepts_pytests_own_junit(tmp_path: Path) -> None:
    """The schema is the one CI tools read: pytest's own --junitxml output passes it too."""
    (tmp_path / "test_x.py").write_text("import pytest\ndef test_a(): pass\ndef test_b(): assert 0\n"
                                        "@pytest.mark.skip\ndef test_c(): pass\n")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", "p.xml",
                    "test_x.py"], cwd=tmp_path, capture_output=True, timeout=120)
    valid_junit(tmp_path / "p.xml")


def test_nested_folders_and_the_scenario_argument_as_a_file(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (project / "scenarios" / "deep" / "er").mkdir(parents=True)
    (project / "scenarios" / "deep" / "er" / "nested.yaml").write_text(
        scenario_text("nested", documents="../../docs/*", target="../../docs/field-guide.pdf"))
    code, out, _ = _cli(monkeypatch, capsys)("replay", "--all", "scenarios", "-j", "1", "--json")
    paths = [r["scenario_path"] for r in json.loads(out)["runs"]]
    assert paths == ["scenarios/deep/er/nested.yaml", "scenarios/failing.yaml", "scenarios/miss.yaml",
                     "scenarios/missing-cassette.yaml", "scenarios/passing.yaml"]


def test_a_suite_replayed_from_another_folder_says_where_its_cassettes_are(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # cassettes/ is looked up from here, and is not here
    code, out, _ = _cli(monkeypatch, capsys)("replay", "--all", str(project / "scenarios" / "passing.yaml"),
                                             "-j", "1", "--format", "plain")
    assert code == 0
    # where it looked and where the cassette is, not the advice to record one with real money
    assert (f"skipped: no cassette at cassettes/passing.yaml; cassettes are looked up from the current directory "
            f"({elsewhere.resolve()}), and one is at {project / 'cassettes' / 'passing.yaml'}: run from {project} "
            "or set recording.cassette_dir") in out.replace("\n  ", " ")
    assert "spends money" not in out
    assert out.rstrip().endswith("warning: nothing was replayed: every scenario was skipped (see why above; "
                                 "--require-cassettes makes a missing cassette an error)")
