"""The report as Classroom 50's ``result.json`` (schema ``classroom50/result/v1``).

Classroom 50, the open successor of GitHub Classroom, runs an autograder on
every submission and reads the ``result.json`` it leaves in the learner's
checkout: who and what was graded (``classroom``, ``assignment``,
``assignment_type``, ``owner``, the ``submission`` tag, links to the
``commit``, the ``release`` and the ``review`` diff, and ``datetime``, the
graded commit's committer date in UTC), then ``score``, ``max-score`` and
``tests``, each with ``test-name``, ``passed``, ``score`` and ``max-score``.
Every number there is an integer.

Identity comes from the environment Classroom 50's runner gives an
autograder (:func:`identity_from_environment`): ``CLASSROOM``,
``ASSIGNMENT``, ``ASSIGNMENT_TYPE``, ``USERNAME`` (else ``OWNER``),
``SUBMISSION_TAG``, ``COMMIT_URL``, ``RELEASE_URL``, ``REVIEW_URL`` (else
the commit's link) and ``GITHUB_SHA``, whose committer date ``git`` reads
in the current folder (the checkout). Outside Classroom 50 a field with
nothing to fill it says ``unknown`` (``submit/unknown`` for the tag), so the
document stays valid; the runner overwrites ``owner``, ``assignment_type``
and ``datetime`` with its own values anyway.

Tests are the checks, one each, named ``<experiment>: <check>``; the
finding (and the hint where one is shown) is the test's ``message``, which
the schema lets a test carry. Points become integers without rounding any
test away (:func:`point_scale`): when every check's points are whole
numbers they are used as they are; otherwise every point is multiplied by
the smallest of 10, 100 or 1000 that makes them whole (a 0.5-point check is
worth 5 of 10 times the points), so the tests' scores always add up to
``score`` and the fraction of the grade is exactly the report's. Checks of
an experiment that does not count (optional, not asked for) are listed with
0 of 0 points. A bonus check whose evidence was not seen has ``passed``
false and says so in its name: Classroom 50 has no "skipped".
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any, Mapping

from grader.formats.common import check_title, counted, pending_message, shows_hint
from grader.escape import visible_controls
from grader.engine.report import Report

#: The schema a result declares (its ``schema`` field).
SCHEMA = "classroom50/result/v1"

#: What a field says when the environment holds nothing to fill it with.
UNKNOWN = "unknown"

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Identity:
    """Who and what a result grades: the identity fields of ``classroom50/result/v1``."""

    #: Classroom short-name (``CLASSROOM``).
    classroom: str = UNKNOWN
    #: Assignment slug (``ASSIGNMENT``).
    assignment: str = UNKNOWN
    #: ``individual`` or ``group`` (``ASSIGNMENT_TYPE``).
    assignment_type: str = "individual"
    #: The repository owner's login (``USERNAME``, else ``OWNER``).
    owner: str = UNKNOWN
    #: The ``submit/...`` tag graded (``SUBMISSION_TAG``).
    submission: str = "submit/unknown"
    #: Links to the graded commit, the submission's release and the review diff.
    commit: str = UNKNOWN
    release: str = UNKNOWN
    review: str = UNKNOWN
    #: The graded commit's committer date in UTC, ``YYYY-MM-DDTHH:MM:SSZ``.
    datetime: str = ""
    #: Who pushed the submission (``GITHUB_ACTOR``, ``GITHUB_ACTOR_ID``), or None.
    submitted_by: dict[str, Any] | None = None


def utc_stamp(moment: _dt.datetime) -> str:
    """``moment`` in UTC as the schema's ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(_dt.timezone.utc).strftime(_TIME_FORMAT)


def commit_date(revision: str = "HEAD", *, cwd: str | None = None) -> str | None:
    """The committer date of ``revision`` in the git checkout at ``cwd``, in UTC; None outside one.

    Classroom 50 uses it as the submission instant: it does not move when the
    same commit is graded again.
    """
    try:
        done = subprocess.run(["git", "-c", "safe.directory=*", "log", "-1", "--format=%ct", revision, "--"],
                              cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    seconds = done.stdout.strip()
    if done.returncode != 0 or not seconds.isdigit():
        return None
    return utc_stamp(_dt.datetime.fromtimestamp(int(seconds), _dt.timezone.utc))


def _owner_from_repository(environ: Mapping[str, str]) -> str:
    """``<username>`` of a repository named ``<classroom>-<assignment>-<username>``, as the runner reads it."""
    repository = environ.get("GITHUB_REPOSITORY", "").rpartition("/")[2]
    prefix = f"{environ.get('CLASSROOM', '')}-{environ.get('ASSIGNMENT', '')}-".lower()
    if prefix != "--" and repository.lower().startswith(prefix) and len(repository) > len(prefix):
        return repository[len(prefix):]
    return environ.get("GITHUB_ACTOR", "")


def identity_from_environment(environ: Mapping[str, str] | None = None, *, cwd: str | None = None,
                              commit: bool = True) -> Identity:
    """The identity Classroom 50's runner hands an autograder, read from ``environ`` (default: ours).

    The date is that of ``GITHUB_SHA`` (else ``HEAD``) in the git checkout
    at ``cwd`` (default: the current folder); with no checkout, or with
    ``commit`` false (nothing to ask git), it is now.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    tag = get("SUBMISSION_TAG")
    server, repository, sha = get("GITHUB_SERVER_URL"), get("GITHUB_REPOSITORY"), get("GITHUB_SHA")
    link = get("COMMIT_URL") or (f"{server}/{repository}/commit/{sha}" if server and repository and sha else "")
    actor = get("GITHUB_ACTOR")
    actor_id = get("GITHUB_ACTOR_ID")
    when = (commit and commit_date(sha or "HEAD", cwd=cwd)) or utc_stamp(_dt.datetime.now(_dt.timezone.utc))
    return Identity(
        classroom=get("CLASSROOM") or UNKNOWN,
        assignment=get("ASSIGNMENT") or UNKNOWN,
        assignment_type="group" if (get("ASSIGNMENT_TYPE") or get("MODE")) == "group" else "individual",
        owner=get("USERNAME") or get("OWNER") or _owner_from_repository(env).strip() or UNKNOWN,
        submission=tag if tag.startswith("submit/") else f"submit/{tag or UNKNOWN}",
        commit=link or UNKNOWN,
        release=get("RELEASE_URL") or UNKNOWN,
        review=get("REVIEW_URL") or link or UNKNOWN,
        datetime=when,
        submitted_by={"username": actor, "id": int(actor_id) if actor_id.isdigit() else None} if actor else None,
    )


def point_scale(report: Report) -> int:
    """What every point is multiplied by so that each check's points are a whole number: 1, 10, 100 or 1000.

    1000 is the last resort: past it, a check's points are rounded (a rubric
    would need thousandths of a point to get there).
    """
    values = [c.max_score for e in report.experiments for c in e.checks] + [report.max_score]
    for scale in (1, 10, 100, 1000):
        if all(abs(v * scale - round(v * scale)) < 1e-6 for v in values):
            return scale
    return 1000


def tests(report: Report, *, scale: int | None = None) -> list[dict[str, Any]]:
    """One ``testResult`` per check, in report order, with integer points (see :func:`point_scale`)."""
    scale = point_scale(report) if scale is None else scale
    counted_ids = {e.id for e in counted(report)}
    found = []
    for exp in report.experiments:
        is_counted = exp.id in counted_ids
        for chk in exp.checks:
            message = pending_message(chk.message) if chk.status == "pending" else chk.message
            if shows_hint(chk):
                message += f" Hint: {chk.hint}"
            most = round(chk.max_score * scale) if is_counted else 0
            found.append({
                "test-name": visible_controls(f"{exp.title}: {check_title(chk)}"
                                              + ("" if is_counted else " (optional, not counted)")),
                # A check that passed on a suspect history keeps its status but not its points: not passed.
                "passed": chk.status == "pass" and chk.score >= chk.max_score,
                "score": min(most, round(chk.score * scale)) if is_counted else 0,
                "max-score": most,
                "message": visible_controls(message),
                "experiment": exp.id,
                "check": chk.id,
                "status": chk.status,
                "required": chk.required,
            })
    return found


def document(report: Report, identity: Identity | None = None, *, graded_at: _dt.datetime | None = None) -> dict[str, Any]:
    """The ``result.json`` document of ``report`` for ``identity`` (default: read from the environment)."""
    identity = identity_from_environment() if identity is None else identity
    rows = tests(report)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "classroom": identity.classroom,
        "assignment": identity.assignment,
        "assignment_type": identity.assignment_type,
        "owner": identity.owner,
        "submission": identity.submission,
        "commit": identity.commit,
        "release": identity.release,
        "review": identity.review,
        "datetime": identity.datetime or utc_stamp(_dt.datetime.now(_dt.timezone.utc)),
        "graded_at": utc_stamp(graded_at or _dt.datetime.now(_dt.timezone.utc)),
        # The sums of the tests, so they always add up (each test's points are exact integers).
        "score": sum(t["score"] for t in rows),
        "max-score": sum(t["max-score"] for t in rows),
        "tests": rows,
    }
    if identity.submitted_by is not None:
        doc["submitted_by"] = identity.submitted_by
    return doc


def render(report: Report) -> str:
    """``result.json`` text for the report, identity from the environment."""
    return json.dumps(document(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_gradebook(result) -> str:
    """``grader batch --format classroom50``: one JSON object, learner -> that learner's ``result.json``.

    Classroom 50 grades one repository at a time, so a class has no document
    of its own: each learner gets the result their own submission would get,
    ``owner`` their learner id, and the rest of the identity from the
    environment (``CLASSROOM``, ``ASSIGNMENT``; ``unknown`` elsewhere). A
    learner with no report (missing, not-gradable) gets score
    0 of 0 and no tests, as Classroom 50's own error results do. A class has
    no graded commit, so ``datetime`` is when the batch ran. Written one
    learner at a time.
    """
    import dataclasses

    from grader.formats.classbook import learner_reports

    now = utc_stamp(_dt.datetime.now(_dt.timezone.utc))
    base = dataclasses.replace(identity_from_environment(commit=False), submitted_by=None, datetime=now)
    members = []
    for entry in learner_reports(result):
        identity = dataclasses.replace(base, owner=entry.learner)
        if entry.report is not None:
            doc = document(entry.report, identity)
        else:
            doc = document(Report(grader_version="", rubric=result.rubric or {}, status="error", score=0.0,
                                  max_score=0.0, experiments=[]), identity)
        members.append(json.dumps({visible_controls(entry.learner): doc}, indent=2, ensure_ascii=True,
                                  allow_nan=False)[2:-2])
    return "{\n" + ",\n".join(members) + "\n}\n" if members else "{}\n"
