"""The code fingerprint: workers record what code they run, and live-fix reads it.

The apps stamp ``failure-lab-<hash of their .py files and fault hooks>`` as
the worker's build id. These tests check the fingerprint itself on copies of
the app, and the live-fix verdict on the real live-fix golden and on copies
of it whose build ids are rewritten the way other apps record them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.api import grade_histories
from grader.engine.history import load_json_text

REPO = Path(__file__).resolve().parent.parent
GOLDENS = Path(__file__).parent / "goldens"


def _fingerprint(app: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("BANK_FAULT", "TRANSFER_MAX_ATTEMPTS")}
    out = subprocess.run([sys.executable, "-c", "import shared; print(shared.code_fingerprint())"],
                         cwd=app, env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_fingerprint_changes_with_the_code_and_the_fault_hooks(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "exercise", app, ignore=shutil.ignore_patterns("__pycache__"))
    first = _fingerprint(app)
    assert first.startswith("failure-lab-") and len(first) == len("failure-lab-") + 12
    assert _fingerprint(app) == first  # same code, same settings: same fingerprint
    assert _fingerprint(app, BANK_FAULT="failing-deposit") != first
    assert _fingerprint(app, TRANSFER_MAX_ATTEMPTS="2") != first
    activities = app / "activities.py"
    activities.write_text(activities.read_text() + "\n# a learner's edit\n")
    assert _fingerprint(app) != first


def _live_fix() -> dict:
    return json.loads((GOLDENS / "live-fix.json").read_text())


def _fix_check(doc: dict):
    report = grade_histories([load_json_text(json.dumps(doc), source="live-fix.json")],
                             experiments=["live-fix"])
    experiment = report.experiments[0]
    return experiment, next(c for c in experiment.checks if c.id == "live-fix.fixed-by-restart")


def _set_build_ids(doc: dict, change) -> dict:
    doc = copy.deepcopy(doc)
    for event in doc["events"]:
        for key, attrs in event.items():
            if key.endswith("Attributes") and isinstance(attrs, dict) and "workerVersion" in attrs:
                new = change(attrs["workerVersion"].get("buildId"))
                if new is None:
                    del attrs["workerVersion"]
                else:
                    attrs["workerVersion"] = {"buildId": new}
    return doc


def test_the_recorded_live_fix_is_proven_by_the_fingerprints() -> None:
    doc = _live_fix()
    build_ids = {a["workerVersion"]["buildId"] for e in doc["events"] for k, a in e.items()
                 if k.endswith("Attributes") and isinstance(a, dict) and "workerVersion" in a}
    assert len(build_ids) == 2 and all(b.startswith("failure-lab-") for b in build_ids)
    experiment, check = _fix_check(doc)
    assert (experiment.status, experiment.score) == ("pass", 10)
    assert check.strength == "proven" and "->" in check.message


def test_a_restart_with_unchanged_code_is_not_a_fix() -> None:
    # A PASS row may not carry a finding that contradicts it: the same fingerprint
    # on both sides means the restart deployed nothing, so the check fails.
    doc = _set_build_ids(_live_fix(), lambda _: "failure-lab-000000000000")
    _, check = _fix_check(doc)
    assert (check.status, check.strength, check.score) == ("fail", "", 0)
    assert "same code" in check.message and "deployed no change" in check.message
    assert "save the file" in check.hint


@pytest.mark.parametrize("how", ["sdk-automatic", "absent"])
def test_other_apps_build_ids_grade_as_before(how: str) -> None:
    """The SDK's automatic build id (one hash for both workers) or none at all cannot tell."""
    doc = _set_build_ids(_live_fix(), (lambda _: "51d1b486e65f9cbb1d7d62b7c6d737d2") if how == "sdk-automatic"
                         else (lambda _: None))
    experiment, check = _fix_check(doc)
    assert (experiment.status, experiment.score) == ("pass", 10)
    assert (check.status, check.strength) == ("pass", "consistent")
    assert "cannot show" in check.message
