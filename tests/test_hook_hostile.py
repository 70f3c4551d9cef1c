"""Hostile `pipeline:` and `search:` hooks: output on stdout, BaseException subclasses, hangs, and
results of the wrong shape. Each fails its own document or expectation, never the run or its JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import in_process_cli
from tests.hook_support import FakeOpener, forget, run_with, scenario_file, unique_package

CANARY = "sk-CANARY" + "Qw7Er5Ty3Ui1Op9As"  # an env key; MaskingStream knows it
LITERAL = "sk-CANARY" + "Literal8Zx6Cv4Bn2"  # key-shaped, in no setting: only redaction catches it
USER = f"""
import os
import sys

def noisy(doc):
    print("hook says hello", doc.name)
    print("env key", os.environ.get("OPENAI_API_KEY"))
    sys.stdout.write("literal {LITERAL}")
    sys.stdout.write(" tail\\n")

def query(text, top_k):
    print("searching", text)
    return ["a.txt"]

class Custom(BaseException):
    pass

def raising(doc):
    kind = doc.content.decode().split()[0]
    if kind == "exit0":
        raise SystemExit(0)
    if kind == "exit3":
        raise SystemExit(3)
    if kind == "genexit":
        raise GeneratorExit("closed")
    if kind == "custom":
        raise Custom("custom base {LITERAL}")
    if kind == "ctrlc":
        raise KeyboardInterrupt

async def raising_async(doc):
    raising(doc)

import asyncio
import threading
RELEASE = threading.Event()  # set by the test's teardown: no thread outlives the test for long

def hangs(doc):
    if b"hang" in doc.content:
        RELEASE.wait()

async def hangs_async(doc):
    if b"hang" in doc.content:
        await asyncio.Event().wait()

def query_hangs(text, top_k):
    RELEASE.wait()
"""


@pytest.fixture
def pkg(tmp_path: Path) -> Iterator[str]:
    name = unique_package(tmp_path, {"user": USER})
    yield name
    module = sys.modules.get(f"{name}.user")
    if module is not None:
        module.RELEASE.set()
    forget(name)


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    return in_process_cli(monkeypatch, capsys)


def test_a_hook_printing_to_stdout_leaves_run_json_intact_and_goes_redacted_to_stderr(
        tmp_path: Path, pkg: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.user:noisy\n"
                                   f"search: {pkg}.user:query\n"
                                   "expectations:\n  retrieval: [{query: alpha, document: a.txt, top_k: 1}]\n")
    code, out, err = _cli(monkeypatch, capsys)("run", str(path), "--json")
    result = json.loads(out)  # stdout is the one JSON object and nothing else
    assert code == 0 and result["passed"] is True
    assert "hook says hello a.txt" in err and "searching alpha" in err and "tail" in err
    assert CANARY not in out + err and LITERAL not in out + err
    assert "env key ***" in err and "literal sk-***" in err


def test_a_hook_printing_during_tvdb_replay_leaves_its_json_intact(
        tmp_path: Path, pkg: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.user:noisy\n")
    cassette = tmp_path / "cassettes" / "s.yaml"
    cassette.parent.mkdir()
    cassette.write_text("interactions: []\nversion: 1\n")  # the hook makes no request: nothing to answer
    code, out, err = _cli(monkeypatch, capsys)("replay", "--scenario", str(path), "--cassette", str(cassette), "--json")
    assert code == 0 and json.loads(out)["passed"] is True
    assert "hook says hello a.txt" in err and "literal sk-***" in err and LITERAL not in out + err


def test_redacting_lines_redacts_a_key_written_in_pieces_and_drains_the_last_line() -> None:
    import io

    from tvdb.scenarios.hookoutput import RedactingLines

    target = io.StringIO()
    stream = RedactingLines(target, ["hunter2-secret"])
    stream.write(LITERAL[:12])
    assert target.getvalue() == ""  # half a key is never written
    stream.write(LITERAL[12:] + " and hunter2-secret\nnext")
    stream.drain()
    assert target.getvalue() == "sk-*** and ***\nnext\n"


DOCS = {"a.txt": "exit0", "b.txt": "exit3", "c.txt": "genexit", "d.txt": "custom", "e.txt": "fine"}


@pytest.mark.parametrize("function", ["raising", "raising_async"])
def test_base_exceptions_from_a_hook_fail_only_their_own_document(tmp_path: Path, pkg: str, function: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, b.txt, c.txt, d.txt, e.txt]\n"
                                   f"pipeline: {pkg}.user:{function}\n", DOCS)
    result = run_with(path, FakeOpener())
    got = [(Path(d.path).name, d.status, d.error_code, (d.error_message or "").split(" (")[0])
           for d in result.documents]
    assert got == [
        ("a.txt", "failed", "pipeline_error", "SystemExit: 0"),
        ("b.txt", "failed", "pipeline_error", "SystemExit: 3"),
        ("c.txt", "failed", "pipeline_error", "GeneratorExit: closed"),
        ("d.txt", "failed", "pipeline_error", f"{pkg}.user.Custom: custom base sk-***"),
        ("e.txt", "complete", None, ""),
    ]
    assert result.exit_code == 1 and not result.passed  # failed documents, not a crash and not a success


def test_ctrl_c_in_a_hook_still_stops_the_run_with_130_and_the_resume_hint(
        tmp_path: Path, pkg: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, b.txt]\npipeline: {pkg}.user:raising\n",
                         {"a.txt": "ctrlc", "b.txt": "fine"})
    code, _, err = _cli(monkeypatch, capsys)("run", str(path))
    assert code == 130
    assert "tvdb resume" in err


@pytest.mark.parametrize("function", ["hangs", "hangs_async"])
def test_a_hook_that_never_returns_fails_its_document_with_timeout_and_the_run_goes_on(
        tmp_path: Path, pkg: str, function: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, b.txt]\npipeline: {pkg}.user:{function}\n"
                                   "hooks: {timeout_s: 0.05}\n", {"a.txt": "hang", "b.txt": "fine"})
    result = run_with(path, FakeOpener())
    a, b = result.documents
    assert (a.status, a.error_code, b.status) == ("failed", "timeout", "complete")
    assert a.error_message is not None
    assert a.error_message.startswith(f"{pkg}.user:{function} did not return within 0.05 s (hooks.timeout_s)")
    assert ("cannot be stopped" in a.error_message) is (function == "hangs")


def test_the_hook_timeout_comes_from_the_environment_too_and_covers_search(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.user:hangs\n"
                                   f"search: {pkg}.user:query_hangs\n"
                                   "expectations:\n  retrieval: [{query: alpha, document: a.txt}]\n")
    result = run_with(path, FakeOpener(), TVDB_HOOKS_TIMEOUT_S="0.05")
    assert result.documents[0].status == "complete"
    (verdict,) = [e for e in result.expectations if e.kind == "retrieval"]
    assert not verdict.passed
    assert verdict.detail.startswith(f"{pkg}.user:query_hangs did not return within 0.05 s")


def test_the_hook_timeout_defaults_to_300_s_and_is_bounded(tmp_path: Path, pkg: str) -> None:
    from tvdb.config import Settings
    from tvdb.errors import ScenarioError
    from tvdb.scenarios.loader import load_scenario

    assert Settings().hooks.timeout_s == 300.0
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.user:hangs\n"
                                   "hooks: {timeout_s: 0}\n")
    with pytest.raises(ScenarioError) as caught:
        from tests.hook_support import settings_of

        settings_of(load_scenario(path), tmp_path)
    assert "hooks.timeout_s" in str(caught.value) and ":4:" in str(caught.value)
