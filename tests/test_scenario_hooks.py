"""`pipeline:` / `search:` in a scenario: a spec that cannot be used is a ScenarioError naming
file:line:key with the fix, found before anything runs; sys.path is the scenario's folder plus
`python_path`, and only while hooks load or run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hook_support import forget, scenario_file, unique_package
from tvdb.errors import ScenarioError
from tvdb.scenarios.loader import load_scenario

INGEST = """
def run(doc):
    return None

async def run_async(doc):
    return None

def two(doc, store):
    return None

CONFIG = {"tier": "fast"}
"""
SEARCH = """
def query(text, top_k):
    return []

def one(text):
    return []
"""


@pytest.fixture
def pkg(tmp_path: Path) -> Iterator[str]:
    name = unique_package(tmp_path, {"ingest": INGEST, "search": SEARCH})
    yield name
    forget(name)


def _error(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def test_a_good_spec_loads_both_hooks_sync_and_async(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.ingest:run_async\n"
                                   f"search: {pkg}.search:query\n")
    loaded = load_scenario(path)
    assert loaded.hooks is not None and loaded.hooks.search is not None
    assert (loaded.hooks.pipeline.spec, loaded.hooks.pipeline.is_async) == (f"{pkg}.ingest:run_async", True)
    assert (loaded.hooks.search.spec, loaded.hooks.search.is_async) == (f"{pkg}.search:query", False)
    assert str(tmp_path) not in sys.path  # only while loading


def test_a_scenario_without_pipeline_has_no_hooks(tmp_path: Path) -> None:
    assert load_scenario(scenario_file(tmp_path, "name: s\ndocuments: [a.txt]\n")).hooks is None


@pytest.mark.parametrize("spec", ["my_pkg.ingest", "my_pkg.ingest:", "my pkg:run", "ingest:run()", ":run"])
def test_a_malformed_spec_names_the_line_and_the_form(tmp_path: Path, spec: str) -> None:
    err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: '{spec}'\n"))
    assert (err.path, err.line, err.key) == (tmp_path / "s.yaml", 3, "pipeline")
    assert "is not a hook spec: write it as `package.module:function`" in err.message


def test_a_missing_module_says_where_it_looked_and_how_to_fix(tmp_path: Path) -> None:
    err = _error(scenario_file(tmp_path, "name: s\ndocuments: [a.txt]\n\npipeline: nopkg_zz.ingest:run\n"))
    assert (err.line, err.key) == (4, "pipeline")
    assert "cannot import 'nopkg_zz.ingest': no module named 'nopkg_zz'" in err.message
    assert "`python_path:`" in err.message and "pip install -e" in err.message
    assert str(err).startswith(f"{tmp_path / 's.yaml'}:4: pipeline: ")


def test_a_missing_dependency_of_the_users_module_is_named(tmp_path: Path) -> None:
    name = unique_package(tmp_path, {"ingest": "import not_installed_zz\n\ndef run(doc):\n    pass\n"})
    try:
        err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {name}.ingest:run\n"))
    finally:
        forget(name)
    assert err.key == "pipeline"
    assert f"importing '{name}.ingest' failed: ModuleNotFoundError: No module named 'not_installed_zz'" in err.message
    assert "pip install not_installed_zz" in err.message


def test_a_module_that_raises_at_import_says_what_and_where(tmp_path: Path) -> None:
    canary = "sk-canary" + "A1b2C3d4E5f6G7h8"
    name = unique_package(tmp_path, {"ingest": f"raise RuntimeError('bad key {canary}')\n"})
    try:
        err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {name}.ingest:run\n"))
    finally:
        forget(name)
    assert f"importing '{name}.ingest' for {name}.ingest:run raised RuntimeError: bad key sk-***" in err.message
    assert f"{name}/ingest.py:1)" in err.message
    assert canary not in str(err)


def test_a_missing_attribute_suggests_the_close_name(tmp_path: Path, pkg: str) -> None:
    err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.ingest:runn\n"))
    assert err.key == "pipeline"
    assert f"{pkg}.ingest (" in err.message and "has no attribute 'runn' (did you mean 'run'?" in err.message
    assert "callables in it: run, run_async, two" in err.message


def test_not_callable_and_wrong_signatures_say_what_tvdb_passes(tmp_path: Path, pkg: str) -> None:
    err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.ingest:CONFIG\n"))
    assert err.message == (f"{pkg}.ingest:CONFIG is a dict, not a function: name a function, e.g. "
                           "`def run(doc: tvdb.PipelineDocument) -> None`")
    err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.ingest:two\n"))
    assert err.message == (f"{pkg}.ingest:two takes (doc, store), but tvdb calls it with one positional argument "
                           "(document): make it `def run(doc: tvdb.PipelineDocument) -> None`")
    err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.ingest:run\n"
                                         f"search: {pkg}.search:one\n"))
    assert (err.line, err.key) == (4, "search")
    assert err.message == (f"{pkg}.search:one takes (text), but tvdb calls it with 2 positional arguments "
                           "(query, top_k): make it `def query(text: str, top_k: int) -> list[str]`")


def test_keys_that_mean_nothing_with_a_pipeline_are_all_listed_in_one_pass(tmp_path: Path, pkg: str) -> None:
    err = _error(scenario_file(tmp_path, f"""\
        name: s
        documents: [a.txt]
        pipeline: {pkg}.ingest:run
        chunking: {{max_tokens: 100}}
        expectations:
          documents:
            - document: a.txt
              min_chunks: 2
          vectors: {{dimension: 1536}}
          retrieval:
            - {{query: tide, document: a.txt}}
        """))
    assert [(p["line"], p["key"]) for p in err.problems] == [
        (4, "chunking"), (8, "expectations.documents[0].min_chunks"), (9, "expectations.vectors"),
        (10, "expectations.retrieval")]
    assert err.problems[0]["message"] == ("has no effect with `pipeline:`: your code chunks documents its own way "
                                          "(set that in your code); remove chunking:")
    assert "add `search: my_pkg.search:query`" in str(err.problems[3]["message"])
    assert str(err).endswith("(4 problems)")


def test_search_and_python_path_need_a_pipeline(tmp_path: Path, pkg: str) -> None:
    err = _error(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\nsearch: {pkg}.search:query\n"
                                         "python_path: [src]\n"))
    assert [(p["line"], p["key"]) for p in err.problems] == [(3, "search"), (4, "python_path")]


def test_python_path_entries_are_relative_to_the_scenario(tmp_path: Path) -> None:
    name = unique_package(tmp_path / "src", {"ingest": INGEST})
    try:
        loaded = load_scenario(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {name}.ingest:run\n"
                                                       "python_path: [src]\n"))
    finally:
        forget(name)
    assert loaded.hooks is not None and loaded.hooks.pipeline.function.__module__ == f"{name}.ingest"
    assert str(tmp_path / "src") not in sys.path


def test_the_signature_message_shows_names_and_defaults_not_annotations(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "own-pipeline"
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npython_path: [{example}]\n"
                                   "pipeline: docpipe.ingest:ingest\n")
    err = _error(path)
    assert (err.line, err.key) == (4, "pipeline")
    assert err.message.startswith("docpipe.ingest:ingest takes (path, content, config=None), but tvdb calls it "
                                  "with one positional argument (document)")


def test_tvdb_run_json_names_the_bad_hook_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tests.cli_support import in_process_cli

    path = scenario_file(tmp_path, "name: s\ndocuments: [a.txt]\npipeline: nopkg_qq.ingest:run\n")
    code, out, _ = in_process_cli(monkeypatch, capsys)("run", str(path), "--json")
    error = json.loads(out)["error"]
    assert code == 2 and json.loads(out)["exit_code"] == 2
    assert (error["file"], error["line"], error["key"]) == (str(path), 3, "pipeline")
    assert "no module named 'nopkg_qq'" in json.dumps(error)


def test_pipeline_document_is_public_and_its_repr_is_short() -> None:
    import tvdb

    doc = tvdb.PipelineDocument(Path("/d/a.pdf"), b"x" * 10_000, "c" * 32, "run-000")
    assert "PipelineDocument" in tvdb.__all__ and doc.name == "a.pdf"
    assert repr(doc) == ("PipelineDocument(path='/d/a.pdf', content=<10000 bytes>, correlation_id='"
                         + "c" * 32 + "', job_id='run-000')")


def test_the_readme_says_a_documents_path_is_a_pathlib_path() -> None:
    # a user's hook did doc.path.endswith(...) and got AttributeError: the README said only "(absolute)"
    import typing
    from pathlib import Path as _Path

    import tvdb

    readme = " ".join((_Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert "A frozen `tvdb.PipelineDocument` with `path` (a `pathlib.Path`, absolute: use `doc.path.suffix ==" \
           " \".pdf\"` or `str(doc.path).endswith(...)`, not `doc.path.endswith`)" in readme
    assert typing.get_type_hints(tvdb.PipelineDocument)["path"] is _Path
