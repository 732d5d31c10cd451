"""`--format classroom50`: Classroom 50's result.json, validated against its published schema.

Classroom 50 (the open successor of GitHub Classroom) reads a ``result.json``
per submission that must validate against ``classroom50/result/v1``; the
schema is vendored in tests/data/ (its origin is in its ``$comment``). The
runner's environment is set the way its ``runner.py`` sets it for an
autograder: CLASSROOM, ASSIGNMENT, ASSIGNMENT_TYPE, USERNAME and OWNER,
SUBMISSION_TAG, COMMIT_URL, RELEASE_URL, REVIEW_URL, GITHUB_SHA.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader import api
from grader.cli import cli
from grader.formats import classroom50

ROOT = Path(__file__).parent.parent
GOLDENS = ROOT / "tests" / "goldens"
SCHEMA = json.loads((ROOT / "tests" / "data" / "classroom50-result-v1.schema.json").read_text())


def validate(document: dict) -> None:
    """Validate ``document`` as Classroom 50 does: its schema, then the cross-field rules it states in prose."""
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["score"] <= document["max-score"]
    for test in document["tests"]:
        assert test["score"] <= test["max-score"]
    # What this grader promises on top: the tests add up to the total.
    assert sum(t["score"] for t in document["tests"]) == document["score"]
    assert sum(t["max-score"] for t in document["tests"]) == document["max-score"]


def runner_env(checkout: Path, sha: str) -> dict[str, str]:
    """The variables Classroom 50's runner gives an autograder for learner ada's submission."""
    repo = "https://git.example/course50/fl-failure-lab-ada"
    return {
        "CLASSROOM": "fl", "ASSIGNMENT": "failure-lab", "ASSIGNMENT_TYPE": "individual", "MODE": "individual",
        "USERNAME": "ada", "OWNER": "ada", "SUBMISSION_TAG": "submit/20261204T101500Z-" + sha[:7],
        "COMMIT_URL": f"{repo}/commit/{sha}", "RELEASE_URL": f"{repo}/releases/tag/submit%2F20261204T101500Z",
        "REVIEW_URL": f"{repo}/compare/0000000...{sha}", "GITHUB_SHA": sha,
        "GITHUB_REPOSITORY": "course50/fl-failure-lab-ada", "GITHUB_ACTOR": "ada", "GITHUB_ACTOR_ID": "4242",
    }


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, str]:
    """A git checkout with one commit whose committer date is known (2026-12-01 09:30:00 UTC)."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    (repo / "README.md").write_text("learner work\n")
    env = {"GIT_COMMITTER_DATE": "2026-12-01T10:30:00+01:00", "GIT_AUTHOR_DATE": "2026-11-30T08:00:00+00:00",
           "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@school.example", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@school.example", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for args in (["init", "-q"], ["add", "README.md"], ["commit", "-q", "-m", "work"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    return repo, sha


def test_the_identity_comes_from_the_runner_environment(checkout: tuple[Path, str]):
    repo, sha = checkout
    env = runner_env(repo, sha)
    identity = classroom50.identity_from_environment(env, cwd=str(repo))
    assert identity.classroom == "fl" and identity.assignment == "failure-lab" and identity.owner == "ada"
    assert identity.submission == env["SUBMISSION_TAG"]
    assert (identity.commit, identity.release, identity.review) == (env["COMMIT_URL"], env["RELEASE_URL"],
                                                                    env["REVIEW_URL"])
    # The committer date (not the author date), in UTC.
    assert identity.datetime == "2026-12-01T09:30:00Z"
    assert identity.submitted_by == {"username": "ada", "id": 4242}


def test_review_falls_back_to_the_commit_and_owner_to_the_repository_name(checkout: tuple[Path, str]):
    repo, sha = checkout
    env = runner_env(repo, sha)
    for name in ("REVIEW_URL", "USERNAME", "OWNER"):
        del env[name]
    identity = classroom50.identity_from_environment(env, cwd=str(repo))
    assert identity.review == env["COMMIT_URL"]
    assert identity.owner == "ada"  # fl-failure-lab-ada, as the runner reads a repository name


def test_outside_classroom50_the_document_is_still_valid(tmp_path: Path):
    identity = classroom50.identity_from_environment({}, cwd=str(tmp_path))
    report = api.check_files([GOLDENS], replay=False)
    document = classroom50.document(report, identity)
    validate(document)
    assert document["owner"] == "unknown" and document["submission"] == "submit/unknown"


def test_a_whole_report_validates_and_adds_up(checkout: tuple[Path, str]):
    repo, sha = checkout
    report = api.check_files([GOLDENS], replay=False)
    document = classroom50.document(report, classroom50.identity_from_environment(runner_env(repo, sha),
                                                                                  cwd=str(repo)))
    validate(document)
    assert document["score"] == report.score == 30 and document["max-score"] == report.max_score
    names = [t["test-name"] for t in document["tests"]]
    assert len(names) == sum(len(e.checks) for e in report.experiments)
    assert "Crash recovery: The transfer completed" in names
    assert all(isinstance(t["passed"], bool) for t in document["tests"])


def test_a_failed_check_carries_its_finding_and_hint(checkout: tuple[Path, str]):
    repo, sha = checkout
    report = api.check_files([GOLDENS / "cancel.json"], experiments=["compensation"], replay=False)
    document = classroom50.document(report, classroom50.identity_from_environment(runner_env(repo, sha),
                                                                                  cwd=str(repo)))
    validate(document)
    failed = [t for t in document["tests"] if not t["passed"]]
    assert failed and all(t["score"] == 0 and t["message"] for t in failed)
    assert document["score"] < document["max-score"]


def test_fractional_points_scale_to_integers_that_still_add_up():
    """A rubric with half points: every point is multiplied by 10, so 16.5/30 becomes 165/300, exactly."""
    report = api.check_files([GOLDENS / "cancel.json"], experiments=["compensation"], replay=False)
    for exp in report.experiments:
        for chk in exp.checks:
            chk.max_score = chk.max_score / 2
            chk.score = chk.score / 2
    report.max_score = sum(c.max_score for e in report.experiments for c in e.checks)
    report.score = sum(c.score for e in report.experiments for c in e.checks)
    assert classroom50.point_scale(report) == 10
    document = classroom50.document(report, classroom50.Identity(datetime="2026-12-01T09:30:00Z"))
    validate(document)
    assert document["score"] == round(report.score * 10) and document["max-score"] == round(report.max_score * 10)
    assert document["score"] / document["max-score"] == pytest.approx(report.score / report.max_score)


def test_check_writes_the_result_with_the_cli(checkout: tuple[Path, str], tmp_path: Path, monkeypatch):
    repo, sha = checkout
    monkeypatch.chdir(repo)
    out = tmp_path / "result.json"
    result = CliRunner().invoke(cli, ["check", "--history", str(GOLDENS), "--format", "classroom50",
                                      "--output", str(out)], env=runner_env(repo, sha))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    validate(document)
    assert document["datetime"] == "2026-12-01T09:30:00Z" and document["owner"] == "ada"


def test_an_unseen_bonus_is_not_passed_and_costs_nothing():
    report = api.check_files([GOLDENS / "sigkill-during-deposit.json"], replay=False)
    document = classroom50.document(report, classroom50.Identity(datetime="2026-12-01T09:30:00Z"))
    validate(document)
    bonus = [t for t in document["tests"] if not t["required"]]
    for test in bonus:
        assert test["passed"] == (test["status"] == "pass")
        if not test["passed"]:
            assert "not seen" in test["test-name"] and test["score"] == 0
    assert [t for t in bonus if not t["passed"]], "the golden should leave a bonus unseen"


def test_a_broken_history_still_gets_a_valid_error_result(tmp_path: Path, checkout: tuple[Path, str]):
    """CI never goes silent: a bad input gives result.json with score 0 and the error as each test's message."""
    repo, sha = checkout
    bad = tmp_path / "bad.json"
    bad.write_text('{"events": [')
    result = CliRunner().invoke(cli, ["check", "--history", str(bad), "--format", "classroom50"],
                                env=runner_env(repo, sha))
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    validate(document)
    assert document["score"] == 0 and document["max-score"] == 30
    assert all(not t["passed"] for t in document["tests"])


def test_batch_gives_one_result_per_learner(tmp_path: Path, checkout: tuple[Path, str]):
    repo, sha = checkout
    download = tmp_path / "download"
    (download / "ada").mkdir(parents=True)
    for name in ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund", "server-paused-long"):
        shutil.copy(GOLDENS / f"{name}.json", download / "ada" / f"{name}.json")
    (download / "bob").mkdir()
    shutil.copy(GOLDENS / "cancel.json", download / "bob" / "cancel.json")
    roster = tmp_path / "roster.csv"
    roster.write_text("learner\nada\nbob\ncarol\n")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--roster", str(roster),
                                      "--out", str(tmp_path / "out"), "-q", "--no-replay",
                                      "--format", "classroom50"], env=runner_env(repo, sha))
    assert result.exit_code == 0, result.output
    documents = json.loads(result.stdout)
    assert list(documents) == ["ada", "bob", "carol"]
    book = {e["learner"]: e for e in json.loads((tmp_path / "out" / "gradebook.json").read_text())["learners"]}
    for learner, document in documents.items():
        validate(document)
        assert document["owner"] == learner and document["classroom"] == "fl"
        assert document["score"] == round(book[learner]["score"] or 0)
    assert documents["carol"]["tests"] == [] and documents["carol"]["max-score"] == 0
    assert documents["ada"]["score"] > documents["bob"]["score"]



def test_a_check_that_passed_on_a_suspect_history_is_not_passed(tmp_path: Path):
    """Integrity withholds the points of a forged history; its checks keep their status but are not "passed"."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_forgeries.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    forged = tmp_path / "fake-compensation" / "fake-compensation.json"
    report = api.check_files([forged], experiments=["compensation"], replay=False)
    document = classroom50.document(report, classroom50.Identity(datetime="2026-12-01T09:30:00Z"))
    validate(document)
    assert document["score"] == 0
    assert all(not t["passed"] for t in document["tests"] if t["max-score"])
    assert any(t["status"] == "pass" for t in document["tests"])  # what the history would have proved
