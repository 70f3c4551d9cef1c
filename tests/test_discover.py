"""The scenario-discovery rule shared by `tvdb replay --all` and the pytest plugin."""

from __future__ import annotations

from pathlib import Path

from tvdb.scenarios.discover import discover_scenarios, is_scenario_file


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_scenarios_are_yaml_mappings_with_name_and_documents(tmp_path: Path) -> None:
    cases = {
        "block.yaml": ("name: a\ndocuments: [x.md]\n", True),
        "flow.yml": ("{name: a, documents: [x.md], mode: mock}\n", True),
        "later-keys.yaml": ("# comment\nmode: mock\nexpectations: {documents: [{document: '*'}]}\n"
                            "documents:\n  - x.md\nname: late\n", True),
        "no-documents.yaml": ("name: a\nmode: mock\n", False),
        "nested-only.yaml": ("outer:\n  name: a\n  documents: [x]\n", False),  # not top-level
        "value-not-key.yaml": ("name: documents\ntitle: name\n", False),
        "list.yaml": ("- name: a\n- documents: [x]\n", False),
        "empty.yaml": ("", False),
        "cassette.yaml": ("interactions:\n- request: {body: null, method: POST, uri: 'http://x/v1/embeddings'}\n"
                          "  response: {status: {code: 200}}\nname: x\ndocuments: []\nversion: 1\n", False),
        "config.yaml": ("mode: real\nbudget: {daily_usd: 1}\n", False),
        # broken YAML: a scenario only when it looks like one, so it fails loudly instead of vanishing
        "broken-scenario.yaml": ("name: a\ndocuments: [x.md\n", True),
        "broken-other.yaml": ("key: [unclosed\n", False),
        "readme.md": ("name: a\ndocuments: [x]\n", False),
        "tabs.yaml": ("name: a\ndocuments:\n\t- x\n", True),  # tabs are invalid YAML, but it is a scenario
        "anchor.yaml": ("base: &b [x.md]\nname: a\ndocuments: *b\n", True),
        "two-docs.yaml": ("name: a\n---\ndocuments: [x]\n", False),  # only the first document counts
    }
    for name, (text, _) in cases.items():
        _write(tmp_path, name, text)
    assert {n: is_scenario_file(tmp_path / n) for n in cases} == {n: want for n, (_, want) in cases.items()}
    assert is_scenario_file(tmp_path / "missing.yaml") is False
    assert is_scenario_file(tmp_path) is False


def test_a_cassette_is_recognised_without_reading_its_bodies(tmp_path: Path) -> None:
    # an interaction body that is not valid YAML further down: decided at the first key
    path = _write(tmp_path, "c.yaml", "interactions:\n- request: {}\n" + "x: [\n" * 3)
    assert is_scenario_file(path) is False


def test_discovery_walks_sorted_and_skips_hidden_dirs_and_virtualenvs(tmp_path: Path) -> None:
    scenario = "name: s\ndocuments: [x]\n"
    for rel in ("b.yaml", "a/z.yaml", "a/b/c.yml", ".git/x.yaml", ".tvdb/x.yaml", "node_modules/p/x.yaml",
                "venv/lib/x.yaml", "cassettes/b.yaml", "__pycache__/x.yaml"):
        _write(tmp_path, rel, scenario)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    _write(tmp_path, "cassettes/real.yaml", "interactions: []\nversion: 1\n")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_scenarios(tmp_path)]
    assert found == ["a/b/c.yml", "a/z.yaml", "b.yaml", "cassettes/b.yaml"]
    assert discover_scenarios(tmp_path / "b.yaml") == [tmp_path / "b.yaml"]
    assert discover_scenarios(tmp_path / "cassettes" / "real.yaml") == []


def test_the_repository_scenarios_are_found(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    names = [p.name for p in discover_scenarios(repo / "scenarios")]
    assert names == sorted(names)
    assert {"outage.yaml", "quickstart.yaml", "real-embeddings-emulated.yaml", "real-parse-emulated.yaml"} <= set(names)
    assert discover_scenarios(repo / "cassettes") == []
