"""The plugin's command-line options and what they resolve to, kept on the pytest config (no globals)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MODES = ("auto", "mock", "real", "hybrid", "replay")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("tvdb", "tvdb: scenarios and sessions")
    group.addoption("--tvdb-mode", choices=MODES, default="auto", dest="tvdb_mode",
                    help="How scenario items and tvdb sessions run: auto (default: replay when the cassette "
                         "exists, else mock), mock, real, hybrid, replay (no cassette: skipped).")
    group.addoption("--tvdb-record", action="store_true", default=False, dest="tvdb_record",
                    help="Record fresh cassettes: scenario items run real (or --tvdb-mode hybrid) and write "
                         "<cassette_dir>/<name>.yaml; sessions with cassette= record it. Spends money once.")
    group.addoption("--tvdb-data-dir", default=None, dest="tvdb_data_dir", metavar="PATH",
                    help="tvdb's data dir (ledger, objects) for this run; under pytest-xdist each worker "
                         "uses PATH/xdist/<worker id>. Default: the settings' data_dir (TVDB_DATA_DIR, tvdb.yaml).")
    parser.addini("tvdb_collect", type="bool", default=True,
                  help="Collect tvdb scenario files (YAML with top-level name and documents) as test items.")


@dataclass
class PluginState:
    """Per pytest run: the options, and the worker data dir once resolved."""

    mode: str
    record: bool
    data_dir: Path | None
    cwd: Path
    collect: bool
    worker: str | None = None
    _resolved: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> PluginState:
        mode = str(config.getoption("tvdb_mode"))
        record = bool(config.getoption("tvdb_record"))
        if record and mode in ("mock", "replay"):
            raise pytest.UsageError(f"--tvdb-record sends real requests and --tvdb-mode {mode} sends none: "
                                    "use --tvdb-record alone (real) or with --tvdb-mode hybrid")
        given = config.getoption("tvdb_data_dir")
        cwd = Path(config.invocation_params.dir)
        return cls(mode=mode, record=record, data_dir=(cwd / given).absolute() if given else None, cwd=cwd,
                   collect=bool(config.getini("tvdb_collect")), worker=os.environ.get("PYTEST_XDIST_WORKER"))

    def environ(self) -> dict[str, str]:
        """The environment tvdb resolves settings from: the process's, with this run's data dir."""
        env = dict(os.environ)
        data_dir = self.worker_data_dir()
        if data_dir is not None:
            env["TVDB_DATA_DIR"] = str(data_dir)
        return env

    def cassette_dir(self) -> Path:
        """`recording.cassette_dir` (tvdb.yaml, TVDB_*; default ./cassettes) from the working directory,
        read once per run (a scenario cannot set it). Raises ConfigError."""
        if "cassette_dir" not in self._resolved:
            from tvdb.config import resolve_settings

            folder = Path(resolve_settings(cwd=self.cwd, environ=os.environ).recording.cassette_dir)
            self._resolved["cassette_dir"] = folder if folder.is_absolute() else self.cwd / folder
        return self._resolved["cassette_dir"]  # type: ignore[no-any-return]

    def worker_data_dir(self) -> Path | None:
        """--tvdb-data-dir; under pytest-xdist `<data dir>/xdist/<worker>` (one SQLite ledger per worker;
        a configured database_url is still shared). None: the settings' own data dir. Raises ConfigError."""
        if "data_dir" in self._resolved:
            return self._resolved["data_dir"]  # type: ignore[no-any-return]
        base = self.data_dir
        if self.worker is not None:
            if base is None:
                from tvdb.config import resolve_settings

                base = resolve_settings(cwd=self.cwd, environ=os.environ).data_dir
            base = Path(base).absolute() / "xdist" / self.worker
        self._resolved["data_dir"] = base
        return base


STATE = pytest.StashKey[PluginState]()


def state(config: pytest.Config) -> PluginState:
    return config.stash[STATE]
