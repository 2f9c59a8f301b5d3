"""The HTML reports of a demo run as a person sees them: Debian's Chromium, headless, offline.

Each page is opened with a small probe script prepended that records console errors and uncaught
exceptions into the DOM; Chromium runs the page's scripts (the charts), dumps the rendered DOM and
saves a screenshot. The test fails on any recorded error, a chart that did not render, or a payload
from the documents or the config that ran.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")

PROBE = """<script>
window.__errors = [];
const __record = (m) => { window.__errors.push(String(m)); document.documentElement.setAttribute("data-errors", window.__errors.join(" | ")); };
const __error = console.error.bind(console);
console.error = (...a) => { __record(a.join(" ")); __error(...a); };
window.addEventListener("error", (e) => __record(e.message || "resource failed to load"), true);
window.addEventListener("unhandledrejection", (e) => __record(e.reason));
</script>"""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",
]


def render(page: Path, tmp_path: Path) -> str:
    """The DOM after the page's scripts ran; also saves a screenshot next to the probed copy."""
    probed = tmp_path / page.name
    probed.write_text(PROBE + page.read_text(encoding="utf-8"), encoding="utf-8")
    profile = tmp_path / f"profile-{page.stem}"
    base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*base, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / f"{page.stem}.png"
    subprocess.run(
        [*base, "--window-size=1280,2400", f"--screenshot={shot}", probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000, "no screenshot"
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    return dom.stdout


def opening_tag(dom: str, name: str) -> str:
    start = dom.index(f"<{name}")
    return dom[start : dom.index(">", start) + 1]


def check_clean(dom: str) -> None:
    # the probe and the payloads write attributes on <html> and <body>; their text elsewhere is fine
    html_tag, body_tag = opening_tag(dom, "html"), opening_tag(dom, "body")
    assert "data-errors" not in html_tag, f"console errors: {html_tag}"
    assert "data-pwned" not in body_tag, "a payload from the run's text executed"


def test_domain_mix_html_renders_charts_without_errors(demo_run, tmp_path):
    dom = render(demo_run / "reports" / "domain_mix.html", tmp_path)
    check_clean(dom)
    # plotly renders each figure into a plot container: shares, funnel and quality charts
    assert dom.count("plot-container plotly") >= 3
    assert "&lt;script&gt;top[" in dom, "the config payload is shown, escaped"


def test_contamination_html_renders_without_errors(demo_run, tmp_path):
    dom = render(demo_run / "reports" / "contamination.html", tmp_path)
    check_clean(dom)
    assert "synthbench" in dom
    assert "&lt;script&gt;document.body" in dom, "the planted payload document is shown, escaped"
