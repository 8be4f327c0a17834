"""report.html in a real headless Chromium (Debian's `chromium` package, driven by Playwright
through `executable_path`; no `playwright install`): it loads from file:// without touching
the network, logs no console error, draws every panel with its traces, and answers a real
mouse: hover shows values, a drag zooms every panel on a time range, a legend click hides a
series. Skips when chromium or Playwright is absent.

`AFTERSHOCK_SCREENSHOTS=docs/images pytest tests/test_report_browser.py` also writes the
README's picture of the report there (report.png, palette PNG, under 150 KB)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_journals import write_journal

from harness.reports.writers import render_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
README_SHOT_BYTES = 150_000
GRAPH = "document.getElementById('timeline')"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.problems = []  # console errors, page errors and requests that leave the file
    pg.on("console", lambda m: m.type in ("error", "assert") and pg.problems.append(m.text))
    pg.on("pageerror", lambda e: pg.problems.append(f"exception: {e}"))
    pg.on(
        "request",
        lambda r: (
            not r.url.startswith(("file:", "data:", "blob:"))
            and pg.problems.append(f"network request: {r.url}")
        ),
    )
    yield pg
    context.close()


def _open(page: Any, report: Path) -> None:
    page.goto(report.as_uri())
    page.wait_for_function(f"{GRAPH} && {GRAPH}._fullLayout && {GRAPH}.data.length > 0")


def _pixel(page: Any, axis: str, x: float, y_frac: float = 0.5) -> tuple[float, float]:
    """Viewport coordinates of time `x` on x-axis `axis`, `y_frac` of the way down its panel
    (the panel scrolled into the middle of the viewport, where the mouse can reach it)."""
    return page.evaluate(
        f"""([axis, x, f]) => {{ const gd = {GRAPH}, L = gd._fullLayout, xa = L['x' + axis],
        ya = L['y' + axis];
        const panelY = () => gd.getBoundingClientRect().top + ya._offset + f * ya._length;
        window.scrollBy(0, panelY() - window.innerHeight / 2);
        return [gd.getBoundingClientRect().left + xa._offset + xa.l2p(x), panelY()]; }}""",
        [axis, x, y_frac],
    )


def test_report_is_interactive_and_shows_the_run(page: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_journal(run / "journal.jsonl", attack_slo=True)
    render_run(run)
    _open(page, run / "report.html")
    shot = tmp_path / "report-full.png"  # before the mouse moves: as a reader first sees it
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    _readme_picture(page, tmp_path)
    names = page.evaluate(f"{GRAPH}.data.map(t => t.name)")
    for expected in (
        "p50", "p95", "p99", "error rate", "errors: timeout", "requests/s", "accuracy",
        "fallback rate", "robust_accuracy (attack figure)", "SLO: p95 under 250 ms",
        "SLO: availability", "SLO: robust under fgsm",
    ):  # fmt: skip
        assert expected in names, expected
    panels = page.evaluate(f"Object.keys({GRAPH}._fullLayout).filter(k => /^yaxis\\d*$/.test(k))")
    assert len(panels) == 6  # latency, errors, throughput, accuracy, fallback, attack figures
    drawn = page.evaluate(f"{GRAPH}.querySelectorAll('.scatterlayer .trace').length")
    assert drawn == len(names)

    # hover: a real mouse over the latency panel inside the fault shows that window's p95
    p95 = page.evaluate(f"{GRAPH}.data.find(t => t.name === 'p95').y[10]")
    page.mouse.move(*_pixel(page, "axis", 10.5, 0.5))
    page.wait_for_selector(".hoverlayer .legend, .hoverlayer .hovertext", timeout=5000)
    hover = page.evaluate("document.querySelector('.hoverlayer').textContent")
    assert "p95" in hover and f"{p95:.4g}"[:3] in hover.replace(",", ""), (hover, p95)

    # zoom: drag over 8..13 s on the error panel; every panel follows (shared time axis)
    x0, y = _pixel(page, "axis2", 8.0)
    x1, _ = _pixel(page, "axis2", 13.0)
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y, steps=4)
    page.mouse.move(x1, y, steps=4)
    page.mouse.up()
    ranges = page.evaluate(
        f"Object.entries({GRAPH}._fullLayout).filter(([k]) => /^xaxis\\d*$/.test(k))"
        ".map(([, a]) => a.range)"
    )
    assert len(ranges) == 6
    for lo, hi in ranges:
        assert abs(lo - 8.0) < 0.3 and abs(hi - 13.0) < 0.3, ranges
    # the same from code: the bottom axis leads (the others match it), read back on the top one
    page.evaluate(f"Plotly.relayout({GRAPH}, {{'xaxis6.range': [14, 17]}})")
    assert page.evaluate(f"{GRAPH}._fullLayout.xaxis.range") == [14, 17]
    page.evaluate(f"Plotly.relayout({GRAPH}, {{'xaxis6.autorange': true}})")

    # legend toggle: a click on "p99" hides that series, a second click shows it again
    entry = page.locator(".legend .traces", has_text="p99").first
    entry.click()
    p99 = f"{GRAPH}.data.find(t => t.name === 'p99').visible"
    page.wait_for_function(f"{p99} === 'legendonly'")
    entry.click()
    page.wait_for_function(f"{p99} === true")
    # ... and a click on the fault's entry hides its shading on every panel at once
    page.locator(".legend .traces", has_text="fault: slow-fs").first.click()
    fault = f"{GRAPH}.layout.shapes.filter(s => s.name === 'fault: slow-fs')"
    page.wait_for_function(f"{fault}.every(s => s.visible === 'legendonly')")
    assert page.evaluate(f"{fault}.length") == 6

    text = page.inner_text("body")
    for expected in (
        "Resilience score", "60.0 %", "Σ(weightᵢ × successᵢ)", "p95 under 250 ms", "FAIL",
        "robust_accuracy 71.0 %", "psi", "recovery", "3.11.9", "attacks.json",
    ):  # fmt: skip
        assert expected in text, expected
    colors = page.evaluate(
        "[...document.querySelectorAll('#verdicts tr[class^=row-] td:first-child')]"
        ".map(td => [td.innerText, getComputedStyle(td).backgroundColor])"
    )
    assert dict(colors)["p95 under 250 ms"] != dict(colors)["availability"]  # FAIL vs PASS
    assert page.problems == []


def _readme_picture(page: Any, out: Path) -> None:
    """The verdicts and the chart, as a small palette PNG for the README."""
    from PIL import Image

    page.set_viewport_size({"width": 1200, "height": 900})
    page.evaluate(f"Plotly.Plots.resize({GRAPH})")
    page.wait_for_timeout(300)  # the resize redraws on the next frames
    heading = "document.getElementById('verdicts').previousElementSibling"
    top = page.evaluate(f"{heading}.getBoundingClientRect().top + scrollY")
    bottom = page.evaluate(f"{GRAPH}.getBoundingClientRect().bottom + scrollY")
    raw = out / "report-readme-raw.png"
    page.screenshot(
        path=str(raw), full_page=True,
        clip={"x": 0, "y": max(0, top - 10), "width": 1200, "height": bottom - top + 20},
    )  # fmt: skip
    small = out / "report.png"
    with Image.open(raw) as img:
        img = img.convert("RGB").resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)
        img.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(small, optimize=True)
    assert small.stat().st_size <= README_SHOT_BYTES, small.stat().st_size
    if target := os.environ.get("AFTERSHOCK_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(small, Path(target) / "report.png")


def test_partial_journal_of_a_crashed_run_renders_in_the_browser(page: Any, tmp_path: Path) -> None:
    run = tmp_path / "crashed"
    write_journal(run / "journal.jsonl", crash_at=11)
    render_run(run)
    _open(page, run / "report.html")
    p95 = page.evaluate(f"{GRAPH}.data.find(t => t.name === 'p95').x.length")
    assert p95 == 11  # the windows written before the crash
    assert "INCOMPLETE" in page.inner_text("#status")
    assert page.problems == []
