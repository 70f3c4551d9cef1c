"""A bad scenario reports every problem in one pass, in file order, with "did you mean" for unknown keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DOCUMENTS
from tests.test_cli_run import tvdb
from tvdb.config import resolve_settings
from tvdb.errors import ConfigError, ScenarioError
from tvdb.scenarios.loader import load_scenario


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_schema_errors_are_all_listed_with_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ndocumnts: [a.pdf]\ndescriptoin: y\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = info.value.problems
    assert [(p["line"], p["key"]) for p in problems] == [(1, "documents"), (2, "documnts"), (3, "descriptoin")]
    assert "did you mean 'documents'?" in str(problems[1]["message"])
    assert "did you mean 'description'?" in str(problems[2]["message"])
    assert str(info.value).endswith("(3 problems)")


def test_settings_errors_from_the_scenario_are_all_listed(tmp_path: Path) -> None:
    doc = DOCUMENTS / "minimal-document.pdf"
    path = _write(tmp_path, f"name: x\ndocuments: [{doc}]\nchunking:\n  max_tokenz: 512\n  overlap_tokens: -3\n"
                            "parse: {tier: fastest}\n")
    result = tvdb(["run", str(path), "--json"], tmp_path)
    assert result.returncode == 2
    out = json.loads(result.stdout)
    assert out["exit_code"] == 2
    assert out["error"]["line"] == 4 and out["error"]["key"] == "chunking.max_tokenz"
    assert [(p["line"], p["key"]) for p in out["error"]["problems"]] == [
        (4, "chunking.max_tokenz"), (5, "chunking.overlap_tokens"), (6, "parse.tier")]
    assert "did you mean 'max_tokens'?" in out["error"]["problems"][0]["message"]
    text = tvdb(["run", str(path)], tmp_path)
    lines = [line for line in text.stderr.splitlines() if str(path) in line]
    assert len(lines) == 3 and "(3 problems)" in text.stderr


def test_schema_and_settings_problems_are_listed_in_the_same_pass(tmp_path: Path) -> None:
    # The settings keys used to be checked only once the schema passed: a file with an expectation
    # typo and a chunking typo showed one, and the other only on the next run.
    path = _write(tmp_path, "name: x\nmode: foo\ndocuments: [a.txt]\nchunking:\n  max_tokenz: 5\n"
                            "  overlap_tokens: yes\nexpectations:\n  retrieval:\n"
                            "    - {query: q, document: a.txt, top_k: 0}\n")
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"]) for p in info.value.problems] == [
        (2, "mode"), (5, "chunking.max_tokenz"), (6, "chunking.overlap_tokens"),
        (9, "expectations.retrieval[0].top_k")]
    assert str(info.value).endswith("(4 problems)")


def test_a_cross_field_check_against_defaults_is_not_listed_beside_schema_problems(tmp_path: Path) -> None:
    # overlap 600 ≥ the default max_tokens 512, but tvdb.yaml may raise max_tokens: not this file's problem yet.
    path = _write(tmp_path, "name: x\ndocuments: [a.txt]\nchunking: {overlap_tokens: 600}\nbogus: 1\n")
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"]) for p in info.value.problems] == [(4, "bogus")]


def test_the_json_message_keeps_one_problem_a_line(tmp_path: Path) -> None:
    # The message used to carry a literal `\x0a` between problems (terminal escaping applied to JSON).
    path = _write(tmp_path, "name: x\ndocumnts: [a.pdf]\n")
    result = tvdb(["run", str(path), "--json"], tmp_path)
    assert result.returncode == 2
    message = json.loads(result.stdout)["error"]["message"]
    assert "\\x0a" not in message
    assert message.split("\n") == [
        f"{path}:1: documents: required key is missing",
        f"{path}:2: documnts: unknown key 'documnts' (did you mean 'documents'? allowed: name, description,"
        " documents, expectations, faults, reuse, mode, parse, chunking, embedding, budget, services, hooks, pipeline,"
        " search, python_path)",
        "(2 problems)",
    ]


def test_documents_expectations_and_settings_are_listed_in_the_same_pass(tmp_path: Path) -> None:
    # A glob matching nothing, a missing file and a settings typo used to take three runs, one each.
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments:\n  - a.md\n  - missing/*.pdf\n  - nofile.txt\n"
                            "chunking:\n  max_tokenz: 3\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"]) for p in info.value.problems] == [
        (4, "documents[1]"), (5, "documents[2]"), (7, "chunking.max_tokenz")]
    # a schema problem elsewhere no longer hides them (and they no longer hide it)
    path.write_text(path.read_text() + "foo: 1\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [p["key"] for p in info.value.problems] == [
        "documents[1]", "documents[2]", "chunking.max_tokenz", "foo"]


def test_an_expectation_naming_no_document_is_listed_with_the_settings_problems(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments: [a.md]\nchunking: {max_tokenz: 3}\nexpectations:\n"
                            "  documents:\n    - {document: nothere.pdf, status: complete}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"]) for p in info.value.problems] == [
        (3, "chunking.max_tokenz"), (6, "expectations.documents[0].document")]
    assert "'nothere.pdf' names none of the scenario's 1 document" in str(info.value.problems[1]["message"])


def test_field_cross_field_and_document_reference_problems_come_out_in_one_listing(tmp_path: Path) -> None:
    # The user's file took three runs: first only the expectation naming no document, then the overlap
    # and the dimensions (cross-field checks judged only after a full merge).
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments: [docs/a.md]\nchunking:\n  max_tokens: 100\n  overlap_tokens: 100\n"
                            "embedding:\n  model: text-embedding-ada-002\n  dimensions: 512\nexpectations:\n"
                            "  documents:\n    - document: docs/missing.pdf\n      status: complete\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"], p["message"]) for p in info.value.problems] == [
        (5, "chunking.overlap_tokens", "overlap_tokens (100) must be smaller than max_tokens (100)"),
        (8, "embedding.dimensions", "text-embedding-ada-002 does not support `dimensions` (only text-embedding-3 "
                                    "models do)"),
        (11, "expectations.documents[0].document", "'docs/missing.pdf' names none of the scenario's 1 document "
         f"(name one as `documents:` does, relative to {tmp_path}, by absolute path, or by file name, e.g. 'a.md')"),
    ]
    assert str(info.value).endswith("(3 problems)")
    # a field-level error beside them (a schema key and a bad number) hides none of them
    path.write_text(path.read_text().replace("max_tokens: 100", "max_tokens: 100\n  bogus: 1")
                    + "description: [not, text]\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"]) for p in info.value.problems] == [
        (5, "chunking.bogus"), (6, "chunking.overlap_tokens"), (9, "embedding.dimensions"),
        (12, "expectations.documents[0].document"), (14, "description")]
    assert info.value.problems[-1]["message"] == "must be text, got ['not', 'text']"


def test_a_cross_field_check_runs_once_its_inputs_are_valid_beside_a_sibling_error(tmp_path: Path) -> None:
    # pydantic skips a section's model check when any key of it fails; tvdb judges it on the valid keys
    (tmp_path / "tvdb.yaml").write_text("chunking:\n  max_tokens: 100\n  overlap_tokens: 100\n  bogus: 1\n"
                                        "embedding:\n  model: text-embedding-3-small\n  dimensions: 4000\n")
    with pytest.raises(ConfigError) as info:
        resolve_settings(cwd=tmp_path, environ={})
    config = tmp_path / "tvdb.yaml"
    assert str(info.value).split("\n") == [
        f"{config}:3: chunking.overlap_tokens: overlap_tokens (100) must be smaller than max_tokens (100)",
        f"{config}:4: chunking.bogus: unknown key 'bogus' (allowed: max_tokens, overlap_tokens)",
        f"{config}:7: embedding.dimensions: dimensions for text-embedding-3-small must be between 1 and 1536",
        "(3 problems)",
    ]


def test_the_document_reference_check_runs_beside_a_schema_error(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments: [a.md]\nreuse: sometimes\nexpectations:\n"
                            "  retrieval:\n    - {query: q, document: b.md}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"]) for p in info.value.problems] == [
        (3, "reuse"), (6, "expectations.retrieval[0].document")]
    assert info.value.problems[0]["message"] == "must be true or false, got 'sometimes'"


def test_expectation_names_are_checked_beside_their_own_field_errors_and_a_missing_document(tmp_path: Path) -> None:
    # field errors in the expectations and a missing document no longer hold the name checks back
    # for a second run; a name that the missing `documents:` entry also gives is reported once, there
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments: [a.md, gone.pdf]\nexpectations:\n"
                            "  documents: [{document: '*.txt', min_chunks: -1}, {document: x.pdf},"
                            " {document: gone.pdf}]\n"
                            "  retrieval:\n    - {query: q, document: y.pdf, top_k: 0}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"]) for p in info.value.problems] == [
        (2, "documents[1]"), (4, "expectations.documents[0].document"), (4, "expectations.documents[0].min_chunks"),
        (4, "expectations.documents[1].document"), (6, "expectations.retrieval[0].document"),
        (6, "expectations.retrieval[0].top_k")]
    assert info.value.problems[2]["message"] == "must be at least 0, got -1"


def test_a_key_typed_anywhere_in_a_bad_scenario_is_never_repeated(tmp_path: Path) -> None:
    # as a list item, a mapping value, a key, a document name and path, inside a check's own message
    key = "sk-proj-CANARYcanary0123456789abcdefCANARY"
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, f"name: x\nmode: [{key}]\ndocuments: [a.md, {key}.md]\nparse: {{tier: {key}}}\n"
                            f"embedding: {{model: {key}, dimensions: [{key}]}}\n{key}: 1\n"
                            f"expectations:\n  retrieval:\n    - {{query: {{q: {key}}}, document: {key}}}\n"
                            f"faults:\n  - {{service: openai, kind: [{key}]}}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    shown = str(info.value) + json.dumps(info.value.problems)
    assert "CANARY" not in shown
    assert len(info.value.problems) >= 7 and "sk-***" in shown
    with pytest.raises(ConfigError) as config:
        resolve_settings(cwd=tmp_path, environ={"TVDB_EMBEDDING_MODEL": key})
    assert "CANARY" not in str(config.value) and "sk-***" in str(config.value)


def test_cross_field_checks_are_listed_beside_their_own_models_field_errors(tmp_path: Path) -> None:
    # pydantic skips a model's checks across its keys once one of its keys is wrong: a fault with
    # `nth: 0` beside a bad `times:`, a requests expectation with min > max beside a bad status and
    # dimensions over the model's limit beside a bad timeout came out only on the second run
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments: [a.md]\nfaults:\n"
                            "  - {service: openai, kind: status, status: 429, nth: 0, times: many}\n"
                            "  - {service: openai, kind: latency, latency_s: 0.1, rate: 2}\n"
                            "expectations:\n  requests:\n    - {service: openai, min: 5, max: 2, status: bogus}\n"
                            "  documents:\n    - {min_chunks: 5, max_chunks: 2, status: done}\n"
                            "embedding: {model: text-embedding-3-small, dimensions: 4000, timeout_s: fast}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"], p["message"]) for p in info.value.problems] == [
        (4, "faults[0]", "`nth` counts calls from 1"),
        (4, "faults[0].times", "must be a whole number, got 'many'"),
        (5, "faults[1].rate", "must be at most 1, got 2"),
        (8, "expectations.requests[0]", "min is larger than max"),
        (8, "expectations.requests[0].status", "must be one of 'ok' or 'error', got 'bogus'"),
        (10, "expectations.documents[0]", "min_chunks is larger than max_chunks"),
        (10, "expectations.documents[0].status", "must be one of 'complete' or 'failed', got 'done'"),
        (11, "embedding.dimensions", "dimensions for text-embedding-3-small must be between 1 and 1536"),
        (11, "embedding.timeout_s", "must be a number, got 'fast'"),
    ]
    assert str(info.value).splitlines()[0] == f"{path}:4: faults[0]: `nth` counts calls from 1"
    assert str(info.value).endswith("(9 problems)")


def test_a_cross_field_check_on_a_wrong_key_is_not_judged_against_its_default(tmp_path: Path) -> None:
    # `status: abc` is dropped for the next pass; "a status fault needs status" would then blame the
    # default (None) for a value the file does state
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments: [a.md]\nfaults:\n  - {service: openai, kind: status, status: abc}\n"
                            "expectations:\n  requests:\n    - {service: llamaparse, stage: embed, min: 3, max: 1}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"], p["message"]) for p in info.value.problems] == [
        (4, "faults[0].status", "must be a whole number, got 'abc'"),
        (7, "expectations.requests[0]", "min is larger than max"),
        (7, "expectations.requests[0]", "llamaparse has no embed requests (its stages: parse)"),
    ]


def test_a_fault_with_nth_zero_and_rate_lists_both_problems(tmp_path: Path) -> None:
    # the either/or check used to drop `nth` with `rate`, so `nth: 0` was only reported on the next run
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = _write(tmp_path, "name: x\ndocuments: [a.md]\nfaults:\n"
                            "  - {service: openai, kind: timeout, nth: 0, rate: 0.5}\n"
                            "  - {service: openai, kind: timeout, nth: [1, 0], rate: 0.5, times: 0}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [(p["line"], p["key"], p["message"]) for p in info.value.problems] == [
        (4, "faults[0]", "give either `nth` or `rate`, not both"),
        (4, "faults[0]", "`nth` counts calls from 1"),
        (5, "faults[1]", "give either `nth` or `rate`, not both"),
        (5, "faults[1]", "`nth` counts calls from 1"),
        (5, "faults[1].times", "must be at least 1, got 0"),
    ]
    assert str(info.value).endswith("(5 problems)")
