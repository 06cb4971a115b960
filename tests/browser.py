"""A real headless browser for the HTML report tests: Debian's chromium driven by Playwright.

``open_report(path)`` loads a file the way a user does (file:// URL, fresh profile, no network)
and returns what a test asserts on: console messages and page errors, every URL the page asked
for, each results-table cell's text and visibility, and whether each image decoded. Tests call
``need_browser()`` first: it skips them, saying why, where chromium or Playwright is absent (CI
installs chromium in .ci/run; Playwright comes with the test extras).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def need_browser() -> str:
    """The chromium binary; skips the calling test when chromium or Playwright is missing."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium), the HTML report is untested")
    return binary


@dataclass
class LoadedPage:
    console: list[tuple[str, str]]     # (type, text) of every console message
    errors: list[str]                  # uncaught page errors
    failed_requests: list[str]
    requested: list[str]               # every URL requested, the page's own included
    cells: list[dict]                  # per results-table <td>: row, column, text, visible, status
    images: list[dict]                 # per <img>: alt, loaded (decoded with a width), width
    run_rows: int                      # rows of the runs table


def open_report(path: Path) -> LoadedPage:
    from playwright.sync_api import sync_playwright

    binary = need_browser()
    console, errors, failed, requested = [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda message: console.append((message.type, message.text)))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on("request", lambda request: requested.append(request.url))
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            cells = page.evaluate("""() => {
                const table = document.querySelector("table.results");
                const headers = [...table.querySelectorAll("thead th")].map(th => th.innerText.trim());
                return [...table.querySelectorAll("tbody tr")].flatMap(tr => {
                    const row = tr.querySelector("th").innerText.trim();
                    return [...tr.querySelectorAll("td")].map((td, i) => {
                        const box = td.getBoundingClientRect();
                        const style = getComputedStyle(td);
                        return {row, column: headers[i + 1], text: td.innerText.trim(), status: td.dataset.status,
                                visible: box.width > 0 && box.height > 0 && style.visibility !== "hidden"
                                         && style.display !== "none"};
                    });
                });
            }""")
            images = page.evaluate("""() => [...document.images].map(img => (
                {alt: img.alt, loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth}))""")
            run_rows = page.evaluate("() => document.querySelectorAll('table.runs tbody tr').length")
        finally:
            browser.close()
    return LoadedPage(console, errors, failed, requested, cells, images, run_rows)
