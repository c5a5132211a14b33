"""Headless Chromium as the browser tests and benchmarks launch it, and the windows they use.

Debian's Chromium (apt), driven by Playwright; `playwright install` is never needed.
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 412, "height": 915}
