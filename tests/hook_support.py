"""Helpers for tests of scenario hooks: user packages written into tmp_path under unique names, a
scenario that runs them, and a stand-in session that records the scopes it was asked for."""

from __future__ import annotations

import asyncio
import secrets
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvdb.config import Settings, resolve_settings
from tvdb.scenarios.loader import LoadedScenario, load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import RunHooks, start_run


def unique_package(root: Path, modules: dict[str, str], prefix: str = "userpkg") -> str:
    """Write a package `<prefix>_<hex>` with `modules` (name → source) under `root`; returns its name.
    A fresh name per test, so sys.modules never hands one test another test's module."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(textwrap.dedent(source))
    return name


def forget(name: str) -> None:
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


@dataclass
class FakeSession:
    """Records every `scope(...)` and which scope was open when the user's code ran."""

    scopes: list[dict[str, Any]] = field(default_factory=list)
    current: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def scope(self, **kw: Any) -> Iterator[None]:
        self.scopes.append(kw)
        self.current.append(kw)
        try:
            yield
        finally:
            self.current.pop()


@dataclass
class FakeOpener:
    session: FakeSession = field(default_factory=FakeSession)
    opened: list[tuple[str, Any]] = field(default_factory=list)

    @asynccontextmanager
    async def __call__(self, ctx: Any, scenario: Any, tape: Any) -> AsyncIterator[FakeSession]:
        self.opened.append((ctx.run_id, tape))
        yield self.session


def scenario_file(folder: Path, body: str, documents: dict[str, str] | None = None) -> Path:
    for name, text in (documents or {"a.txt": "alpha tide", "b.txt": "bravo harbour"}).items():
        (folder / name).write_text(text)
    path = folder / "s.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def settings_of(loaded: LoadedScenario, folder: Path, **env: str) -> Settings:
    environ = {"TVDB_DATA_DIR": str(folder / ".tvdb"), **env}
    return resolve_settings(cwd=folder, environ=environ, scenario=loaded.scenario.settings_layer(),
                            scenario_doc=loaded.source, dotenv=False)


def run_with(path: Path, opener: Any, **env: str) -> RunResult:
    from tvdb.clock import FakeClock

    loaded = load_scenario(path)
    settings = settings_of(loaded, path.parent, **env)
    return asyncio.run(start_run(loaded, settings, clock=FakeClock(), hooks=RunHooks(open_session=opener)))
