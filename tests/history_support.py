"""A database produced by a known sequence of runs, for the run-history, advice and dashboard tests.

The quickstart's four documents (6 pages: 1 + 1 + 1 + 3) go through the real pipeline in-process,
scenario `docs`, with a clock that only moves when the code reads it:

    R1  2026-01-05 09:00  mock                      fast tier     512-token chunks
    R2  2026-01-05 10:00  mock                      agentic tier   64-token chunks (10 credits/page)
    R3  2026-01-06 09:00  real embedder (emulator)  fast tier     128-token chunks, first request 429 + retry
    R4  2026-01-06 10:00  same scenario file as R3: every document reused, only the retrieval query is sent

Parsing is always local (mock). Every run asks one retrieval question.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.openai_support import KEY, emulator
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import start_run

REPO = Path(__file__).resolve().parents[1]
PAGES = 6
QUERY = "clean barnacles off the sensor window"


class SteppingClock(FakeClock):
    """Each monotonic read moves time 5 ms, so stage times and latencies are positive and small."""

    def monotonic(self) -> float:
        self.advance(0.005)
        return super().monotonic()


@dataclass(frozen=True)
class History:
    workdir: Path
    db_path: Path
    runs: tuple[RunResult, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.run_id for r in self.runs)


def _scenario(work: Path, name: str, body: str) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(
        "name: docs\ndocuments: ['docs/*']\n" + body
        + f"expectations:\n  retrieval:\n    - {{query: {QUERY}, document: docs/field-guide.pdf, top_k: 3}}\n"
    )
    return path


def build_history(work: Path) -> History:
    shutil.copytree(REPO / "scenarios" / "quickstart", work / "docs")
    data = work / ".tvdb"
    r1 = _scenario(work, "r1", "mode: mock\nparse: {tier: fast}\nchunking: {max_tokens: 512, overlap_tokens: 64}\n")
    r2 = _scenario(work, "r2", "mode: mock\nparse: {tier: agentic}\nchunking: {max_tokens: 64, overlap_tokens: 8}\n")
    r3 = _scenario(work, "r3", "mode: real\nservices: {parser: mock, embedder: real}\nparse: {tier: fast}\n"
                               "chunking: {max_tokens: 128, overlap_tokens: 16}\n"
                               "faults:\n  - {service: openai, kind: status, status: 429, retry_after: 1, nth: 1}\n")
    plan = [(r1, "2026-01-05T09:00"), (r2, "2026-01-05T10:00"), (r3, "2026-01-06T09:00"), (r3, "2026-01-06T10:00")]
    results = []
    with emulator() as server:
        for path, when in plan:
            loaded = load_scenario(path)
            environ = {"TVDB_DATA_DIR": str(data), "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.openai_base_url,
                       "TVDB_DAILY_BUDGET_USD": "1"}
            settings = resolve_settings(cwd=work, environ=environ, scenario=loaded.scenario.settings_layer(),
                                        scenario_doc=loaded.source, dotenv=False)
            clock = SteppingClock(dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC))
            result = asyncio.run(start_run(loaded, settings, clock=clock))
            assert result.status == "finished", result
            results.append(result)
    return History(work, data / "tvdb.db", tuple(results))
