"""A mock scenario run set up in a test's folder: its documents, its scenario file, and the settings
`start_run` takes (data dir in the folder, no keys, nothing from the machine's environment)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tvdb.config import resolve_settings
from tvdb.scenarios.loader import LoadedScenario, load_scenario
from tvdb.settings import Settings


def mock_scenario(folder: Path, documents: Mapping[str, str], settings_yaml: str = "",
                  environ: Mapping[str, str] | None = None) -> tuple[LoadedScenario, Settings]:
    """Write `documents` (name → text) and a mock scenario over them (plus `settings_yaml`, YAML
    lines at the scenario's top level) into `folder`; returns it loaded, with its settings."""
    for name, text in documents.items():
        (folder / name).write_text(text, encoding="utf-8")
    path = folder / "s.yaml"
    path.write_text(f"name: t\nmode: mock\ndocuments: [{', '.join(documents)}]\n{settings_yaml}", encoding="utf-8")
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=folder, scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source,
                                environ={"TVDB_DATA_DIR": str(folder / ".tvdb"), **(environ or {})})
    return loaded, settings
