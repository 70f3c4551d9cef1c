"""A `search:` hook that returns something hostile fails its retrieval expectation, naming the hook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hook_support import FakeOpener, forget, run_with, scenario_file, unique_package

USER = """
def run(doc):
    pass

def none(text, top_k):
    return None

def number(text, top_k):
    return 7

def mapping(text, top_k):
    return {"a.txt": 1}

def huge(text, top_k):
    return [f"nothing-{i}" for i in range(1_000_000)]

def odd_items(text, top_k):
    return [None, 3, 2.5, b"a.txt", ["a.txt"]]

def late(text, top_k):
    return [0, "a.txt"]
"""


@pytest.fixture
def pkg(tmp_path: Path) -> Iterator[str]:
    name = unique_package(tmp_path, {"user": USER})
    yield name
    forget(name)


def _verdict(tmp_path: Path, pkg: str, search: str, top_k: int = 3):  # type: ignore[no-untyped-def]
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.user:run\n"
                                   f"search: {pkg}.user:{search}\n"
                                   f"expectations:\n  retrieval: [{{query: alpha, document: a.txt, top_k: {top_k}}}]\n")
    result = run_with(path, FakeOpener())
    (verdict,) = [e for e in result.expectations if e.kind == "retrieval"]
    return result, verdict


@pytest.mark.parametrize(("search", "kind"), [("none", "NoneType"), ("number", "int"), ("mapping", "dict")])
def test_a_result_that_is_not_a_list_fails_naming_the_hook_and_the_type(
        tmp_path: Path, pkg: str, search: str, kind: str) -> None:
    result, verdict = _verdict(tmp_path, pkg, search)
    assert not verdict.passed and result.exit_code == 1
    assert verdict.detail == (f"{pkg}.user:{search} returned a {kind}; return a list of document paths or ids, "
                              "best first")


def test_a_huge_list_counts_only_its_top_k_and_says_how_many_came(tmp_path: Path, pkg: str) -> None:
    _, verdict = _verdict(tmp_path, pkg, "huge", top_k=2)
    assert not verdict.passed
    assert verdict.detail == (f"top 2 from {pkg}.user:huge: nothing-0 (not a document of this run), nothing-1 (not a "
                              "document of this run) (it returned 1000000; the first 2 count)")


def test_items_that_are_not_strings_name_no_document(tmp_path: Path, pkg: str) -> None:
    _, verdict = _verdict(tmp_path, pkg, "odd_items", top_k=5)
    assert not verdict.passed
    assert verdict.detail == (f"top 5 from {pkg}.user:odd_items: None (not a document of this run), 3 (not a "
                              "document of this run), 2.5 (not a document of this run), b'a.txt' (not a document "
                              "of this run), ['a.txt'] (not a document of this run)")


def test_an_int_before_the_document_still_lets_it_count(tmp_path: Path, pkg: str) -> None:
    _, verdict = _verdict(tmp_path, pkg, "late", top_k=2)
    assert verdict.passed
