"""Screenshot of a report's first screen in headless Chromium (the browser tests' Playwright
path: the system binary, nothing downloaded), for the README:

    python tests/report/screenshot.py runs/quickstart/report/report.html docs/quickstart-report.png
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from browsertools import chromium, launch  # noqa: E402


def main(report: str, out: str, width: int = 1280, height: int = 1500) -> int:
    from playwright.sync_api import sync_playwright

    path, why = chromium()
    if path is None:
        print(f"screenshot: {why}", file=sys.stderr)
        return 2
    with sync_playwright() as p:
        browser = launch(p, path)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(report).resolve().as_uri())
        page.wait_for_selector("body[data-tables-ready]", state="attached", timeout=30000)
        page.screenshot(path=out)
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
