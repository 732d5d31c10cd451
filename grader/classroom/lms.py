"""How each LMS lays out a download of submissions, and which learner each entry belongs to.

:func:`read_download` looks at the top of a ``--submissions`` folder and
recognises one layout:

- **gradescope**: Gradescope's *Export Submissions*: ``submission_metadata.yml``
  beside one folder per submission, ``submission_<id>/``; the metadata names
  each submission's submitters (name, SID, email) and when it was made.
- **moodle**: Moodle's *Download all submissions*: one folder per participant,
  ``<Full name>_<participant id>_assignsubmission_file_/`` (or, with folders
  turned off, flat files ``<Full name>_<participant id>_assignsubmission_file_<file>``).
- **canvas**: Canvas's *Download Submissions*: flat files
  ``<name>[_LATE]_<user id>_<submission id>_<file>``; ``_LATE`` marks work
  handed in after the due date.
- **folders**: anything else: one subfolder or ``.zip`` per learner, named by
  learner id (a browser's ``ada (1).zip`` copy is ada's too).

Gradescope and Moodle wrap the download in one top folder
(``assignment_<id>_export/``) when unzipped: a folder holding nothing but one
folder that is itself a download is looked into. Every entry that cannot be
matched to a learner is named with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from grader.classroom.roster import CANVAS, MOODLE, Roster, learner_id_from_cell
from grader.classroom.submissions import Submission, find_submissions, is_submission_name
from grader.errors import BadInputError
from grader.engine.learner import learner_key

FOLDERS, GRADESCOPE = "folders", "gradescope"
GRADESCOPE_METADATA = "submission_metadata.yml"
CANVAS_NAME = re.compile(r"^(?P<name>[^_]+?)(?P<late>_late)?_(?P<user>\d+)_(?P<submission>\d+)_(?P<file>.+)$",
                         re.IGNORECASE)
MOODLE_NAME = re.compile(r"^(?P<name>.+?)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.*)$")
GRADESCOPE_NAME = re.compile(r"^submission_\d+$")
#: A browser's second download of the same file: ``ada (1).zip``, ``ada (2)``.
COPY_SUFFIX = re.compile(r"^(?P<base>.+?) \(\d+\)$")


@dataclass
class Download:
    """A submissions folder read: whose entries are whose, and what could not be matched."""

    #: ``folders``, ``canvas``, ``moodle`` or ``gradescope``.
    layout: str
    #: The folder the entries are in (inside a wrapper folder when there was one).
    folder: Path
    #: learner id -> their entries.
    submissions: dict[str, Submission] = field(default_factory=dict)
    #: learner id -> True when the LMS marked the work late, False when it marked it on time.
    late: dict[str, bool] = field(default_factory=dict)
    #: learner id -> when the LMS says the work was handed in (Gradescope's metadata).
    submitted_at: dict[str, datetime] = field(default_factory=dict)
    #: Entries that are not a learner's folder or zip in the ``folders`` layout (names only).
    ignored: list[str] = field(default_factory=list)
    #: ``entry: why`` for every entry of an LMS layout that no learner could be given.
    unmatched: list[str] = field(default_factory=list)
    #: Learners found in the download who are not on the roster.
    not_on_roster: list[str] = field(default_factory=list)


#: Limits on a whole download handed over as a zip (``--submissions download.zip``): far above any
#: class's honest download, far below what would fill the disk or take hours.
MAX_DOWNLOAD_ENTRIES = 500_000
MAX_DOWNLOAD_RATIO = 200


@contextmanager
def opened_download(path: Path) -> Iterator[Path]:
    """The download as a folder: ``path`` itself, or a zip of it unpacked into a temporary folder.

    An LMS hands the whole download over as one zip; unpacking it whole (each
    learner's own zips stay zipped, and are read under their own limits)
    keeps one code path for folders and zips. Before anything is unpacked the
    zip's declared entries and sizes are checked against
    :data:`MAX_DOWNLOAD_ENTRIES`, :data:`MAX_DOWNLOAD_RATIO` and the free disk
    space; names that climb out of the folder are refused by :mod:`zipfile`
    itself. The temporary folder is removed when the batch ends.
    """
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".zip"):
        yield path
        return
    scratch = Path(tempfile.mkdtemp(prefix="grader-download-"))
    try:
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
                declared = sum(i.file_size for i in infos)
                packed = sum(i.compress_size for i in infos) or 1
                if len(infos) > MAX_DOWNLOAD_ENTRIES or declared > max(packed * MAX_DOWNLOAD_RATIO, 1 << 20):
                    raise BadInputError(f"--submissions {path.name}: the zip declares {len(infos)} entries and "
                                        f"{declared} bytes unpacked, more than a download holds: unzip it "
                                        "yourself and pass the folder")
                if declared > shutil.disk_usage(scratch).free:
                    raise BadInputError(f"--submissions {path.name}: unpacking it needs {declared} bytes, more "
                                        "than the temporary folder has free: unzip it elsewhere and pass the folder")
                archive.extractall(scratch)
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as err:
            raise BadInputError(f"--submissions {path.name}: not a readable zip file ({err}): download it "
                                "again, or unzip it and pass the folder") from None
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _visible(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith(".") and n != "__MACOSX"]


def _listing(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as scan:
        return sorted((e for e in scan if e.name in _visible([e.name])), key=lambda e: e.name)


def detect_layout(folder: Path) -> str:
    """The layout of ``folder``'s top level (see the module's docstring)."""
    entries = _listing(folder)
    names = [e.name for e in entries]
    if GRADESCOPE_METADATA in names:
        return GRADESCOPE
    if any(MOODLE_NAME.match(n) for n in names):
        return MOODLE
    if any(CANVAS_NAME.match(e.name) for e in entries if e.is_file(follow_symlinks=False)):
        return CANVAS
    return FOLDERS


def _unwrap(folder: Path) -> Path:
    """The folder itself, or the one folder it holds when that is an LMS download (a wrapper folder)."""
    entries = _listing(folder)
    if len(entries) == 1 and entries[0].is_dir(follow_symlinks=False) and detect_layout(Path(entries[0].path)) != FOLDERS:
        return Path(entries[0].path)
    return folder


def read_download(folder: Path, roster: Roster | None) -> Download:
    """Read ``folder``'s layout and give each entry to a learner, by the roster when there is one.

    Canvas entries match a Canvas export's ``ID``, Moodle entries a Moodle
    worksheet's participant number, Gradescope submitters a roster learner
    whose id is their email's local part or their SID. With another roster
    (or none) an LMS entry is named by what the LMS put in the name: Canvas's
    login-like name, Moodle's full name, Gradescope's email local part.
    Raises :class:`BadInputError` when ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"--submissions {folder}: not a folder: pass the folder (or .zip) of the download, "
                            "which holds one subfolder or .zip per learner, or an LMS's files")
    folder = _unwrap(folder)
    layout = detect_layout(folder)
    download = Download(layout, folder)
    if layout == GRADESCOPE:
        _gradescope(download, roster)
    elif layout == MOODLE:
        _moodle(download, roster)
    elif layout == CANVAS:
        _canvas(download, roster)
    else:
        _folders(download, roster)
    return download


def _give(download: Download, learner: str, name: str) -> None:
    download.submissions.setdefault(learner, Submission(learner, download.folder)).names.append(name)


def _match(download: Download, roster: Roster | None, entry: str, candidates: list[str], why: str) -> str | None:
    """The learner an entry belongs to: the first candidate on the roster (or, without one, the first valid name)."""
    if roster is not None:
        # Ids match in any case (grader.engine.learner.learner_key); the roster's spelling is kept.
        keys = {learner_key(name): name for name in roster.learners}
        learner = next((keys[learner_key(c)] for c in candidates if learner_key(c) in keys), None)
        if learner is None:
            download.unmatched.append(f"{entry}: {why}")
        return learner
    learner = next((c for c in candidates if c and is_submission_name(c)), None)
    if learner is None:
        download.unmatched.append(f"{entry}: no name the gradebook can use ({', '.join(candidates) or 'none'})")
    return learner


def _folders(download: Download, roster: Roster | None) -> None:
    found, download.ignored = find_submissions(download.folder)
    for learner, submission in found.items():
        # A browser saves a second download of ada.zip as "ada (1).zip": it is still ada's.
        copy = COPY_SUFFIX.match(learner)
        owner = copy.group("base") if copy and is_submission_name(copy.group("base")) else learner
        if owner == learner and learner not in download.submissions:
            download.submissions[learner] = submission
            continue
        merged = download.submissions.setdefault(owner, Submission(owner, download.folder))
        merged.names += submission.names

def _by_lms_id(roster: Roster | None, kind: str) -> dict[str, str]:
    if roster is None or roster.kind != kind:
        return {}
    return {key: learner for learner, key in roster.lms_ids.items()}


def _canvas(download: Download, roster: Roster | None) -> None:
    by_id = _by_lms_id(roster, CANVAS)
    parsed = []
    for entry in _listing(download.folder):
        match = CANVAS_NAME.match(entry.name) if entry.is_file(follow_symlinks=False) else None
        if match is None:
            download.unmatched.append(f"{entry.name}: not named as Canvas names a submission file "
                                      "(<name>[_LATE]_<user id>_<submission id>_<file>)")
            continue
        parsed.append((entry.name, match))
    # Without a Canvas export, the name Canvas wrote is the learner id; two users with one name keep their ids.
    users_of = {}
    for _, match in parsed:
        users_of.setdefault(match["name"], set()).add(match["user"])
    for name, match in parsed:
        user = match["user"]
        if by_id:
            learner = by_id.get(user)
            if learner is None:
                download.unmatched.append(f"{name}: Canvas user id {user} is not in the roster's ID column")
                continue
        else:
            own = match["name"] if len(users_of[match["name"]]) == 1 else f"{match['name']}_{user}"
            learner = _match(download, roster if roster is not None and roster.kind != CANVAS else None, name,
                             [own], f"{own!r} (Canvas user id {user}) is not on the roster: pass the Canvas "
                                    "gradebook export as --roster to match by Canvas ID")
            if learner is None:
                continue
        _give(download, learner, name)
        download.late[learner] = download.late.get(learner, False) or bool(match["late"])


def _moodle(download: Download, roster: Roster | None) -> None:
    by_id = _by_lms_id(roster, MOODLE)
    parsed = []
    for entry in _listing(download.folder):
        match = MOODLE_NAME.match(entry.name)
        if match is None:
            download.unmatched.append(f"{entry.name}: not named as Moodle names a participant's folder "
                                      "(<Full name>_<participant id>_assignsubmission_file_)")
            continue
        if match["plugin"] != "file":
            download.unmatched.append(f"{entry.name}: Moodle's {match['plugin']} submission, not files: "
                                      "histories are handed in as files")
            continue
        parsed.append((entry.name, match))
    names_of: dict[str, set[str]] = {}
    for _, match in parsed:
        names_of.setdefault(match["name"], set()).add(match["participant"])
    for name, match in parsed:
        participant = match["participant"]
        if by_id:
            learner = by_id.get(participant)
            if learner is None:
                download.unmatched.append(f"{name}: participant {participant} is not in the roster's "
                                          "Identifier column")
                continue
        else:
            own = match["name"] if len(names_of[match["name"]]) == 1 else f"{match['name']}_{participant}"
            learner = _match(download, roster, name, [own],
                             f"{own!r} (participant {participant}) is not on the roster: pass the Moodle "
                             "grading worksheet as --roster to match by participant")
            if learner is None:
                continue
        _give(download, learner, name)
        if roster is not None and roster.kind == MOODLE:
            download.late[learner] = roster.late.get(learner, False)


def _gradescope(download: Download, roster: Roster | None) -> None:
    metadata = _gradescope_metadata(download.folder / GRADESCOPE_METADATA)
    listed = set()
    for key, record in metadata.items():
        listed.add(key)
        if not (download.folder / key).is_dir():
            download.unmatched.append(f"{key}: in {GRADESCOPE_METADATA} but there is no such folder")
            continue
        submitters = _field(record, "submitters") or []
        if not submitters:
            download.unmatched.append(f"{key}: {GRADESCOPE_METADATA} names no submitter")
            continue
        when = _when(_field(record, "created_at"))
        for person in submitters:
            email = str(_field(person, "email") or "")
            sid = str(_field(person, "sid") or "")
            label = _field(person, "name") or email or sid or "?"
            candidates = [c for c in (learner_id_from_cell(email) if email else "", sid) if c]
            if roster is None and not candidates:
                candidates = [str(label)]
            learner = _match(download, roster, f"{key} ({label})", candidates,
                             f"submitter {label} (email {email or 'none'}, SID {sid or 'none'}) is not on the "
                             "roster: their email's local part or SID must be a roster learner id")
            if learner is None:
                continue
            _give(download, learner, key)
            if when is not None:
                earlier = download.submitted_at.get(learner)
                download.submitted_at[learner] = when if earlier is None else max(when, earlier)
    for entry in _listing(download.folder):
        if entry.name != GRADESCOPE_METADATA and entry.name not in listed:
            download.unmatched.append(f"{entry.name}: not listed in {GRADESCOPE_METADATA}")


def _field(record: Any, name: str) -> Any:
    """A field of Gradescope's metadata, which writes Ruby symbols as keys (``:submitters:``)."""
    if not isinstance(record, dict):
        return None
    return record.get(f":{name}", record.get(name))


_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?$")


def _when(value: Any) -> datetime | None:
    """A metadata time (YAML may have parsed it already) as an aware datetime; naive means UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    match = _TIMESTAMP.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{(fraction or '0')[:6].ljust(6, '0')}{zone}")
    except ValueError:
        return None


def _gradescope_metadata(path: Path) -> dict[str, Any]:
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML's safe loader that reads a tag it does not know (a Ruby object) as its plain value."""

    def plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", plain)
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise BadInputError(f"{path}: not a readable Gradescope metadata file ({err}): export the "
                            "submissions from Gradescope again") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: not Gradescope's submission metadata (expected submission_<id>: entries): "
                            "export the submissions from Gradescope again")
    return {str(k): v for k, v in data.items()}
