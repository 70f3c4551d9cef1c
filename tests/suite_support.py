"""A project folder of recorded scenarios for the `tvdb replay --all` tests: cassettes recorded
against the in-process emulator (real embedder, local parser), so every replay is real vcrpy."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from lxml import etree

from tests.openai_support import CANARY, emulator
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.recording.session import Tape
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import start_run

REPO = Path(__file__).resolve().parents[1]
# JUnit as CI tools read it (tests/schemas/junit.xsd says whose rules); lxml comes with python-docx
JUNIT_SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "schemas" / "junit.xsd")))

SCENARIO = """name: {name}
mode: real
services: {{parser: mock, embedder: real}}
documents: [{documents}]
chunking: {{max_tokens: 64, overlap_tokens: 8}}
embedding: {{concurrency: 1}}
expectations:
  retrieval:
    - {{query: clean barnacles off the sensor window, document: {target}, top_k: {top_k}}}
"""


def scenario_text(name: str, *, documents: str = "docs/*", target: str = "docs/field-guide.pdf",
                  top_k: int = 3) -> str:
    return SCENARIO.format(name=name, documents=documents, target=target, top_k=top_k)


def record(project: Path, scenario: Path, base_url: str) -> None:
    """Record `scenario` to `<project>/cassettes/<name>.yaml` against the emulator at `base_url`."""
    loaded = load_scenario(scenario)
    env = {"TVDB_DATA_DIR": str(project / ".record"), "OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": base_url}
    settings = resolve_settings(cwd=project, environ=env, scenario=loaded.scenario.settings_layer(),
                                scenario_doc=loaded.source)
    name = loaded.scenario.name
    tape = Tape(path=project / "cassettes" / f"{name}.yaml", record_mode="all", fresh=True, scenario=name,
                scenario_path=f"../{scenario.relative_to(project).as_posix()}")
    asyncio.run(start_run(loaded, settings, clock=FakeClock(), tape=tape))


def build_project(root: Path) -> Path:
    """`root` as a repository: scenarios/{passing,failing,missing-cassette,miss}.yaml (all but
    missing-cassette recorded into cassettes/), a non-scenario YAML and a nested scenario.

    - passing: its retrieval expectation holds;
    - failing: recorded, but expects the field guide in the top 1 for a query that ranks it lower... or
      names the wrong document, so the expectation fails on every replay;
    - miss: recorded, then a document changed, so a request misses the cassette;
    - missing-cassette: never recorded (skipped, or an error with --require-cassettes)."""
    scenarios = root / "scenarios"
    shutil.copytree(REPO / "scenarios" / "quickstart", scenarios / "docs")
    shutil.copytree(REPO / "scenarios" / "quickstart", scenarios / "missdocs")
    (scenarios / "passing.yaml").write_text(scenario_text("passing"))
    (scenarios / "failing.yaml").write_text(scenario_text("failing", target="docs/support.html", top_k=1))
    (scenarios / "miss.yaml").write_text(scenario_text("miss", documents="missdocs/*",
                                                       target="missdocs/field-guide.pdf"))
    (scenarios / "missing-cassette.yaml").write_text(scenario_text("missing-cassette"))
    (scenarios / "settings.yaml").write_text("name: not-a-scenario-without-documents\nmode: mock\n")
    (root / "tvdb.yaml").write_text("mode: mock\n")
    with emulator() as server:
        for name in ("passing", "failing", "miss"):
            record(root, scenarios / f"{name}.yaml", server.openai_base_url)
    notes = scenarios / "missdocs" / "release-notes.txt"
    notes.write_text(notes.read_text().replace("downloaded as CSV", "downloaded as TSV"))
    shutil.rmtree(root / ".record")
    return root


def valid_junit(path: Path) -> Any:
    """The root of the JUnit file at `path`, after validating it against the schema (raises if invalid)."""
    doc = etree.parse(str(path))
    JUNIT_SCHEMA.assertValid(doc)
    return doc.getroot()
