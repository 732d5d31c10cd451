"""A folder of submissions as an LMS downloads it: one subfolder or ``.zip`` per learner.

The subfolder's or zip's name is the learner id; every ``*.json`` inside (at
any depth, zips inside included) is one exported history. Other files are
left alone, and so are hidden entries and the ``__MACOSX`` folders macOS
zips carry. A learner with both a folder and a zip gets the histories of
both. What is inside is read by :mod:`grader.classroom.uploads`, under
limits counted per learner.

The folder's own entries come from the learner's download too, so their
names are not trusted either: a name that is not UTF-8 or holds control
characters becomes an escaped learner id, a name longer than
:data:`MAX_NAME` is kept but named as a problem, and a symbolic link is
never followed (it could point at ``/``).
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from grader.classroom.uploads import (DEFAULT_LIMITS, NOT_HISTORIES, Budget, Limits, Member, declared_entries,
                                      display_name, read_upload)
from grader.errors import BadInputError
from grader.escape import visible_controls

__all__ = ["NOT_HISTORIES", "Member", "Submission", "MAX_NAME", "find_submissions", "bundle_paths",
           "read_members", "is_submission_name", "name_problem", "validate_submission_id"]

#: Longest learner id a submission's name (or a roster of files) may give: longer names are kept
#: but reported, since no LMS makes them and every file derived from them must stay short.
MAX_NAME = 128


@dataclass(slots=True)
class Submission:
    """Where one learner's histories are: their folder and/or zip.

    Only entry names are kept (paths are made when the learner is graded):
    the index of a class of 10,000 must stay small.
    """

    learner: str
    folder: Path
    #: Names of the learner's entries in ``folder``: ``ada``, ``ada.zip`` or both (as on disk).
    names: list[str] = field(default_factory=list)
    #: What is wrong with the entries' own names (not UTF-8, too long): the learner is still graded.
    problems: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """The learner's folder and/or zip."""
        return [self.folder / name for name in self.names]


def is_submission_name(name: str) -> bool:
    """True for a name that can be a learner id in a submissions folder.

    Any visible file name, except one a spreadsheet would run as a formula
    when it opens gradebook.csv (``=``, ``+``, ``-``, ``@`` first).
    """
    return (bool(name) and not name.startswith((".", "=", "+", "-", "@")) and name != "__MACOSX"
            and name.strip() == name)


def name_problem(value: str) -> str:
    """Why ``value`` cannot be a learner id, as a roster or a file name gives one ("" when it can).

    The rule every learner id meets, live or from files: no path (``/``,
    ``\\``, ``.`` or ``..``), no NUL or other control character, at most
    :data:`MAX_NAME` characters. A live id meets the stricter learner-id
    rule on top (:func:`grader.engine.learner.validate_learner_id`).
    """
    if not value:
        return "is empty"
    if "/" in value or "\\" in value or value in (".", ".."):
        return "is a path, not a name"
    if visible_controls(value) != value:
        return "holds a control character (NUL, newline, escape ...)"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long, more than the {MAX_NAME} an id may have"
    return ""


def validate_submission_id(value: str, what: str) -> str:
    """``value`` if it can name a learner's submission, else :class:`BadInputError` saying why."""
    problem = name_problem(value)
    if problem:
        raise BadInputError(f"{what} {display_name(value)!r} {problem}: use the learner's id as the "
                            "download names their folder or zip")
    if not is_submission_name(value):
        raise BadInputError(f"{what} {value!r} cannot name a submission folder: "
                            "use the folder or zip names of the download")
    return value


def _learner_id(name: str) -> tuple[str, list[str]]:
    """The learner id an entry's name gives, and what is wrong with the name."""
    problems = []
    learner = name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # unzip writes names from many LMS zips in their original code page; keep the bytes, escaped.
        learner = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        problems.append(f"the name {learner!r} is not UTF-8 text, so it is shown escaped: rename it to the "
                        "learner's id")
    escaped = visible_controls(learner)
    if escaped != learner:
        learner = escaped
        problems.append(f"the name {learner!r} holds control characters, shown escaped: rename it to the "
                        "learner's id")
    if len(learner) > MAX_NAME:
        problems.append(f"the name {display_name(learner)!r} is {len(learner)} characters long, more than "
                        f"the {MAX_NAME} a learner id may have: rename it to the learner's id")
    return learner, problems


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
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as err:
        raise BadInputError(f"--submissions {folder}: cannot list it ({err.strerror or err})") from None
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_link = entry.is_symlink()
        except OSError:
            is_dir = is_link = False
        zipped = entry.name.lower().endswith(".zip")
        if not (is_dir or is_link or zipped):
            if not entry.name.startswith("."):
                ignored.append(display_name(entry.name))
            continue
        # A zip, or a link or anything else named like one: reading it says what is wrong with it.
        name = entry.name[: -len(".zip")] if zipped and not is_dir else entry.name
        if not is_submission_name(name):
            if not entry.name.startswith("."):
                ignored.append(display_name(entry.name))
            continue
        learner, problems = _learner_id(name)
        submission = found.setdefault(learner, Submission(learner, folder))
        submission.names.append(entry.name)
        submission.problems += [p for p in problems if p not in submission.problems]
    return found, ignored


def bundle_paths(submission: Submission) -> list[Path]:
    """The learner's entries that are bundles from `grader export` (a manifest.json inside).

    They are read by :func:`grader.sources.bundles.read_bundle`, which checks their
    hashes; a zip from an LMS without a manifest is read as plain files.
    Links and anything but a folder or a regular file are never bundles
    (:func:`read_members` names them).
    """
    found = []
    for path in submission.paths:
        # One lstat each (never following a link) instead of pathlib's three stats: a class makes
        # thousands of these calls.
        mode = _lstat_mode(path)
        if stat.S_ISDIR(mode):
            if stat.S_ISREG(_lstat_mode(os.path.join(path, "manifest.json"))):
                found.append(path)
            continue
        if not stat.S_ISREG(mode) or not path.name.lower().endswith(".zip"):
            continue
        try:
            with open(path, "rb") as stream:
                # A zip too large to be an upload is not opened here: read_members says why.
                declared = declared_entries(stream)
                if declared is not None and declared > DEFAULT_LIMITS.max_entries:
                    continue
                with zipfile.ZipFile(stream) as archive:
                    if any(n.rsplit("/", 1)[-1] == "manifest.json" and n.count("/") <= 1
                           for n in archive.namelist()):
                        found.append(path)
        except Exception:  # noqa: BLE001 - a damaged zip: read_members names it as unreadable
            pass
    return found


def _lstat_mode(path: str | os.PathLike[str]) -> int:
    """The file type and mode bits of ``path`` itself (a link is a link); 0 when it cannot be looked at."""
    try:
        return os.lstat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return 0


def read_members(submission: Submission, *, skip_bundles: bool | list[Path] = False,
                 limits: Limits | None = None) -> Iterator[Member]:
    """Every history file of a submission, one at a time (a class never sits in memory at once).

    All of the learner's entries share one budget of ``limits``
    (:class:`grader.classroom.uploads.Limits`). With ``skip_bundles``,
    entries that are bundles are left to :func:`bundle_paths`' reader (pass
    the list it gave to save looking again).
    """
    if isinstance(skip_bundles, list):
        bundles = {p.name for p in skip_bundles}
    else:
        bundles = {p.name for p in bundle_paths(submission)} if skip_bundles else set()
    budget = Budget(limits or Limits())
    for name in submission.names:
        if name in bundles:
            continue
        # Plain strings, not pathlib: pathlib interns every name it parses, which made the memory
        # of a 10,000-learner batch grow with the class.
        yield from read_upload(os.path.join(submission.folder, name), name, budget=budget)
