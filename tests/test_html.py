"""The HTML report, rendered from real golden histories and opened in a real headless Chromium.

Each page must load with no console error and no request outside itself,
show a picture (the screenshot is not blank), and carry in its DOM the lanes
and marks the history calls for. What is expected is read from the golden
history itself (its worker identities) and from its recorded scenario, not
from the renderer.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import api
from grader.cli import cli
from grader.formats import render
from headless_chromium import Chromium, find_chromium, screenshot_dir

GOLDENS = Path(__file__).parent / "goldens"

#: Golden -> the marks its picture must show (besides started/closed) and whether a worker is lost.
EXPECTED = {
    "sigkill-during-deposit": ({"lost", "takeover", "failure"}, True),
    "sigkill-during-withdraw": ({"lost", "takeover", "failure"}, True),
    "live-fix": ({"lost", "takeover", "failure", "fix"}, True),
    "retries-exhausted-refund": ({"failure", "refund"}, False),
    "non-retryable-refund": ({"failure", "refund"}, False),
    "server-paused": ({"outage"}, False),
    "running": (set(), False),
}


@pytest.fixture(scope="module")
def browser():
    """One real headless Chromium for the module; skipped only off CI when there is none."""
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must run the browser tests: "
                        "apt-get install chromium (.ci/run does)")
        pytest.skip("no chromium on PATH (apt-get install chromium); the browser tests run in CI")
    chromium = Chromium(binary)
    yield chromium
    chromium.close()


def _worker_identities(path: Path) -> set[str]:
    """Worker identities straight from the raw history (task events only; the starter is a client)."""
    identities = set()
    for event in json.loads(path.read_text())["events"]:
        for key, attrs in event.items():
            if key.endswith("EventAttributes") and key.startswith(("workflowTask", "activityTask")):
                if attrs.get("identity"):
                    identities.add(attrs["identity"])
    return identities


def _open(browser: Chromium, html: str, tmp_path: Path, name: str) -> Path:
    page = tmp_path / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    browser.load(page)
    return page


def _assert_not_blank(png: bytes, name: str) -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    keep = screenshot_dir()
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        image.save(keep / f"{name}.png")
    width, height = image.size
    assert width >= 800 and height >= 600
    small = image.resize((width // 4, height // 4))
    colours = small.getcolors(maxcolors=1 << 20)
    assert len(colours) > 20, "the page rendered in a handful of colours: blank?"
    background = max(colours)[1]
    other = sum(count for count, colour in colours if colour != background)
    assert other / (small.size[0] * small.size[1]) > 0.05, "almost every pixel is background"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_run_drawn_in_chromium(browser: Chromium, tmp_path: Path, name: str):
    golden = GOLDENS / f"{name}.json"
    report = api.check_files([golden])
    _open(browser, render(report, "html"), tmp_path, name)

    assert browser.problems() == []
    assert all(url.startswith("file://") for url in browser.requests()), browser.requests()
    _assert_not_blank(browser.screenshot(), name)

    figure = browser.evaluate("""(() => {
      const svg = document.querySelector('figure > svg');
      const box = svg.getBoundingClientRect();
      const ids = (svg.getAttribute('aria-labelledby') || '').split(' ');
      return {
        role: svg.getAttribute('role'),
        labelled: ids.map(id => (document.getElementById(id) || {}).textContent || ''),
        width: box.width, height: box.height,
        lanes: [...svg.querySelectorAll('g.lane')].map(g => [g.dataset.lane, g.dataset.kind, g.dataset.lost || '']),
        marks: [...svg.querySelectorAll('g.mark')].map(g => g.dataset.mark),
        tooltips: [...svg.querySelectorAll('g.mark > title, g.attempt > title')].map(t => t.textContent),
        attempts: [...svg.querySelectorAll('g.attempt')].map(g => [g.dataset.activity, g.dataset.recorded,
                                                                   g.dataset.outcome]),
        silences: [...svg.querySelectorAll('g.silence')].map(g => g.dataset.silence),
        steps: document.querySelectorAll('figure ol.events li').length,
        scripts: document.querySelectorAll('script').length,
        experiments: [...document.querySelectorAll('section.experiment')].map(s => s.dataset.status),
      };
    })()""")
    marks, lost = EXPECTED[name]
    assert figure["role"] == "img" and all(figure["labelled"]), "the picture needs a title and a description"
    assert figure["width"] > 600 and figure["height"] > 150
    assert figure["scripts"] == 0
    assert figure["experiments"] == [e.status for e in report.experiments]

    workers = {lane for lane, kind, _ in figure["lanes"] if kind == "worker"}
    assert workers == _worker_identities(golden)
    assert ("workflow", "workflow", "") in [tuple(lane) for lane in figure["lanes"]]
    assert bool([lane for lane in figure["lanes"] if lane[2] == "true"]) == lost
    assert marks <= set(figure["marks"])
    # Every mark and bar names its events in its tooltip, and the list says each step in words.
    assert all("#" in tip for tip in figure["tooltips"])
    assert figure["steps"] >= len(figure["marks"]) + len(figure["attempts"])

    retried = [a for a in figure["attempts"] if a[2] == "retried"]
    assert all(a[1] == "false" for a in retried), "earlier attempts have no recorded time"
    if name == "server-paused":
        assert "outage" in figure["silences"]
    if name == "running":
        assert browser.evaluate("document.querySelector('g.run-span').dataset.status") == "RUNNING"
        assert ["deposit", "false", "pending"] in figure["attempts"]


def test_all_goldens_on_one_page(browser: Chromium, tmp_path: Path):
    """The whole folder: each experiment draws its best run once, the others point to it."""
    report = api.check_files([GOLDENS])
    _open(browser, render(report, "html"), tmp_path, "all-goldens")
    assert browser.problems() == []
    counts = browser.evaluate("""({
      figures: document.querySelectorAll('figure > svg').length,
      sections: document.querySelectorAll('section.experiment').length,
      runs: new Set([...document.querySelectorAll('figure > svg')].map(s => s.dataset.run)).size,
      marks: [...document.querySelectorAll('g.mark')].map(g => g.dataset.mark)})""")
    assert counts["sections"] == 4
    assert counts["figures"] == counts["runs"] == len(report.timelines)
    assert {"takeover", "fix", "refund"} <= set(counts["marks"])


def test_history_text_cannot_inject_markup(browser: Chromium, tmp_path: Path):
    """A crafted workflow id and failure message are shown as text, never run as markup."""
    doc = json.loads((GOLDENS / "live-fix.json").read_text())
    evil_id = '"><script>document.title="owned"</script><img src=x onerror=alert(1)>'
    evil_failure = "<b>bold</b><svg onload=alert(2)></svg>&amp;"
    for event in doc["events"]:
        attrs = event.get("workflowExecutionStartedEventAttributes")
        if attrs:
            attrs["identity"] = evil_id
        attrs = event.get("activityTaskStartedEventAttributes")
        if attrs and attrs.get("lastFailure"):
            attrs["lastFailure"]["message"] = evil_failure
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(doc))
    history = api.read_files([crafted]).histories[0]
    history.workflow_id = evil_id
    report = api.grade_histories([history])
    _open(browser, render(report, "html"), tmp_path, "crafted")

    assert browser.problems() == []
    assert all(url.startswith("file://") for url in browser.requests())
    found = browser.evaluate("""({
      scripts: document.querySelectorAll('script').length,
      imgs: document.querySelectorAll('img').length,
      bold: document.querySelectorAll('b').length,
      svgs: document.querySelectorAll('svg svg, body > svg, td svg[onload]').length,
      title: document.title,
      text: document.body.textContent})""")
    assert found["scripts"] == 0 and found["imgs"] == 0 and found["bold"] == 0
    assert found["title"].startswith("Failure Lab grade")
    assert evil_id in found["text"] and evil_failure in found["text"]


def test_html_format_on_the_command_line():
    result = CliRunner().invoke(cli, ["check", "--history", str(GOLDENS / "live-fix.json"), "--format", "html",
                                      "--experiment", "live-fix"])
    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.rstrip().endswith("</html>")
    assert 'data-mark="fix"' in result.stdout


def test_open_hands_the_file_to_the_browser(tmp_path: Path):
    """--open writes the page to a temporary file and runs the browser on it (here: a recording script)."""
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.sh"
    fake_browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    fake_browser.chmod(0o755)
    env = {**os.environ, "BROWSER": str(fake_browser)}
    done = subprocess.run([sys.executable, "-m", "grader", "check", "--history",
                           str(GOLDENS / "sigkill-during-deposit.json"), "--experiment", "crash-recovery",
                           "--open"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    page = Path(opened.read_text().strip().removeprefix("file://"))
    assert page.suffix == ".html" and 'data-mark="takeover"' in page.read_text()
    assert str(page) in done.stderr
    assert "Crash recovery: PASS" in done.stdout  # the table still goes to stdout
    page.unlink()


def test_open_without_a_browser_says_where_the_file_is(tmp_path: Path):
    env = {**os.environ, "BROWSER": "false", "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    done = subprocess.run([sys.executable, "-m", "grader", "check", "--history",
                           str(GOLDENS / "running.json"), "--open"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 1  # a running workflow is pending
    line = [x for x in done.stderr.splitlines() if "no browser" in x]
    assert line, done.stderr
    page = Path(line[0].rsplit(" ", 1)[-1])
    assert page.exists() and "RUNNING" in page.read_text()
    page.unlink()


def test_web_ui_link_only_for_web_addresses():
    """A run read from a server links to the Web UI; anything but an http(s) link stays text."""
    report = api.check_files([GOLDENS / "live-fix.json"])
    ref = next(e.workflow for e in report.experiments if e.workflow is not None)
    ref.ui_link = "http://localhost:8233/namespaces/default/workflows/a%20b/r1/history"
    page = render(report, "html")
    assert '<a href="http://localhost:8233/namespaces/default/workflows/a%20b/r1/history">' in page
    ref.ui_link = "javascript:alert(1)"
    page = render(report, "html")
    assert "javascript:" not in page and "<a href=" not in page.split("<footer>")[0].replace('href="#', "")
