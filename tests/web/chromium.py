"""Debian's Chromium driven by Playwright (never `playwright install`): the launch flags this machine needs and
one way to open a page the way an English-speaking user's browser would."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--lang=en-US"]
SHOTS = ARTIFACTS / "screenshots"
TIMEOUT_MS = 60_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


def available() -> bool:
    return Path(CHROMIUM).exists()


def open_page(browser, url: str, phone: bool = False, wait_workers: bool = True, **context):
    """A new context (English locale and Accept-Language) and page at url, once the model line shows a worker."""
    opts = PHONE if phone else {"viewport": DESKTOP}
    ctx = browser.new_context(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en"}, **{**opts, **context})
    ctx.set_default_timeout(TIMEOUT_MS)
    pg = ctx.new_page()
    pg.goto(url)
    if wait_workers:
        pg.locator("#model-status").get_by_text("обработчиков: 1").wait_for()
    return pg
