"""The `tvdb` fixture and the `@pytest.mark.tvdb(...)` marker: `tvdb.session()` for a test.

    def test_ingest(tvdb):
        with tvdb.session(cassette="cassettes/ingest.yaml") as s:
            my_pipeline.ingest("report.pdf")

    @pytest.mark.tvdb(mode="replay", cassette="cassettes/ingest.yaml")
    def test_marked(tvdb):              # the marker opened the session; `tvdb.active` is it
        my_pipeline.ingest("report.pdf")

Every session gets the test's node id as `correlation_id` (so its ledger rows are tagged with it),
this run's data dir (--tvdb-data-dir; one per pytest-xdist worker), and its mode from the command
line: --tvdb-record → `record` when the session names a cassette · --tvdb-mode mock|real|hybrid →
that mode, the cassette unused · --tvdb-mode replay → replay (a session without a cassette skips
the test) · auto (default) → the session's own `mode=`, else replay when its cassette exists, else mock.

Next to pytest-recording: the `vcr` cassette is opened first, then the tvdb session on top of it, so
OpenAI and LlamaParse requests are tvdb's alone (mock, replayed from tvdb's cassette, or sent to
the network past vcrpy) and every other request goes through the `vcr` cassette as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tvdb.pytest_plugin.options import PluginState, state

if TYPE_CHECKING:
    from tvdb.sessions.api import Session


class TvdbFixture:
    """The `tvdb` fixture's value.

    `session(**kwargs)` → a `tvdb.Session` (open it with `with`), the arguments of `tvdb.session()`
    with the plugin's defaults; `active` → the session `@pytest.mark.tvdb(...)` opened for this test
    (None without the marker); `node_id`; `mode` / `record` (the --tvdb-mode / --tvdb-record given);
    `sessions` → every session built through this fixture in this test."""

    def __init__(self, node_id: str, st: PluginState) -> None:
        self.node_id = node_id
        self.mode = st.mode
        self.record = st.record
        self.active: Session | None = None
        self.sessions: list[Session] = []
        self._state = st

    def session(self, **kwargs: Any) -> Session:
        """Raises pytest's Skipped under --tvdb-mode replay for a session without cassette=; otherwise
        what `tvdb.session()` raises (ConfigError, ScenarioError)."""
        from tvdb.sessions.api import session

        built = session(**session_arguments(kwargs, self._state, self.node_id))
        self.sessions.append(built)
        return built


def session_arguments(kwargs: dict[str, Any], st: PluginState, node_id: str) -> dict[str, Any]:
    """`kwargs` for `tvdb.session()` with the command line's mode, the data dir and the node id."""
    out = dict(kwargs)
    out.setdefault("correlation_id", node_id)
    env = dict(out["environ"]) if out.get("environ") is not None else None
    worker_dir = st.worker_data_dir()
    if env is None:
        out["environ"] = st.environ()
    elif worker_dir is not None:
        env.setdefault("TVDB_DATA_DIR", str(worker_dir))
        out["environ"] = env
    cassette = out.get("cassette")
    base = Path(out["cwd"]) if out.get("cwd") is not None else Path.cwd()
    exists = cassette is not None and (Path(cassette) if Path(cassette).is_absolute() else base / cassette).is_file()
    if st.record:
        if cassette is not None:
            out["mode"] = "record"
    elif st.mode in ("mock", "real", "hybrid"):
        out["mode"] = st.mode
        out.pop("cassette", None)
        out.pop("record_mode", None)
    elif st.mode == "replay":
        if cassette is None:
            pytest.skip("--tvdb-mode replay: this test's tvdb session has no cassette= to replay")
        out["mode"] = "replay"
    elif out.get("mode") is None:
        out["mode"] = "replay" if exists else "mock"
        if not exists:
            out.pop("cassette", None)
    return out


def fixture_body(request: pytest.FixtureRequest) -> Iterator[TvdbFixture]:
    """The `tvdb` fixture: builds the value, opens the marker's session, and at teardown closes what is
    still open and records each session's real spend and dollars avoided for the summary line."""
    from tvdb.pytest_plugin.tally import money_properties

    if "vcr" in request.fixturenames:  # pytest-recording's cassette must be open before tvdb's patch
        request.getfixturevalue("vcr")
    fx = TvdbFixture(request.node.nodeid, state(request.config))
    marker = request.node.get_closest_marker("tvdb")
    if marker is not None and (marker.args or marker.kwargs):
        if marker.args:
            raise pytest.UsageError(f"{request.node.nodeid}: @pytest.mark.tvdb takes keyword arguments only "
                                    "(those of tvdb.session(), e.g. mode='replay', cassette='cassettes/x.yaml')")
        fx.active = fx.session(**marker.kwargs).open()
    try:
        yield fx
    finally:
        try:
            for s in fx.sessions:
                s.close()
        finally:
            for s in fx.sessions:
                if s.run_id and not s.is_open and _was_opened(s):
                    summary = s.summary()
                    request.node.user_properties.extend(
                        money_properties("tvdb_session", summary.spent_usd, summary.would_cost_usd))


def _was_opened(s: Session) -> bool:
    return bool(getattr(s, "_closed", False))


@pytest.fixture(name="tvdb")
def tvdb_fixture(request: pytest.FixtureRequest) -> Iterator[TvdbFixture]:
    """tvdb sessions for this test (see tvdb.pytest_plugin.fixture): `tvdb.session(...)`,
    `tvdb.active` (opened by @pytest.mark.tvdb(...)), `tvdb.node_id`."""
    yield from fixture_body(request)
