"""Regenerate docs/dashboard.png: the dashboard of the tests' known run sequence, rendered by headless
Chromium. Offline; needs `chromium` (apt-get install -y chromium). Run from the repository root:

    python scripts/make_dashboard_screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken_cache"))  # offline vocabulary

from tests.cdp import Browser, chromium  # noqa: E402
from tests.history_support import build_history  # noqa: E402
from tvdb.cli.app import app, handle_errors  # noqa: E402


def main() -> int:
    binary = chromium()
    if binary is None:
        print("needs headless Chromium: apt-get update && apt-get install -y chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        history = build_history(Path(tmp))
        html = Path(tmp) / "report.html"
        code = handle_errors(app, ["--data-dir", str(history.db_path.parent), "report", "--html", str(html),
                                   "--since", "2026-01-01", "--now", "2026-01-06T12:00:00"])
        if code:
            return code
        with Browser(binary, width=1600, height=900) as browser:
            page = browser.load(html)
    out = REPO / "docs" / "dashboard.png"
    out.write_bytes(page.png)
    print(f"wrote {out} ({len(page.png) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
