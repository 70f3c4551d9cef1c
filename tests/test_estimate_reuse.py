"""`tvdb run --estimate` says what a run would do with each document in a run's words: `would run`,
or `reused` when the ledger holds identical bytes under identical settings (the run completes it from
that job, with no calls, so the forecast does not price it), and its summary line names the reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli

_SCENARIO = "name: s\nmode: mock\ndocuments: [docs/tides.txt, docs/notes.md]\n"


def _project(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.txt").write_text("Tide tables for the harbour sensor, one reading every ten minutes.")
    (docs / "notes.md").write_text("# Notes\n\nClean the sensor window once a month.")
    (tmp_path / "s.yaml").write_text(_SCENARIO)
    return tmp_path / "s.yaml"


def test_the_estimate_says_would_run_then_reused_after_a_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # the summary is one line, whatever the runner's width
    scenario = str(_project(tmp_path))
    cli = in_process_cli(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))
    code, before, _ = cli("run", scenario, "--estimate", "--format", "plain")
    assert code == 0
    assert before.splitlines()[:4] == [
        "Estimate for scenario s (nothing spent, nothing written)",
        "document        status     pages  chunks  tokens",
        "docs/tides.txt  would run      1       1      14",
        "docs/notes.md   would run      1       1      11",
    ]
    assert before.splitlines()[4].startswith("The run would send 2 parse requests and 1 embedding request (")
    assert before.splitlines()[4].endswith("real spend $0.")
    code, _, _ = cli("run", scenario)
    assert code == 0
    code, after, _ = cli("run", scenario, "--estimate", "--format", "plain")
    assert code == 0
    assert after.splitlines()[:5] == [
        "Estimate for scenario s (nothing spent, nothing written)",
        "document        status  pages  chunks  tokens",
        "docs/tides.txt  reused      1       1      14",
        "docs/notes.md   reused      1       1      11",
        "The run would send 0 parse requests and 0 embedding requests (parser mock, embedder mock), worth $0 at live"
        " prices (parse $0 for 0 pages = 0 LlamaParse credits at tier fast, embed $0); real spend $0; 2 documents"
        " would be reused from earlier runs (identical bytes and settings: no parse or embedding calls; `--fresh`"
        " sends them).",
    ]
    # a real run reuses no mock result: "the amount above" would understate it
    assert after.splitlines()[-1] == ("No service runs in real mode, so this run spends nothing; in real mode, which "
                                      "reuses no mock result, it would also send the reused documents: "
                                      "`--estimate --mode real` prices that.")
    assert before.splitlines()[-1] == ("No service runs in real mode, so this run spends nothing; in real mode it "
                                       "would spend the amount above.")
    code, fresh, _ = cli("run", scenario, "--estimate", "--fresh", "--format", "plain")
    assert fresh == before


def test_the_estimate_json_names_the_job_a_reused_document_comes_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = str(_project(tmp_path))
    cli = in_process_cli(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))
    _, out, _ = cli("run", scenario, "--json")
    jobs = [d["job_id"] for d in json.loads(out)["documents"]]
    _, out, _ = cli("run", scenario, "--estimate", "--json")
    est = json.loads(out)
    assert [(d["path"], d["status"], d["reused_from"]) for d in est["documents"]] == [
        ("docs/tides.txt", "reused", jobs[0]), ("docs/notes.md", "reused", jobs[1])]
    assert (est["reused_documents"], est["requests"], est["would_cost_usd"]) == (
        2, {"parse": 0, "embed": 0, "query": 0}, 0.0)


def test_a_scenario_that_never_reuses_is_estimated_as_running_every_document(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = _project(tmp_path)
    cli = in_process_cli(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))
    assert cli("run", str(scenario))[0] == 0
    scenario.write_text(_SCENARIO + "reuse: false\n")
    _, out, _ = cli("run", str(scenario), "--estimate", "--json")
    est = json.loads(out)
    assert [d["status"] for d in est["documents"]] == ["would run", "would run"]
    assert (est["reused_documents"], est["requests"]["parse"]) == (0, 2)


def test_an_estimate_over_a_budget_says_which_and_how_to_let_the_run_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    scenario = str(_project(tmp_path))
    cli = in_process_cli(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))
    code, out, _ = cli("run", scenario, "--estimate", "--mode", "real", "--max-usd", "0.000000001",
                       "--format", "plain")
    assert code == 3
    refusal = [line for line in out.splitlines() if line.startswith("✗ would not fit")]
    assert "No service runs in real mode" not in out
    # real mode: 2 LlamaParse pages at tier fast and 1 embedding request
    assert refusal == ["✗ would not fit the run budget: to allow it, raise the run budget to at least $0.0025005: "
                       "--max-usd, or budget.max_usd in the scenario or tvdb.yaml"]
