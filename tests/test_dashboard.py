"""`tvdb report --html`: one self-contained file whose charts really render in headless Chromium
(Debian's `chromium`; `.ci/run` installs it), making no network request, on the database of a
known sequence of runs (tests/history_support.py)."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.cdp import Browser, Page, chromium
from tests.cli_support import Cli, in_process_cli
from tests.history_support import History, build_history
from tvdb.cli.app import app, handle_errors
from tvdb.cli.charts import MOCK, REAL
from tvdb.cli.render_html import CHART_IDS

NOW = "2026-01-06T12:00:00"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("dash"))


@pytest.fixture
def cli(history: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return in_process_cli(monkeypatch, capsys, "--data-dir", str(history.db_path.parent))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium()
    if binary is None:
        pytest.fail("headless Chromium is needed for the dashboard test: apt-get update && apt-get install -y chromium")
    with Browser(binary) as b:
        yield b


@pytest.fixture(scope="module")
def report(history: History, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("out") / "nested" / "report.html"
    code = handle_errors(app, ["--data-dir", str(history.db_path.parent), "report", "--html", str(path),
                               "--since", "2026-01-01", "--now", NOW])
    assert code == 0
    return path


@pytest.fixture(scope="module")
def rendered(report: Path, browser: Browser) -> Page:
    selectors = {cid: f"#{cid} svg" for cid in CHART_IDS} | {"runs": "#runs"}
    return browser.load(report, selectors)


def test_the_file_is_self_contained(report: Path, history: History) -> None:
    html = report.read_text()
    assert "<script" not in html.lower() and "@import" not in html
    assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html))  # SVG clip paths only
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html, re.I)
    assert all(r.startswith("#") for r in refs), refs  # only in-page references (SVG clip paths)
    assert "<link" not in html.lower() and "<img" not in html.lower() and "<iframe" not in html.lower()
    assert html.count("<svg") == len(CHART_IDS)  # one inline SVG per chart
    for run_id in history.ids:
        assert run_id in html  # the run list


def test_every_chart_is_drawn_in_chromium(rendered: Page) -> None:
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(rendered.png)).convert("RGB")).astype(int)

    def crop(box: dict[str, float]) -> Any:
        x, y = int(box["x"]), int(box["y"])
        return image[y:y + int(box["height"]), x:x + int(box["width"])].reshape(-1, 3)

    def not_white(pixels: Any) -> float:
        return float((pixels.sum(axis=1) < 3 * 245).mean())

    def near(pixels: Any, hex_color: str) -> float:
        want = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
        return float((np.abs(pixels - want).sum(axis=1) < 24).mean())

    for cid in CHART_IDS:
        box = rendered.boxes[cid]
        assert (box["width"], box["height"]) == (720, 330), cid
        assert not_white(crop(box)) > 0.02, f"{cid} looks empty"
    # the data itself, not just axes: mock would-cost bars and the latency boxes are filled in MOCK blue
    for cid in ("spend-by-service", "stage-latency", "real-vs-mock"):
        assert near(crop(rendered.boxes[cid]), MOCK) > 0.002, cid
    assert near(crop(rendered.boxes["real-vs-mock"]), REAL) > 0.002  # the real run's duration bar
    # the check can fail: the empty grid cell beside the last chart is all background
    last = rendered.boxes[CHART_IDS[-1]]
    beside = {"x": last["x"] + 762, "y": last["y"], "width": 720, "height": 330}
    assert not_white(crop(beside)) == 0
    assert rendered.boxes["runs"]["height"] > 4 * 20  # a header and four run rows


def test_the_page_makes_no_network_request(rendered: Page, report: Path) -> None:
    assert rendered.requests == [report.resolve().as_uri()]


class _Hits(BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 — http.server's name
        _Hits.paths.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_the_request_check_sees_a_request_when_there_is_one(browser: Browser, tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/pixel.png"
        page = tmp_path / "leaky.html"
        page.write_text(f'<!DOCTYPE html><html><body><img src="{url}"></body></html>')
        seen = browser.load(page)
    finally:
        server.shutdown()
    assert url in seen.requests and _Hits.paths == ["/pixel.png"]


def test_report_json_and_open(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda uri: opened.append(uri) or True)
    target = tmp_path / "r.html"
    code, out, _ = cli("report", "--html", str(target), "--open", "--json", "--now", NOW)
    assert code == 0
    doc = json.loads(out)
    assert doc["path"] == str(target.resolve()) and doc["bytes"] == len(target.read_bytes())
    assert opened == [target.resolve().as_uri()]
    (tmp_path / "blocked").write_text("a file where a directory should be")
    code, _, err = cli("report", "--html", str(tmp_path / "blocked" / "x.html"), "--now", NOW)
    assert code == 2 and "cannot write" in err


def test_same_data_gives_the_same_bytes(cli: Cli, tmp_path: Path, report: Path) -> None:
    again = tmp_path / "again.html"
    assert cli("report", "--html", str(again), "--since", "2026-01-01", "--now", NOW)[0] == 0
    assert again.read_bytes() == report.read_bytes()  # the fixture wrote it into a directory it had to make
