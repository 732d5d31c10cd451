"""A folder of submissions as an LMS downloads it: one subfolder or ``.zip`` per learner.

The subfolder's or zip's name is the learner id; every ``*.json`` inside (at
any depth) is one exported history. Other files are left alone, and so are
hidden entries and the ``__MACOSX`` folders macOS zips carry. A learner with
both a folder and a zip gets the histories of both.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from grader.errors import BadInputError

#: Names inside a submission that are never histories. ``manifest.json``
#: describes a submission bundle rather than a run.
NOT_HISTORIES = frozenset({"manifest.json"})


@dataclass(slots=True)
class Submission:
    """Where one learner's histories are: their folder and/or zip.

    Only entry names are kept (paths are made when the learner is graded):
    the index of a class of 10,000 must stay small.
    """

    learner: str
    folder: Path
    #: Names of the learner's entries in ``folder``: ``ada``, ``ada.zip`` or both.
    names: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """The learner's folder and/or zip."""
        return [self.folder / name for name in self.names]


@dataclass
class Member:
    """One file of a submission: a history's bytes under a name to report, or why it could not be read."""

    #: ``ada/crash.json`` or ``ada.zip:crash.json``: relative, so no machine path reaches a gradebook.
    name: str
    data: bytes | None = None
    #: Set when the file (or the whole zip) could not be read.
    error: str = ""


def is_submission_name(name: str) -> bool:
    """True for a name that can be a learner id in a submissions folder.

    Any visible file name, except one a spreadsheet would run as a formula
    when it opens gradebook.csv (``=``, ``+``, ``-``, ``@`` first).
    """
    return (bool(name) and not name.startswith((".", "=", "+", "-", "@")) and name != "__MACOSX"
            and name.strip() == name)


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
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir():
            learner = entry.name
        elif entry.name.lower().endswith(".zip") and entry.is_file():
            learner = entry.name[: -len(".zip")]
        else:
            if not entry.name.startswith("."):
                ignored.append(entry.name)
            continue
        if not is_submission_name(learner):
            if not entry.name.startswith("."):
                ignored.append(entry.name)
            continue
        found.setdefault(learner, Submission(learner, folder)).names.append(entry.name)
    return found, ignored


def bundle_paths(submission: Submission) -> list[Path]:
    """The learner's entries that are bundles from `grader export` (a manifest.json inside).

    They are read by :func:`grader.bundles.read_bundle`, which checks their
    hashes; a zip from an LMS without a manifest is read as plain files.
    """
    found = []
    for path in submission.paths:
        if path.is_dir():
            if (path / "manifest.json").is_file():
                found.append(path)
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                if any(PurePosixPath(n).name == "manifest.json" and n.count("/") <= 1 for n in archive.namelist()):
                    found.append(path)
        except (zipfile.BadZipFile, OSError):
            pass  # read_members names it as unreadable
    return found


def read_members(submission: Submission, *, skip_bundles: bool = False) -> Iterator[Member]:
    """Every history file of a submission, one at a time (a class never sits in memory at once).

    With ``skip_bundles``, entries that are bundles are left to :func:`bundle_paths`' reader.
    """
    bundles = {p.name for p in bundle_paths(submission)} if skip_bundles else set()
    for name in submission.names:
        if name in bundles:
            continue
        # Plain strings, not pathlib: pathlib interns every name it parses, which made the memory
        # of a 10,000-learner batch grow with the class.
        path = os.path.join(submission.folder, name)
        if _is_history_file(path, name):
            yield _file_member(path, name)
            continue
        if _is_other_file(path, name):
            continue  # Canvas hands in every file flat: a learner's notes.txt is left alone, as in a folder
        if os.path.isdir(path):
            yield from _folder_members(path, name)
        else:
            yield from _zip_members(path, name)


def _is_history_file(path: str, name: str) -> bool:
    """True for an entry that is itself a history file: Canvas hands in each file flat, not in a folder."""
    return name.lower().endswith(".json") and os.path.isfile(path) and not os.path.islink(path)


def _is_other_file(path: str, name: str) -> bool:
    return not name.lower().endswith(".zip") and os.path.isfile(path) and not os.path.islink(path)


def _file_member(path: str, name: str) -> Member:
    try:
        with open(path, "rb") as f:
            return Member(name, f.read())
    except OSError as err:
        return Member(name, error=f"{name}: cannot read it ({err.strerror or err})")


def _visible(parts: Iterable[str]) -> bool:
    return not any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _folder_members(folder: str, label: str) -> Iterator[Member]:
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if _visible((d,))]
        relative_top = os.path.relpath(top, folder)
        for file in files:
            if not file.lower().endswith((".json", ".zip")) or not _visible((file,)):
                continue
            relative = file if relative_top == "." else f"{relative_top}/{file}".replace(os.sep, "/")
            if relative not in NOT_HISTORIES:
                found.append(relative)
    for relative in sorted(found):
        name = f"{label}/{relative}"
        if relative.lower().endswith(".zip"):
            # A learner who zipped their histories and uploaded the zip into an LMS folder.
            yield from _zip_members(os.path.join(folder, relative), name, depth=1)
            continue
        try:
            with open(os.path.join(folder, relative), "rb") as f:
                yield Member(name, f.read())
        except OSError as err:
            yield Member(name, error=f"{name}: cannot read it ({err.strerror or err})")


#: How deep zips inside zips are read (a download zip holding a learner's zip holding a zip is 2).
MAX_ZIP_DEPTH = 2
#: Largest zip inside a zip that is unpacked into memory to be read.
MAX_NESTED_ZIP_BYTES = 64 * 1024 * 1024


def _zip_members(path: str | io.BytesIO, label: str, depth: int = 0) -> Iterator[Member]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        yield Member(label, error=f"{label}: not a readable zip file ({err}): download it again")
        return
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            inner = PurePosixPath(info.filename)
            if (info.is_dir() or inner.suffix.lower() not in (".json", ".zip") or not _visible(inner.parts)
                    or info.filename in NOT_HISTORIES):
                continue
            name = f"{label}:{info.filename}"
            if inner.suffix.lower() == ".zip":
                yield from _nested_zip(archive, info, name, depth)
                continue
            try:
                yield Member(name, archive.read(info))
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as err:
                # A damaged entry or an encrypted one: name it, read the others.
                yield Member(name, error=f"{name}: cannot extract it ({err})")


def _nested_zip(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, depth: int) -> Iterator[Member]:
    """The histories of a zip inside a zip, named ``outer.zip:inner.zip:file.json``, within the depth and size limits."""
    if depth + 1 > MAX_ZIP_DEPTH:
        yield Member(name, error=f"{name}: a zip inside a zip nested more than {MAX_ZIP_DEPTH} deep was not "
                                 "read: hand in the histories themselves")
        return
    if info.file_size > MAX_NESTED_ZIP_BYTES:
        yield Member(name, error=f"{name}: a zip of {info.file_size} bytes inside a zip was not read: hand in "
                                 "the histories themselves")
        return
    try:
        data = archive.read(info)
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as err:
        yield Member(name, error=f"{name}: cannot extract it ({err})")
        return
    yield from _zip_members(io.BytesIO(data), name, depth + 1)
