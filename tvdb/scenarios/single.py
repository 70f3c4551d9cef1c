"""Run one scenario in a chosen mode and say how it went: the pytest plugin's unit for a scenario
item that does not replay (`tvdb.scenarios.replay.replay_scenario` does the replays).

mock: every service local, sleeps skipped · real / hybrid: as `tvdb run --mode real|hybrid` (the
scenario's per-service overrides still apply) · record: real (or hybrid) traffic written to a fresh
cassette at `<recording.cassette_dir>/<name>.yaml`, as `tvdb run --record`.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any, Literal

from tvdb.errors import ConfigError
from tvdb.scenarios.replay import ReplayEnv, ScenarioOutcome, _error, _with_report, cassette_for

RunMode = Literal["mock", "real", "hybrid", "record"]
_FLAGS: dict[str, dict[str, Any]] = {
    "mock": {"mode": "mock", "services": {"parser": "mock", "embedder": "mock"}},
    "real": {"mode": "real"},
    "hybrid": {"mode": "hybrid"},
}


def run_scenario(path: Any, env: ReplayEnv, mode: RunMode, *, record_base: str = "real") -> ScenarioOutcome:
    """Load `path` and run it in `mode` in this process. Never raises for a bad scenario, config or
    key: those are `error` outcomes naming the file (and line) and the fix; a failed expectation is
    `failed` with the report. Reuses nothing from earlier runs. `record_base`: the mode a `record`
    run sends with (real | hybrid)."""
    from tvdb.clock import SystemClock, VirtualClock
    from tvdb.config import resolve_settings
    from tvdb.recording.session import Tape, configured_secrets
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import start_run

    started = time.perf_counter()
    secrets: list[str] = []
    name: str | None = None
    tape: Tape | None = None
    try:
        loaded = load_scenario(path)
        name = loaded.scenario.name
        flags = dict(_FLAGS[record_base if mode == "record" else mode])
        if env.data_dir is not None:
            flags["data_dir"] = env.data_dir
        settings = resolve_settings(cwd=env.cwd, environ=env.environ, config_file=env.config_file, flags=flags,
                                    scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
        secrets = configured_secrets(settings)
        if mode == "record":
            from tvdb.services.modes import service_mode

            if all(str(service_mode(settings, r)[0]) == "mock" for r in ("parser", "embedder")):
                raise ConfigError(f"{name}: --tvdb-record keeps real HTTP traffic, and this scenario has no real "
                                  "service (services: all mock)")
            cassette = cassette_for(loaded, settings, env.cwd)
            tape = Tape(path=cassette, record_mode="all", fresh=True, scenario=name,
                        scenario_path=os.path.relpath(loaded.path.resolve(), cassette.resolve().parent))
        clock = VirtualClock() if mode == "mock" else SystemClock()
        # fresh: an item's verdict must not depend on which items ran before it in this data dir
        result = asyncio.run(start_run(loaded, settings, clock=clock, tape=tape, fresh=True))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001  (one scenario's failure must not end the session)
        return _error(path, exc, name=name, cassette=tape.path if tape else None, started=started, secrets=secrets)
    outcome = ScenarioOutcome(path=path, name=name, status="passed" if result.passed else "failed",
                              cassette=tape.path if tape else None, result=result,
                              duration_s=time.perf_counter() - started)
    return outcome if result.passed else replace(_with_report(outcome, secrets))
