"""A small Chrome DevTools Protocol client over `--remote-debugging-pipe` (fd 3 in, fd 4 out, JSON
messages ended by NUL), for rendering pages in headless Chromium: load a file, record every network
request it makes, read element boxes, take a screenshot. Loopback-free: no debugging port is opened."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Page:
    """What loading one page produced. `requests`: URLs of every request the page made (file: too)."""

    requests: list[str] = field(default_factory=list)
    boxes: dict[str, dict[str, float]] = field(default_factory=dict)
    png: bytes = b""


def _onto_3_and_4(read_fd: int, write_fd: int) -> None:
    """In the child: the pipe ends as fds 3 and 4, inheritable (dup first: dup2 onto the same number
    would keep the close-on-exec flag)."""
    a, b = os.dup(read_fd), os.dup(write_fd)
    os.dup2(a, 3)
    os.dup2(b, 4)


class Browser:
    def __init__(self, binary: str, width: int = 1600, height: int = 1400) -> None:
        self._profile = tempfile.mkdtemp(prefix="tvdb-chromium-")
        in_r, self._in_w = os.pipe()  # we write commands → chromium reads fd 3
        self._out_r, out_w = os.pipe()  # chromium writes fd 4 → we read
        self._proc = subprocess.Popen(
            [binary, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run", "about:blank"],
            close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # the pipe protocol reads fd 3 and writes fd 4; dup2 leaves them inheritable, close_fds=False keeps them
            preexec_fn=lambda: _onto_3_and_4(in_r, out_w),
        )
        os.close(in_r)
        os.close(out_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.size = (width, height)

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(timeout=10)
        os.close(self._in_w)
        os.close(self._out_r)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._out_r], [], [], 0.5)
            if ready:
                chunk = os.read(self._out_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
        message, _, self._buf = self._buf.partition(b"\0")
        return dict(json.loads(message))

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._in_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            e = self._read(deadline)
            if e.get("method") == method:
                return e
            self.events.append(e)

    def load(self, path: Path, selectors: dict[str, str] | None = None, settle_s: float = 0.5) -> Page:
        """Open `path` in a new tab; record its requests, the boxes of `selectors` (name → CSS), and
        a full-page PNG screenshot."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Network.enable", session=session)
        self.send("Page.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                         "deviceScaleFactor": 1, "mobile": False}, session=session)
        self.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self.wait_event("Page.loadEventFired")
        time.sleep(settle_s)  # late requests (lazy images, fonts) would show up here
        self.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drain pending events
        page = Page(requests=[e["params"]["request"]["url"] for e in self.events
                              if e.get("method") == "Network.requestWillBeSent"])
        for name, css in (selectors or {}).items():
            js = (f"(() => {{ const r = document.querySelector({json.dumps(css)}).getBoundingClientRect(); "
                  "return JSON.stringify({x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}); })()")
            page.boxes[name] = json.loads(self.send("Runtime.evaluate", {"expression": js, "returnByValue": True},
                                                    session=session)["result"]["value"])
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        page.png = base64.b64decode(shot["data"])
        self.send("Target.closeTarget", {"targetId": target})
        return page
