"""A real headless browser for the report tests: Debian's ``chromium`` driven by Playwright.

Playwright is launched on the system binary (``executable_path``); ``playwright install`` (which
downloads a browser) is never run. When no chromium is found, the set-up installs Debian's
package with apt-get (as CI does on a fresh machine, where it runs as root); the tests skip,
saying why, only where that is impossible (not root, no apt-get, no package source reachable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
"""Chromium flags: headless, no sandbox (containers), and nothing that talks to the network."""


def _found() -> str | None:
    for candidate in (os.environ.get("MOELENS_CHROMIUM"), shutil.which("chromium"),
                      "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def chromium() -> tuple[str | None, str]:
    """(path to chromium, "") or (None, why it could not be had)."""
    path = _found()
    if path:
        return path, ""
    if shutil.which("apt-get") is None:
        return None, "chromium is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed (apt-get install chromium needs root)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"chromium could not be installed ({' '.join(cmd)}: {last})"
    path = _found()
    return (path, "") if path else (None, "apt-get installed chromium but no binary was found")


def launch(playwright, executable: str):
    return playwright.chromium.launch(executable_path=executable, args=FLAGS, headless=True)


class PageLog:
    """Console messages and page errors of one page (what a clean report must not have)."""

    def __init__(self, page) -> None:
        self.console: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def problems(self) -> list[str]:
        bad = [c for c in self.console if c.startswith(("error", "warning"))]
        return bad + [f"page error: {e}" for e in self.errors]
