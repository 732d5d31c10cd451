"""A folder of submissions as an LMS downloads it: one subfolder or ``.zip`` per learner.

The subfolder's or zip's name is the learner id; every ``*.json`` inside (at
any depth) is one exported history. Other files are left alone, and so are
hidden entries and the ``__MACOSX`` folders macOS zips carry. A learner with
both a folder and a zip gets the histories of both.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from grader.errors import BadInputError

#: Names inside a submission that are never histories. ``manifest.json``
#: describes a submission bundle rather than a run.
NOT_HISTORIES = frozenset({"manifest.json"})


@dataclass
class Submission:
    """Where one learner's histories are: their folder and/or zip."""

    learner: str
    paths: list[Path] = field(default_factory=list)


@dataclass
class Member:
    """One file of a submission: a history's bytes under a name to report, or why it could not be read."""

    #: ``ada/crash.json`` or ``ada.zip:crash.json``: relative, so no machine path reaches a gradebook.
    name: str
    data: bytes | None = None
    #: Set when the file (or the whole zip) could not be read.
    error: str = ""


def is_submission_name(name: str) -> bool:
    """True for a name that can be a learner id in a submissions folder (any visible file name)."""
    return bool(name) and not name.startswith(".") and name != "__MACOSX" and name.strip() == name


def find_submissions(folder: Path) -> tuple[dict[str, Submission], list[str]]:
    """The submissions in ``folder`` by learner id, and the names of entries that are neither.

    Raises :class:`BadInputError` when ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"--submissions {folder}: not a folder: pass the folder that holds one "
                            "subfolder or .zip per learner")
    found: dict[str, Submission] = {}
    ignored: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            learner = entry.name
        elif entry.suffix.lower() == ".zip" and entry.is_file():
            learner = entry.name[: -len(".zip")]
        else:
            if not entry.name.startswith("."):
                ignored.append(entry.name)
            continue
        if not is_submission_name(learner):
            if not entry.name.startswith("."):
                ignored.append(entry.name)
            continue
        found.setdefault(learner, Submission(learner)).paths.append(entry)
    return found, ignored


def read_members(submission: Submission) -> Iterator[Member]:
    """Every history file of a submission, one at a time (a class never sits in memory at once)."""
    for path in submission.paths:
        if path.is_dir():
            yield from _folder_members(path)
        else:
            yield from _zip_members(path)


def _visible(parts: tuple[str, ...]) -> bool:
    return not any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _folder_members(folder: Path) -> Iterator[Member]:
    for path in sorted(folder.rglob("*.json")):
        relative = path.relative_to(folder)
        if not path.is_file() or not _visible(relative.parts) or str(relative) in NOT_HISTORIES:
            continue
        name = f"{folder.name}/{relative.as_posix()}"
        try:
            yield Member(name, path.read_bytes())
        except OSError as err:
            yield Member(name, error=f"{name}: cannot read it ({err.strerror or err})")


def _zip_members(path: Path) -> Iterator[Member]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        yield Member(path.name, error=f"{path.name}: not a readable zip file ({err}): download it again")
        return
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            inner = PurePosixPath(info.filename)
            if (info.is_dir() or inner.suffix.lower() != ".json" or not _visible(inner.parts)
                    or info.filename in NOT_HISTORIES):
                continue
            name = f"{path.name}:{info.filename}"
            try:
                yield Member(name, archive.read(info))
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as err:
                # A damaged entry or an encrypted one: name it, read the others.
                yield Member(name, error=f"{name}: cannot extract it ({err})")
