"""A learner's own copy of a bundled app: what ``grader init`` writes.

The packaged ``exercise`` (or, on request, ``solution``) folder is copied to a
folder of the learner's choosing, which they then edit and run. Only the app's
own files are copied (no caches), and an existing non-empty folder is never
written into, so ``grader init`` cannot overwrite someone's work.
"""

from __future__ import annotations

from pathlib import Path

from grader.errors import AppError, BadInputError
from grader.resources import data_dir

#: Where ``grader init`` writes when given no folder.
DEFAULT_DIR = "failure-lab-exercise"
#: Which files of an app folder make up the app (pyproject's package-data for the apps says the same).
APP_FILE_PATTERNS = ("*.py", "*.md", "*.txt", "*.toml")


def app_files(app_dir: Path) -> list[Path]:
    """The app's own files in ``app_dir`` (sources and docs, no caches or logs), sorted."""
    found = {p for pattern in APP_FILE_PATTERNS for p in app_dir.glob(pattern) if p.is_file()}
    return sorted(found)


def init_app(dest: Path, *, solution: bool = False, source: Path | None = None) -> list[Path]:
    """Copy the bundled exercise app (or the solution) into ``dest``; return the files written.

    ``source`` is another app folder to copy (a course pack's exercise or
    solution). ``dest`` may be missing or an empty folder. Raises
    :class:`BadInputError` (exit 2) when it is a file or a folder with anything in it.
    """
    name = "solution" if solution else "exercise"
    source = source if source is not None else data_dir(name)
    files = app_files(source) if source.is_dir() else []
    if not any(f.name == "run_worker.py" for f in files):
        raise AppError(f"the bundled {name} app is missing from this install ({source}): "
                       "reinstall failure-lab")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise BadInputError(f"{dest} is a file: name a new or empty folder for the app")
    if dest.is_dir() and any(dest.iterdir()):
        raise BadInputError(f"{dest} is not empty: name a new or empty folder, so nothing of yours "
                            "is overwritten")
    import shutil  # here, not at the top: every `grader` start imports this module for DEFAULT_DIR

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for file in files:
        target = dest / file.name
        shutil.copyfile(file, target)
        written.append(target)
    return written
