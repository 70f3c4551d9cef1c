"""The progress display counts embedding requests as well as documents: `embed 0/2 (3/5 requests)`."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from rich.console import Console

from tvdb.cli.render import RichProgress
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.pipeline.jobs import Job
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import RunHooks, start_run


class Recorder:
    """A ProgressSink that keeps every requests_changed call."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, int]] = []

    def job_changed(self, job: Job) -> None:
        return None

    def requests_changed(self, stage: str, finished: int, planned: int) -> None:
        self.requests.append((stage, finished, planned))


def test_a_run_reports_each_embedding_request_as_it_ends(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"d{i}.md").write_text(f"# Note {i}\n" + "harbour tide sensors " * (200 + i), encoding="utf-8")
    (tmp_path / "s.yaml").write_text("name: p\ndocuments: ['*.md']\nchunking: {max_tokens: 64, overlap_tokens: 0}\n",
                                     encoding="utf-8")
    loaded = load_scenario(tmp_path / "s.yaml")
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
    sink = Recorder()
    result = asyncio.run(start_run(loaded, settings, clock=FakeClock(), hooks=RunHooks(progress=sink)))
    assert result.passed
    embeds = [r for r in sink.requests if r[0] == "embed"]
    planned = embeds[0][2]
    assert embeds[0] == ("embed", 0, planned) and planned >= 1
    assert embeds[-1] == ("embed", planned, planned)
    assert [f for _, f, _ in embeds] == list(range(planned + 1))


def test_the_bar_shows_requests_beside_documents() -> None:
    bars = RichProgress(Console(file=io.StringIO(), force_terminal=True, width=160))
    bars.requests_changed("embed", 3, 5)
    assert "embed 0/0 (3/5 requests)" in bars._stages()
    assert "parse 0/0 ·" in bars._stages()


def test_an_80_column_terminal_keeps_the_elapsed_time_and_eta_whole() -> None:
    from types import SimpleNamespace

    from tvdb.domain import JobState

    out = io.StringIO()
    bars = RichProgress(Console(file=out, force_terminal=True, width=80, color_system=None), refresh_per_second=1)
    bars.start([SimpleNamespace(job_id=f"j{i}", path=f"/d/doc-{i}.pdf", state=JobState.PENDING)  # type: ignore[misc]
                for i in range(200)])
    bars.requests_changed("embed", 3, 5)
    bars.stop()
    last = out.getvalue().rsplit("\x1b[2K", 1)[-1].splitlines()  # the final frame
    bar = next(line for line in out.getvalue().splitlines() if line.lstrip("\x1b[2K1A").startswith("run"))
    assert "ETA -:--:--" in bar and "0:00:00" in bar and "…" not in bar
    assert "  parse 0/200 · chunk 0/200 · embed 0/200 (3/5 requests) · store 0/200" in out.getvalue()
    assert all(len(line) <= 80 for line in last)
