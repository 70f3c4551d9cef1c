"""The parse side of the router: each parse job is routed on its own in hybrid mode; LlamaParse's health
probe (`GET /api/v2/parse?page_size=1`) decides; a protected PDF fails its job rather than falling back."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from tests.llamaparse_support import LLX_KEY, parse_emulator
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import start_run

BODY = (
    "name: parse-hybrid\ndocuments: [a.md, b.txt, libreoffice-writer-password.pdf]\nservices: {embedder: mock}\n"
    "expectations:\n  documents:\n"
    "    - {document: libreoffice-writer-password.pdf, status: failed, error_code: encrypted}\n"
)


def _run(tmp_path: Path, documents_dir: Path, base_url: str) -> RunResult:
    (tmp_path / "a.md").write_text("# Alpha\nTide sensors need calibration every spring.")
    (tmp_path / "b.txt").write_text("Beta notes: battery packs last eighteen months in cold water.")
    shutil.copy(documents_dir / "libreoffice-writer-password.pdf", tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(BODY)
    loaded = load_scenario(path)
    env = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "TVDB_MODE": "hybrid", "LLAMA_CLOUD_API_KEY": LLX_KEY,
           "LLAMA_CLOUD_BASE_URL": base_url}
    settings = resolve_settings(cwd=tmp_path, environ=env, scenario=loaded.scenario.settings_layer(),
                                scenario_doc=loaded.source, dotenv=False)
    return asyncio.run(start_run(loaded, settings, clock=FakeClock()))


def test_hybrid_parses_for_real_and_a_protected_pdf_is_not_hidden(tmp_path: Path, documents_dir: Path) -> None:
    with parse_emulator() as server:
        result = _run(tmp_path, documents_dir, server.base_url)
        assert server.count("GET /api/v2/parse") == 1  # one probe for the run
    assert result.passed, [e for e in result.expectations if not e.passed]
    parse = {(p.implementation, p.reason): (p.calls, p.errors) for p in result.provenance if p.stage == "parse"}
    assert parse == {("real", "hybrid: llamaparse available"): (3, 1)}  # the protected PDF failed for real
    assert result.fallbacks == 0


def test_hybrid_parses_locally_when_llamaparse_is_down(tmp_path: Path, documents_dir: Path) -> None:
    with parse_emulator() as server:
        url = server.base_url
    result = _run(tmp_path, documents_dir, url)  # nothing listens there any more
    assert result.passed, [e for e in result.expectations if not e.passed]  # the PDF still fails `encrypted`
    parse = {(p.implementation, p.reason): (p.calls, p.errors) for p in result.provenance if p.stage == "parse"}
    assert parse == {("mock", "llamaparse unhealthy: connection refused"): (3, 1)}
    assert result.fallbacks == 3  # every parse job, each routed on its own
