"""`dvc plots show` for a pipeline run draws every plot in headless Chromium with no network at all.

The page must carry vega itself (``plots.html_template`` in ``.dvc/config``), since DVC's default page loads it
from a CDN. Chromium runs with every connection sent to a dead proxy, so a script fetched from anywhere fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.build_plots_template import build_page
from tests.e2e.conftest import TINY_PARAMS
from tests.e2e.pipeline_repo import REPO_ROOT, PipelineRepo

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK_SCRIPT = Path(__file__).with_name("plot_check.js")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",  # every http(s) request fails: nothing can come from a CDN
    "--virtual-time-budget=30000",
    "--run-all-compositor-stages-before-draw",
)


def test_committed_template_is_built_from_the_vendored_scripts() -> None:
    template = REPO_ROOT / "vendor" / "vega" / "offline_template.html"
    assert template.read_text(encoding="utf-8") == build_page(), "run python scripts/build_plots_template.py"
    assert "{plot_divs}" in template.read_text(encoding="utf-8")


def render(page: Path, tmp_path: Path) -> dict:
    """Load ``page`` (with the checker injected) in headless Chromium; the checker's JSON verdict."""
    html = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in html, "the page still loads vega from a CDN"
    checked = page.with_name("checked.html")
    # The page's own <body> is the last one before the first plot (the inlined vega code holds the string too).
    body = html.rindex("<body>", 0, html.index('<div id = "')) + len("<body>")
    checked.write_text(f"{html[:body]}\n<script>{CHECK_SCRIPT.read_text()}</script>{html[body:]}")
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", checked.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'data-plot-check="([^"]*)"', result.stdout)
    assert match, f"the checker never reported (scripts did not run?):\n{result.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")
def test_every_plot_draws_offline(tmp_path: Path) -> None:
    repo = PipelineRepo.create(tmp_path / "repo", TINY_PARAMS)
    shutil.copytree(REPO_ROOT / "vendor", repo.root / "vendor")
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", repo.root / ".dvc" / "plots")  # the custom plot templates
    configured = subprocess.run(
        ["dvc", "config", "plots.html_template"], cwd=REPO_ROOT, capture_output=True, text=True, env=repo.env
    )
    assert configured.returncode == 0, "the project's .dvc/config must name plots.html_template"
    repo.run("dvc", "config", "plots.html_template", configured.stdout.strip())
    repo.run("dvc", "repro")
    repo.run("dvc", "plots", "show", "-o", "plots_page")

    verdict = render(repo.root / "plots_page" / "index.html", tmp_path)

    assert verdict["errors"] == []
    plots = verdict["plots"]
    assert len(plots) >= 5, plots
    for plot_id, check in plots.items():
        assert check["outcome"] == "embedded", (plot_id, check)
        assert check["error_nodes"] == 0, (plot_id, check)
        width, height, colours = check["canvas"]
        assert width > 50 and height > 50, (plot_id, check)
        assert colours >= 3, f"{plot_id}: the canvas is blank ({colours} colours)"
        assert check["marks"] > 0, f"{plot_id}: drew axes but no data"
