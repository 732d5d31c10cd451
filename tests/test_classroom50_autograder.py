"""docs/ci/classroom50/autograder.py, run the way Classroom 50's runner runs it.

The runner extracts the assignment's bundle (the autograder's folder) under
``$RUNNER_TEMP``, then starts ``python autograder.py`` with the learner's
checkout as the current folder and the submission's identity in the
environment, ``CLASSROOM50_BUNDLE_DIR`` naming the bundle. Afterwards it
reads ``result.json`` (validated here against the vendored
``classroom50/result/v1`` schema with jsonschema, plus the rules the runner
checks in code: identity, score <= max-score), ``release-body.md`` and the
``status``/``summary`` lines of ``$GITHUB_OUTPUT``. The learner's checkout is
a git repository made with ``grader init``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).parent.parent
AUTOGRADER = ROOT / "docs" / "ci" / "classroom50"
SCHEMA = json.loads((ROOT / "tests" / "data" / "classroom50-result-v1.schema.json").read_text())

#: compensation with a retry limit the rubric does not allow: 9 of 10 points, in seconds.
FAST_PARTIAL = "--experiment compensation --latency 0.3 --max-attempts 3"

GIT_ENV = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@school.example", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@school.example", "GIT_COMMITTER_DATE": "2026-12-02T16:45:00+02:00",
           "GIT_AUTHOR_DATE": "2026-12-02T14:00:00+00:00"}


def learner_checkout(tmp_path: Path) -> tuple[Path, str]:
    """ada's repository as the runner checks it out: the exercise app from `grader init`, one commit."""
    repo = tmp_path / "fl-failure-lab-ada"
    subprocess.run([sys.executable, "-m", "grader", "init", str(repo)], check=True, capture_output=True)
    env = {**os.environ, **GIT_ENV, "HOME": str(tmp_path)}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "my transfer app"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    return repo, sha


def run_like_the_runner(tmp_path: Path, checkout: Path, sha: str, *, python: str = sys.executable,
                        extra: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Extract the bundle under RUNNER_TEMP and start its autograder.py as runner.py does."""
    runner_temp = tmp_path / "runner-temp"
    bundle = runner_temp / "classroom50-runtime" / "failure-lab"
    shutil.copytree(AUTOGRADER, bundle)
    output = tmp_path / "github_output"
    output.write_text("")
    server = "https://git.example"
    repository = "course50/fl-failure-lab-ada"
    tag = f"submit/20261202T144500Z-{sha[:7]}"
    env = {**os.environ, "HOME": str(tmp_path)}
    env.update({
        "PAGES_BASE_URL": "https://course50.pages.example", "CLASSROOM": "fl", "ASSIGNMENT": "failure-lab",
        "SUBMISSION_TAG": tag, "MODE": "individual", "GITHUB_REPOSITORY": repository, "GITHUB_SHA": sha,
        "GITHUB_SERVER_URL": server, "GITHUB_ACTOR": "ada", "GITHUB_ACTOR_ID": "4242",
        "GITHUB_OUTPUT": str(output), "GITHUB_ACTIONS": "true", "RUNNER_TEMP": str(runner_temp),
        # What run_entrypoint adds for the autograder:
        "CLASSROOM50_BUNDLE_DIR": str(bundle.resolve()), "USERNAME": "ada", "OWNER": "ada",
        "ASSIGNMENT_TYPE": "individual", "COMMIT_URL": f"{server}/{repository}/commit/{sha}",
        "RELEASE_URL": f"{server}/{repository}/releases/tag/submit%2F20261202T144500Z-{sha[:7]}",
        "REVIEW_URL": f"{server}/{repository}/compare/{sha[:7]}0...{sha}",
    })
    env.update(extra or {})
    done = subprocess.run([python, str(bundle / "autograder.py")], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=600)
    return done, env


def read_result(checkout: Path, env: dict[str, str]) -> dict:
    """result.json as the runner reads it: the schema, then its identity and cross-field rules."""
    result = json.loads((checkout / "result.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(result)
    assert (result["classroom"], result["assignment"], result["owner"]) == ("fl", "failure-lab", "ada")
    assert result["submission"] == env["SUBMISSION_TAG"]
    assert result["commit"] == env["COMMIT_URL"] and result["release"] == env["RELEASE_URL"]
    assert result["score"] <= result["max-score"]
    assert all(t["score"] <= t["max-score"] for t in result["tests"])
    return result


def rendered(path: Path) -> str:
    """A markdown file as GitHub shows it (HTML), for what a reader sees."""
    from markdown_it import MarkdownIt

    return MarkdownIt().render(path.read_text())


def outputs(env: dict[str, str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in Path(env["GITHUB_OUTPUT"]).read_text().splitlines())


@pytest.mark.slow
def test_the_autograder_grades_a_submission_as_classroom50_runs_it(tmp_path: Path):
    checkout, sha = learner_checkout(tmp_path)
    done, env = run_like_the_runner(tmp_path, checkout, sha, extra={"SIMULATE_OPTIONS": FAST_PARTIAL})
    assert done.returncode == 0, done.stderr  # a failed grade is a grading outcome: exit 0
    assert "Traceback" not in done.stderr

    result = read_result(checkout, env)
    assert (result["score"], result["max-score"]) == (9, 10)  # partial credit, integers that add up
    assert sum(t["score"] for t in result["tests"]) == 9
    assert result["review"] == env["REVIEW_URL"]
    assert result["datetime"] == "2026-12-02T14:45:00Z"  # the committer date, in UTC
    failed, = [t for t in result["tests"] if not t["passed"]]
    assert failed["test-name"] == "Compensation: The retry policy was limited as the challenge asks"
    assert "maximum_attempts 3" in failed["message"]

    said = outputs(env)
    assert said["status"] == "failure"
    assert said["summary"] == "Failure Lab: 9/10, 1 required checks not passed"
    body = (checkout / "release-body.md").read_text()
    assert body.startswith("### Failure Lab: 9/10\n")
    assert "| FAIL | Compensation: The retry policy was limited as the challenge asks | 0/1 |" in body
    assert (checkout / "failure-lab-histories" / "compensation.json").is_file()


@pytest.mark.slow
def test_an_app_that_cannot_start_still_lands_with_the_reason(tmp_path: Path):
    checkout, sha = learner_checkout(tmp_path)
    (checkout / "run_worker.py").unlink()
    done, env = run_like_the_runner(tmp_path, checkout, sha, extra={"SIMULATE_OPTIONS": FAST_PARTIAL})
    assert done.returncode == 0, done.stderr
    result = read_result(checkout, env)
    assert result["score"] == 0 and all("missing run_worker.py" in t["message"] for t in result["tests"])
    said = outputs(env)
    assert said["status"] == "error" and "missing run_worker.py" in said["summary"]
    assert "missing run_worker.py" in rendered(checkout / "release-body.md")


@pytest.mark.slow
def test_a_grader_that_cannot_be_installed_still_gives_a_valid_result(tmp_path: Path):
    """A runner Python without the grader and nothing pip may install: an error result, never a crash."""
    # A virtual environment made without pip or site-packages: a Python that has no grader.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True,
                   capture_output=True)
    bare = str(tmp_path / "bare" / "bin" / "python")
    checkout, sha = learner_checkout(tmp_path)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "grader").exists())
    done, env = run_like_the_runner(tmp_path, checkout, sha, python=bare, extra={
        "PATH": path, "GRADER_PACKAGE": str(tmp_path / "no-such-wheel" / "failure_lab-0-py3-none-any.whl"),
        "PIP_NO_INDEX": "1"})
    assert done.returncode == 0, done.stderr
    result = read_result(checkout, env)
    assert (result["score"], result["max-score"], result["tests"]) == (0, 0, [])
    said = outputs(env)
    assert said["status"] == "error" and "could not install the grader" in said["summary"]


@pytest.mark.slow
def test_a_grading_past_the_time_limit_is_stopped_and_says_so(tmp_path: Path):
    checkout, sha = learner_checkout(tmp_path)
    done, env = run_like_the_runner(tmp_path, checkout, sha, extra={
        "SIMULATE_OPTIONS": FAST_PARTIAL, "FAILURE_LAB_TIME_LIMIT": "3"})
    assert done.returncode == 0, done.stderr
    result = read_result(checkout, env)
    assert result["score"] == 0
    said = outputs(env)
    assert said["status"] == "error" and "longer than 3 s and was stopped" in said["summary"]
    # The grader got SIGTERM, stopped what it had started and said so, then the autograder wrote its result.
    assert "grader: interrupted" in done.stderr and "Traceback" not in done.stderr
