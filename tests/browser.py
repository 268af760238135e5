"""Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser)."""

from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# On a closed network: without the background-networking flags Chromium keeps opening
# connections that are refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parent / "artifacts" / "browser"
