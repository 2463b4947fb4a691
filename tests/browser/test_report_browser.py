"""The evidence report in a real browser: headless Chromium loads it offline, logs no
console error, and draws every chart.

Chromium and its driver are Debian's (``chromium``, ``chromium-driver``; ``make test``
installs them when missing). selenium is pointed at the driver by its path: its own
driver manager would try to download one. Missing, the test is skipped, except under
``CI=true``, where it fails: a browser test that CI skips proves nothing.

Each chart (``figure.chart``) is cut out of a screenshot of the whole page and must be
drawn: many colours, a share of its pixels neither white nor near it, and pixels of
the models' own colours (the data, not only the axes). A blank patch
of the same page is cut out and checked too, and must fail the same check, so the
check can tell a drawn chart from an empty box.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.sample_ledger import ROLLOUT_RUN, write_sample_ledger

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(60)]

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
#: The page is drawn this wide (px); the screenshot covers its whole height.
WIDTH = 1100


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{what} (CI=true: the browser test may not be skipped; `make test` installs it)"
        )
    pytest.skip(f"{what}: apt-get install -y chromium chromium-driver (or `make test`)")


def _find(names: tuple[str, ...], fallback: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return fallback if Path(fallback).is_file() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[dev]')")
    chromium = _find(CHROMIUM, "/usr/bin/chromium")
    driver = _find((DRIVER,), "/usr/bin/chromedriver")
    if chromium is None:
        _missing("Chromium is not installed")
    if driver is None:
        _missing("chromedriver is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={WIDTH},900", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(executable_path=str(driver)), options=options)
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _missing("matplotlib is not installed (pip install -e '.[dev]')")
    folder = tmp_path_factory.mktemp("browser")
    ledger = write_sample_ledger(folder / "ledger.jsonl")
    from amlretrain.report import build_report

    return build_report(ledger.history(), ROLLOUT_RUN).save(folder / "report.html")


def drawn(png: Any) -> tuple[int, float]:
    """(distinct colours, share of pixels not near white) of an RGB image."""
    rgb = png.convert("RGB")
    colours = rgb.getcolors(maxcolors=rgb.width * rgb.height + 1) or []
    inked = sum(n for n, (r, g, b) in colours if min(r, g, b) < 235)
    return len(colours), inked / max(rgb.width * rgb.height, 1)


def data_pixels(png: Any) -> int:
    """Pixels of the models' own colours (the data drawn, not only the axes)."""
    from amlretrain._charts import CANDIDATE, INCUMBENT

    wanted = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in (INCUMBENT, CANDIDATE)]
    rgb = png.convert("RGB")
    return sum(
        n
        for n, pixel in rgb.getcolors(maxcolors=rgb.width * rgb.height + 1) or []
        if any(max(abs(a - b) for a, b in zip(pixel, w, strict=True)) < 40 for w in wanted)
    )


def is_drawn(png: Any) -> bool:
    colours, inked = drawn(png)
    return colours >= 8 and inked >= 0.02 and data_pixels(png) >= 50


def test_the_report_loads_offline_without_errors_and_draws_every_chart(
    browser: Any, report_file: Path
) -> None:
    from PIL import Image

    started = time.monotonic()
    page = report_file.read_text(encoding="utf-8")
    # nothing to fetch: no external resource or link (blob URLs are text only)
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page) == []
    assert "<script" not in page

    browser.get(report_file.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title == f"amlretrain report: run {ROLLOUT_RUN}"

    # every chart laid out, with a size
    charts = browser.execute_script(
        "return Array.from(document.querySelectorAll('figure.chart')).map(f => {"
        " const r = f.querySelector('svg').getBoundingClientRect();"
        " return {id: f.id, x: r.left + window.scrollX, y: r.top + window.scrollY,"
        " w: r.width, h: r.height}; })"
    )
    assert [c["id"].split("-", 2)[2] for c in charts] == ["metrics", "gate", "shadow"] * 2
    assert all(c["w"] > 300 and c["h"] > 100 for c in charts), charts

    # one screenshot of the whole page (the window as tall as the document)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, height + 200)
    shot = browser.get_screenshot_as_png()
    (report_file.parent / "report.png").write_bytes(shot)
    image = Image.open(io.BytesIO(shot))
    assert image.size[1] >= height, "the screenshot does not cover the page"
    undrawn = []
    for chart in charts:
        box = (round(chart["x"]), round(chart["y"]),
               round(chart["x"] + chart["w"]), round(chart["y"] + chart["h"]))  # fmt: skip
        area = image.crop(box)
        if not is_drawn(area):
            undrawn.append((chart["id"], drawn(area), data_pixels(area)))
    assert undrawn == [], f"charts not drawn (colours, inked share, data pixels): {undrawn}"

    # the check can fail: a blank patch of the same screenshot (the right margin) is not
    # drawn, and neither is a chart's area blanked out in the page itself
    margin = image.crop((WIDTH - 40, 0, WIDTH - 5, 600))
    assert not is_drawn(margin), drawn(margin)
    browser.execute_script("document.querySelector('figure.chart svg').style.visibility='hidden'")
    first = charts[0]
    blanked = Image.open(io.BytesIO(browser.get_screenshot_as_png())).crop(
        (round(first["x"]), round(first["y"]),
         round(first["x"] + first["w"]), round(first["y"] + first["h"]))
    )  # fmt: skip
    assert not is_drawn(blanked), drawn(blanked)

    # no console error, no failed load (a request the page made would log one)
    logs = browser.get_log("browser")
    errors = [entry for entry in logs if entry.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], errors
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources == [], f"the page loaded: {resources}"
    assert time.monotonic() - started < 30


def test_the_console_check_sees_an_error(browser: Any, tmp_path: Path) -> None:
    # the check above can fail: a page that logs an error is seen logging it
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><title>x</title><link rel=icon href='data:,'>"
        "<script>console.error('boom')</script>",
        encoding="utf-8",
    )
    browser.get_log("browser")  # drop what came before
    browser.get(page.as_uri())
    logs = browser.get_log("browser")
    assert any(e["level"] == "SEVERE" and "boom" in e["message"] for e in logs), logs
