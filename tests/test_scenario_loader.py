"""Scenario files: required keys, defaults, paths and globs, and file:line:key errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvdb.errors import ScenarioError
from tvdb.scenarios.loader import load_scenario

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "docs").mkdir(exist_ok=True)
    for name in ("a.md", "b.txt", "c.md"):
        (tmp_path / "docs" / name).write_text(f"text of {name}")
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_minimal_scenario_gets_defaults(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, "name: s\ndocuments: [docs/a.md]\n"))
    assert loaded.scenario.name == "s"
    assert loaded.documents == ((tmp_path / "docs" / "a.md").resolve(),)
    assert loaded.scenario.expectations.documents == []
    assert loaded.scenario.settings_layer() == {}
    assert loaded.scenario.reuse is True  # documents stored by an earlier run are reused unless it says not


def test_globs_are_sorted_and_deduplicated(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, "name: s\ndocuments: ['docs/*.md', docs/a.md, 'docs/*']\n"))
    assert [p.name for p in loaded.documents] == ["a.md", "c.md", "b.txt"]


def test_absolute_paths(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.txt"
    other.write_text("x")
    loaded = load_scenario(write(tmp_path, f"name: s\ndocuments: ['{other}']\n"))
    assert loaded.documents == (other.resolve(),)


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("name: s\ndocuments: [docs/a.md]\nchunkng: {max_tokens: 5}\n", 3, "chunkng", "unknown key 'chunkng'"),
        ("name: s\ndocuments:\n  - docs/a.md\n  - docs/missing.pdf\n", 4, "documents[1]", "no such document"),
        ("name: s\ndocuments: ['docs/*.pdf']\n", 2, "documents[0]", "matches no file"),
        ("documents: [docs/a.md]\n", 1, "name", "required key is missing"),
        ("name: s\ndocuments: [docs/a.md]\nexpectations:\n  max_cost_usd: cheap\n", 4,
         "expectations.max_cost_usd", "must be a number of USD like 5 or 0.50, got 'cheap'"),
        ("name: s\ndocuments: [docs/a.md]\nexpectations:\n  documents:\n    - document: '*'\n      stat: failed\n",
         6, "expectations.documents[0].stat", "unknown key 'stat'"),
        ("name: s\ndocuments: [docs/a.md]\nexpectations:\n  documents:\n    - status: failed\n"
         "      error_code: exploded\n", 6, "expectations.documents[0].error_code", "unknown error code"),
        ("name: s\ndocuments: [docs/a.md\n", 3, None, "invalid YAML"),
        ("name: s\ndocuments: [docs/a.md]\nexpectations:\n  requests:\n    - {service: llamaparse, stage: embed}\n",
         5, "expectations.requests[0]", "llamaparse has no embed requests (its stages: parse)"),
        ("name: s\ndocuments: [docs/a.md]\nreuse: sometimes\n", 3, "reuse", "must be true or false, got 'sometimes'"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str | None, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert err.path == path.resolve()
    assert err.line == line
    assert err.key == key
    assert message in str(err)
    assert str(err).startswith(f"{path.resolve()}:{line}: ")


def test_unknown_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"allowed: .*name.*documents"):
        load_scenario(write(tmp_path, "name: s\ndocuments: [docs/a.md]\nbogus: 1\n"))


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="must be a mapping"):
        load_scenario(write(tmp_path, "- just\n- a list\n"))


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\ndocuments: [docs/a.md]\n")
    with pytest.raises(ScenarioError, match="invalid YAML"):
        load_scenario(path)


def test_shipped_scenarios_are_valid() -> None:
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        loaded = load_scenario(path)
        assert loaded.documents, path


@pytest.mark.parametrize(
    ("expectations", "line", "key"),
    [
        ("  documents:\n    - document: docs/typo.md\n      status: complete\n", 5,
         "expectations.documents[0].document"),
        ("  retrieval:\n    - query: text of\n      document: nope.md\n", 6, "expectations.retrieval[0].document"),
    ],
)
def test_expectation_naming_no_document_is_caught_before_running(
    tmp_path: Path, expectations: str, line: int, key: str
) -> None:
    path = write(tmp_path, "name: s\ndocuments: ['docs/*']\nexpectations:\n" + expectations)
    with pytest.raises(ScenarioError, match="names none of the scenario's 3 documents") as info:
        load_scenario(path)
    assert (info.value.line, info.value.key) == (line, key)


def test_expectation_names_a_document_outside_the_scenario_dir_via_dotdot_and_symlink(tmp_path: Path) -> None:
    """A user's scenario in `scenarios/` naming `../shared/corpus/x.pdf` (with `shared` a symlink, as in
    this repo's checkouts) must match the document `documents:` resolved from the same text."""
    real = tmp_path / "real-shared" / "corpus"
    real.mkdir(parents=True)
    (real / "invalid.pdf").write_bytes(b"%PDF-1.4 broken")
    (real / "ok.txt").write_text("some text")
    (tmp_path / "shared").symlink_to(tmp_path / "real-shared")
    (tmp_path / "scenarios").mkdir()
    path = tmp_path / "scenarios" / "s.yaml"
    path.write_text(
        "name: s\ndocuments: ['../shared/corpus/*']\nexpectations:\n  documents:\n"
        "    - document: ../shared/corpus/invalid.pdf\n      status: failed\n"
        f"    - document: {tmp_path}/shared/corpus/ok.txt\n      status: complete\n"
        "    - document: ../shared/corpus/*.txt\n      min_chunks: 1\n"
    )
    loaded = load_scenario(path)
    # the documents keep the link the scenario went through (README "Scenario files")
    shared = tmp_path.resolve() / "shared" / "corpus"
    assert loaded.documents == (shared / "invalid.pdf", shared / "ok.txt")


def test_documents_named_through_a_symlink_keep_the_path_the_scenario_wrote(tmp_path: Path) -> None:
    real = tmp_path.resolve() / "elsewhere"
    real.mkdir()
    (real / "tides.txt").write_text("tide tables")
    (real / "notes.md").write_text("notes")
    (tmp_path / "docs").symlink_to(real)
    (tmp_path / "alias.txt").symlink_to(real / "tides.txt")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [docs/tides.txt, 'docs/*.md', alias.txt, ./docs/../docs/notes.md]\n"
                    "expectations:\n  documents:\n    - {document: docs/tides.txt, status: complete}\n"
                    f"    - {{document: {real}/notes.md, status: complete}}\n"
                    "  retrieval:\n    - {query: tides, document: docs/tides.txt}\n")
    loaded = load_scenario(path)
    base = tmp_path.resolve()
    # the link's file named twice (as alias.txt too) is one document, under the name given first
    assert loaded.documents == (base / "docs" / "tides.txt", base / "docs" / "notes.md")


def test_a_missing_document_behind_a_symlink_is_named_as_written(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "docs").symlink_to(tmp_path / "real")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [docs/gone.pdf]\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.message == f"no such document: 'docs/gone.pdf' (resolved to {tmp_path.resolve()}/docs/gone.pdf)"


def test_expectation_naming_no_document_says_how_to_name_one(tmp_path: Path) -> None:
    path = write(tmp_path, "name: s\ndocuments: ['docs/a.md']\nexpectations:\n  documents:\n"
                           "    - document: a.markdown\n      status: complete\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert "by absolute path, or by file name, e.g. 'a.md'" in str(info.value)
    assert str(tmp_path.resolve()) in str(info.value)


def test_retrieval_naming_a_file_name_two_documents_share_is_refused_with_the_candidates(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "report.txt").write_text(f"the {folder} report")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [a/report.txt, b/report.txt]\nexpectations:\n  retrieval:\n"
                    "    - query: the a report\n      document: report.txt\n"
                    "    - query: the b report\n      document: b/report.txt\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.path, info.value.line, info.value.key) == (path, 6, "expectations.retrieval[0].document")
    assert info.value.message == (
        "'report.txt' is ambiguous: it is the file name of 2 of the scenario's documents ('a/report.txt', "
        "'b/report.txt'); name one by its path, as `documents:` does, e.g. 'a/report.txt'")
    assert info.value.more == ()  # the path `b/report.txt` names one document: no problem


def test_a_document_expectation_may_name_every_document_of_a_file_name(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "report.txt").write_text(f"the {folder} report")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [a/report.txt, b/report.txt]\nexpectations:\n  documents:\n"
                    "    - document: report.txt\n      status: complete\n  retrieval:\n"
                    "    - query: a report\n      document: '*/report.txt'\n")
    assert len(load_scenario(path).documents) == 2
