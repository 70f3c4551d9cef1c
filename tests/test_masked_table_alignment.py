"""A table cell that holds a key is masked before the columns are measured, so `tvdb replay --all`'s
table stays aligned when a scenario's name is key-shaped (`sk-proj-…` is printed `sk-***`)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from tests.cli_support import in_process_cli
from tvdb.cli.output import Col, Kind, MaskingStream, TableData, print_table

REPO = Path(__file__).resolve().parents[1]
KEY_NAME = "sk-proj-Zq7canaryCANARY0123456789"


def _project(root: Path) -> Path:
    """Two scenarios without cassettes (listed in the table, never replayed): a key-shaped name and a short one."""
    scenarios = root / "scenarios"
    shutil.copytree(REPO / "scenarios" / "quickstart", scenarios / "docs")
    (scenarios / "a.yaml").write_text(f"name: {KEY_NAME}\nmode: real\ndocuments: [docs/*]\n")
    (scenarios / "b.yaml").write_text("name: short\nmode: real\ndocuments: [docs/*]\n")
    (root / "tvdb.yaml").write_text("mode: mock\n")
    return scenarios


def _columns_start_alike(lines: list[str], marker: str) -> None:
    """Every line has `marker`'s column (the file column) at the same offset."""
    assert len({line.index(marker) for line in lines}) == 1, "\n".join(lines)


def test_replay_all_table_aligns_a_masked_scenario_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "160")
    cli = in_process_cli(monkeypatch, capsys)
    code, out, err = cli("replay", "--all", "scenarios", "--jobs", "1", "--format", "plain")
    assert code == 2  # the key-shaped name is an error (a cassette is named after it), the other a skip
    lines = out.splitlines()
    assert lines[0] == "Replayed scenarios"
    assert lines[1].startswith("scenario  file              result   expectations  calls replayed  avoided")
    assert lines[2].startswith("sk-***    scenarios/a.yaml  error               –               0        –")
    assert lines[3].startswith("short     scenarios/b.yaml  skipped             –               0        –")
    _columns_start_alike([lines[1].replace("file", "scenarios/"), *lines[2:4]], "scenarios/")
    assert KEY_NAME not in out + err

    code, out, _ = cli("replay", "--all", "scenarios", "--jobs", "1", "--format", "table")
    bordered = [line for line in out.splitlines() if line.startswith(("┃", "│"))]
    assert [line.split("┃" if line.startswith("┃") else "│")[1] for line in bordered] == [
        " scenario ", " sk-***   ", " short    "]
    assert len({len(line) for line in bordered}) == 1


def test_print_table_masks_before_measuring_on_any_stream() -> None:
    table = TableData([Col("name", Kind.TEXT), Col("n", Kind.NUM)], [[KEY_NAME, "1"], ["ab", "22"]])
    plain = io.StringIO()
    print_table(Console(file=plain, width=120), table, plain=True)  # not a MaskingStream: key-shaped only
    assert plain.getvalue().splitlines() == ["name     n", "sk-***   1", "ab      22"]

    secret = "hunter2-not-key-shaped"
    stream = io.StringIO()
    print_table(Console(file=MaskingStream(stream, {secret}), width=120),
                TableData([Col("name", Kind.TEXT), Col("n", Kind.NUM)], [[f"x-{secret}", "1"], ["abcdef", "22"]]),
                plain=True)
    assert stream.getvalue().splitlines() == ["name     n", "x-***    1", "abcdef  22"]


def test_report_files_mask_a_key_shaped_scenario_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`--summary-md` (often `$GITHUB_STEP_SUMMARY`, which GitHub publishes) and `--junit` are written
    to files, past the masking streams: they mask what the terminal masks."""
    _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    cli = in_process_cli(monkeypatch, capsys)
    code, _, _ = cli("replay", "--all", "scenarios", "--jobs", "1", "--summary-md", "s.md", "--junit", "j.xml")
    assert code == 2
    summary, junit = (tmp_path / "s.md").read_text(), (tmp_path / "j.xml").read_text()
    assert KEY_NAME not in summary and KEY_NAME not in junit
    assert "| `sk-***` (scenarios/a.yaml) | ❌ error |" in summary
    assert 'name="sk-***"' in junit
    code, _, _ = cli("report", "--html", "r.html")
    assert code == 0 and KEY_NAME not in (tmp_path / "r.html").read_text()
