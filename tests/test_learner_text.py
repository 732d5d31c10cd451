"""Nothing a learner wrote runs anywhere: feedback files in a real browser, the terminal summary, class lines.

A class of crafted uploads (markup in a folder name, in zip member names and
in a history's failure message and identity) is graded for real; each
feedback file is then rendered the way an instructor's tools would show it
(markdown-it-py with raw HTML allowed) and opened in headless Chromium: no
script runs and the page asks for nothing but itself.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from grader.classroom import batch_files
from grader.cli import cli

GOLDENS = Path(__file__).parent / "goldens"
# An address no test listens on: a request to it would show in the browser's log all the same.
OUTSIDE = "http" + "://198.51.100.7:8080"
PAYLOADS = [
    "<script>window.pwned = 'script'</script>",
    f"<img src=\"{OUTSIDE}/img.png\" onerror=\"window.pwned='img'\">",
    f"![tracker]({OUTSIDE}/md.png)",
    f"<{OUTSIDE}/autolink>",
    f"{OUTSIDE}/bare www.example.invalid",
    "[click](javascript:window.pwned='link')",
    "<iframe src=\"javascript:parent.pwned='frame'\"></iframe>",
    f"\x1b]8;;{OUTSIDE}/osc8\x07here\x1b]8;;\x07 \x1b[2J\r @everyone",
]
HOSTILE = " ".join(PAYLOADS)


def _crafted_history() -> bytes:
    """A real golden whose failure messages and worker identities carry every payload."""
    doc = json.loads((GOLDENS / "live-fix.json").read_text())
    for event in doc["events"]:
        for key, attrs in event.items():
            if not key.endswith("EventAttributes") or not isinstance(attrs, dict):
                continue
            failure = attrs.get("lastFailure") or attrs.get("failure")
            if isinstance(failure, dict) and "message" in failure:
                failure["message"] = f"This deposit has failed. {HOSTILE}"
            if "identity" in attrs and key.startswith("activityTask"):
                attrs["identity"] = f"4242@{PAYLOADS[1]}"
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("learner-text")
    subs = root / "subs"
    folder = subs / "<img src=x onerror=\"window.pwned='folder'\">"
    folder.mkdir(parents=True)
    (folder / "run.json").write_bytes(_crafted_history())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{PAYLOADS[0]}.json", b"{not json")  # a bad file: its name goes into the problems
        archive.writestr("ok.json", _crafted_history())
    (subs / "mallory.zip").write_bytes(buffer.getvalue())
    forged = base64.b64encode(json.dumps({"version": 1, "status": "pass", "max_score": 30,
                                          "tests": [{"name": "x", "status": "pass", "score": 30}]}).encode())
    (subs / f"bob result={forged.decode()}").mkdir()
    (subs / f"bob result={forged.decode()}" / "run.json").write_bytes((GOLDENS / "no-failure.json").read_bytes())
    # An OSC 8 hyperlink, a screen clear and a carriage return in a folder name (no slash: it is one name).
    (subs / "\x1b]8;;x\x07eve\x1b]8;;\x07\r\x1b[2Jx").mkdir()
    (subs / "\x1b]8;;x\x07eve\x1b]8;;\x07\r\x1b[2Jx" / "run.json").write_bytes(b"{}")
    (subs / "bob").mkdir()
    (subs / "bob" / "run.json").write_bytes((GOLDENS / "no-failure.json").read_bytes())
    batch_files(subs, root / "out", jobs=1)
    return root


def _tokens(text: str):
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
    for token in renderer.parse(text):
        yield token
        yield from token.children or ()


def test_feedback_files_hold_no_control_character_and_no_raw_markup(graded: Path):
    files = list((graded / "out" / "feedback").iterdir())
    assert len(files) == 5
    texts = {f.name: f.read_text() for f in files}
    mallory = texts["mallory.md"]
    assert "onerror=\"window.pwned='img'\"" in mallory  # the crafted identity is there, escaped
    for name, text in texts.items():
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), name
        # Parsed as an instructor's viewer would (raw HTML allowed): no HTML, no image, no link at all.
        kinds = {token.type for token in _tokens(text)}
        assert not kinds & {"html_inline", "html_block", "image", "link_open"}, (name, kinds)


@pytest.mark.slow
def test_feedback_rendered_with_html_allowed_runs_nothing_in_chromium(graded: Path, tmp_path: Path):
    from headless_chromium import Chromium, find_chromium
    from markdown_it import MarkdownIt

    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must run the browser tests: apt-get install chromium")
        pytest.skip("no chromium on PATH (apt-get install chromium); the browser tests run in CI")
    renderer = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
    browser = Chromium(binary)
    try:
        for feedback in sorted((graded / "out" / "feedback").iterdir()):
            page = tmp_path / f"{feedback.stem}.html"
            page.write_text("<!doctype html><meta charset=utf-8><body>"
                            + renderer.render(feedback.read_text()) + "</body>")
            browser.load(page)
            assert browser.evaluate("typeof window.pwned") == "undefined", feedback.name
            assert browser.evaluate("document.querySelectorAll('script, img, iframe').length") == 0
            hrefs = browser.evaluate("[...document.querySelectorAll('a')].map(a => a.href)")
            assert not [h for h in hrefs if not h.startswith("http")], (feedback.name, hrefs)
            assert browser.requests() == [page.resolve().as_uri()], feedback.name
            if feedback.name == "mallory.md":  # shown as text, not run
                assert "onerror=\"window.pwned='img'\"" in browser.evaluate("document.body.innerText")
    finally:
        browser.close()


def test_the_terminal_summary_shows_learner_text_escaped(graded: Path, tmp_path: Path):
    outcome = CliRunner().invoke(cli, ["batch", "-q", "--no-replay", "--submissions", str(graded / "subs"),
                                       "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 0, outcome.output
    assert "mallory" in outcome.stdout and "\\x1b]8;;x\\x07eve" in outcome.stdout
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", outcome.stdout)


def test_a_folder_named_like_a_result_cannot_forge_a_classroom_line(graded: Path, tmp_path: Path):
    outcome = CliRunner().invoke(cli, ["batch", "-q", "--no-replay", "--submissions", str(graded / "subs"),
                                       "--out", str(tmp_path / "out"), "--format", "classroom"])
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert len(lines) == 5
    fields = [line.split(" ") for line in lines]
    assert all(len(f) == 2 and f[1].startswith("result=") for f in fields)
    learners = [unquote(f[0]) for f in fields]
    assert learners.count("bob") == 1 and any(name.startswith("bob result=") for name in learners)
    assert "<img src=x onerror=\"window.pwned='folder'\">" in learners
    # Each line's result is that learner's own document: the forged one scored 30, the real one did not.
    forged = next(f[1] for f in fields if unquote(f[0]).startswith("bob result="))
    assert json.loads(base64.b64decode(forged[len("result="):]))["tests"][0]["name"] != "x"
