"""Documents a scenario names through a symlink are shown as the scenario wrote them — in the run's
JSON, its expectation labels and its document errors — never as the link's resolved target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli


def test_a_run_shows_documents_by_the_symlinked_path_the_scenario_wrote(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path.resolve() / "store" / "corpus"
    real.mkdir(parents=True)
    (real / "tides.txt").write_text("Tide tables for the harbour sensor.")
    (real / "empty.txt").write_bytes(b"")
    project = tmp_path.resolve() / "project"
    project.mkdir()
    (project / "docs").symlink_to(real)
    scenario = project / "s.yaml"
    scenario.write_text("name: s\ndocuments: [docs/tides.txt, docs/empty.txt]\nexpectations:\n  retrieval:\n"
                        "    - {query: tide tables, document: docs/tides.txt, top_k: 1}\n")
    monkeypatch.chdir(project)
    code, out, _ = in_process_cli(monkeypatch, capsys)("run", str(scenario), "--json",
                                                       "--data-dir", str(tmp_path / "data"))
    result = json.loads(out)
    assert code == 1  # empty.txt fails, which the scenario does not expect
    assert [d["path"] for d in result["documents"]] == ["docs/tides.txt", "docs/empty.txt"]
    assert [d["absolute_path"] for d in result["documents"]] == [str(project / "docs" / "tides.txt"),
                                                                  str(project / "docs" / "empty.txt")]
    labels = [e["description"] for e in result["expectations"]]
    assert labels == ["docs/tides.txt: complete", "docs/empty.txt: complete",
                      "query 'tide tables' finds docs/tides.txt in the top 1"]
    assert result["expectations"][2]["detail"].startswith("top 1 of 1 mock vectors: docs/tides.txt#0 (")
    assert str(real) not in out


def test_a_scenario_reached_through_a_symlinked_folder_names_documents_as_written_in_json_and_estimate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path.resolve() / "real"
    (real / "docs").mkdir(parents=True)
    (real / "docs" / "tides.txt").write_text("Tide tables for the harbour sensor.")
    (real / "s.yaml").write_text("name: s\ndocuments: [docs/tides.txt]\n")
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    cli = in_process_cli(monkeypatch, capsys)
    data_dir = str(tmp_path / "data")
    code, out, _ = cli("run", "link/s.yaml", "--json", "--data-dir", data_dir)
    doc = json.loads(out)["documents"][0]
    assert code == 0
    assert (doc["path"], doc["absolute_path"]) == ("docs/tides.txt", str(real / "docs" / "tides.txt"))
    code, out, _ = cli("run", "link/s.yaml", "--estimate", "--json", "--data-dir", data_dir)
    doc = json.loads(out)["documents"][0]
    assert (doc["path"], doc["absolute_path"]) == ("docs/tides.txt", str(real / "docs" / "tides.txt"))
    code, out, _ = cli("run", "link/s.yaml", "--estimate", "--format", "plain", "--data-dir", data_dir)
    assert "docs/tides.txt" in out and str(real) not in out
