"""`tvdb cost advise` counts only what a cache or a cassette could really have avoided, checked on a
database produced by a known sequence of runs of one scenario (one 1-page PDF, fast tier, 1 credit
= $0.00125 a page, text-embedding-3-small at $0.02 per 1M tokens):

    M    mock             the parse a mock result can never answer for a real request
    R1   real             the first real parse and embedding: nothing to repeat yet
    REC  real, recording  a repeat of R1, but recording a cassette is taking the advice
    REP  replay           answered from the cassette: cost nothing, saves nothing more
    R2   real (--fresh)   a repeat of R1 that a parse cache and a cassette would both have avoided

Before the fix, M's parse made R1 a "repeat", REC counted as a run a cassette would have replaced, and
REP's replayed parse was worth its live price as a saving.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import DOCUMENTS  # TVDB_SHARED_DIR, else ../shared
from tests.llamaparse_support import LLX_CANARY
from tests.openai_support import CANARY
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.db import open_db
from tvdb.emulator.llamaparse import LlamaParseEmulator
from tvdb.emulator.openai import OpenAIEmulator
from tvdb.emulator.server import EmulatorServer
from tvdb.history.advise import advise
from tvdb.ledger.prices import PriceTable
from tvdb.recording.session import Tape
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import start_run

DOC = DOCUMENTS / "minimal-document.pdf"
NUSD_FAST_PAGE = 1_250_000
SCENARIO = "name: advised\ndocuments: [doc.pdf]\nparse: {tier: fast}\nservices: {parser: %s, embedder: %s}\n"


def _run(tmp: Path, env: dict[str, str], mode: str, clock: FakeClock, *, tape: Tape | None = None,
         fresh: bool = False) -> RunResult:
    path = tmp / "advised.yaml"
    path.write_text(SCENARIO % (mode, mode))
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=tmp, environ=env, scenario=loaded.scenario.settings_layer(),
                                scenario_doc=loaded.source, dotenv=False)
    result = asyncio.run(start_run(loaded, settings, clock=clock, tape=tape, fresh=fresh))
    assert result.exit_code == 0, [(d.path, d.error_message) for d in result.documents]
    clock.advance(3600)
    return result


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[RunResult]]:
    tmp = tmp_path_factory.mktemp("advise")
    shutil.copy(DOC, tmp / "doc.pdf")
    cassette = tmp / "cassettes" / "advised.yaml"
    clock = FakeClock()
    parse = LlamaParseEmulator(clock=clock.monotonic, per_page_s=0.5, queue_s=1.0)
    with EmulatorServer([OpenAIEmulator(), parse]) as server:
        env = {"TVDB_DATA_DIR": str(tmp / ".tvdb"), "OPENAI_API_KEY": CANARY, "LLAMA_CLOUD_API_KEY": LLX_CANARY,
               "OPENAI_BASE_URL": server.openai_base_url, "LLAMA_CLOUD_BASE_URL": server.llama_cloud_base_url,
               "TVDB_DAILY_BUDGET_USD": "5"}
        runs = [_run(tmp, env, "mock", clock), _run(tmp, env, "real", clock)]
        runs.append(_run(tmp, env, "real", clock, tape=Tape(cassette, "all", fresh=True, scenario="advised")))
        runs.append(_run(tmp, env, "real", clock, tape=Tape(cassette, "none", scenario="advised")))
        runs.append(_run(tmp, env, "real", clock, fresh=True))
    return tmp / ".tvdb" / "tvdb.db", runs


def _spent(db: Path, run_id: str, stage: str | None = None) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(
            "SELECT COALESCE(SUM(cost_nusd), 0) FROM usage WHERE run_id = ? AND status = 'ok' "
            "AND (? IS NULL OR stage = ?)", [run_id, stage, stage]).fetchone()[0])


def test_the_sequence_is_what_the_test_says(sequence: tuple[Path, list[RunResult]]) -> None:
    db, runs = sequence
    with sqlite3.connect(db) as conn:
        parses = conn.execute("SELECT run_id, implementation, units, cost_nusd FROM usage WHERE stage = 'parse' "
                              "AND status = 'ok' ORDER BY id").fetchall()
    ids = [r.run_id for r in runs]
    assert parses == [(ids[0], "mock", 1, 0), (ids[1], "real", 1, NUSD_FAST_PAGE), (ids[2], "real", 1, NUSD_FAST_PAGE),
                      (ids[3], "replay", 1, 0), (ids[4], "real", 1, NUSD_FAST_PAGE)]


def test_advice_counts_only_what_a_cache_or_a_cassette_would_have_avoided(
        sequence: tuple[Path, list[RunResult]]) -> None:
    db, runs = sequence
    items = {a.kind: a for a in advise(open_db(db), PriceTable.load())}
    repeat = items["repeated_parse"]
    # REC and R2 repeated R1's real parse; R1 did not repeat M's mock one; REP's replay cost nothing
    assert (repeat.occurrences, repeat.saved_nusd, repeat.saved_would_cost_nusd) == (
        2, 2 * NUSD_FAST_PAGE, 2 * NUSD_FAST_PAGE)
    assert repeat.detail.startswith("2 parses repeated")
    cassettes = items["cassettes"]
    # only R2 repeated an earlier real run: REC recorded the cassette, REP replayed it
    assert (cassettes.occurrences, cassettes.saved_nusd) == (1, _spent(db, runs[4].run_id))
    assert _spent(db, runs[4].run_id) == NUSD_FAST_PAGE + _spent(db, runs[4].run_id, "embed")
    assert cassettes.detail.startswith("1 real run repeated")  # not "1 real runs"
    batch = items["batch_api"]
    embeds = [_spent(db, runs[i].run_id, "embed") for i in (1, 2, 4)]  # the real embedding requests, not REP's
    assert (batch.occurrences, batch.saved_nusd) == (3, sum(e - e // 2 for e in embeds))
    assert items["cheaper_tier"].occurrences == 0  # one tier only
