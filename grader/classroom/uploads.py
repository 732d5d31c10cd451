"""A learner's upload read under limits: its folders, zips and zips inside zips, one file at a time.

An upload is whatever a learner handed in, so every number in it is theirs
to choose: a 2 MB zip can unpack to 2 GB of zeros, a folder can hold a FIFO
that blocks whoever opens it or a symbolic link to ``/dev/zero`` or ``/``,
and a name can be 240 characters long or not UTF-8 at all. This module is
the one place that reads such input, and it reads it under :class:`Limits`
counted per learner (one :class:`Budget` for all their entries), so one
upload costs bounded time and memory whatever it holds:

- symbolic links are never followed and only regular files are opened
  (non-blocking, so a FIFO swapped in at the last moment cannot hang it);
- a zip is refused before it is unpacked when its entry count, an entry's
  declared size, or its declared unpacked/packed ratio is too large, and a
  zip entry can never unpack to more than it declared (:mod:`zipfile` stops
  there and the CRC check fails);
- zips inside a folder or zip are read too, down to ``max_depth``;
- names are reported escaped (:func:`display_name`), never raw.

:func:`read_upload` yields :class:`Member` items: a history file's name and
bytes, or its name and why it was not read. Exceeding a learner-wide limit
ends the upload with one such line, so the learner's other files stay graded
and the class goes on.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass, field
from typing import IO, Iterator

from grader.escape import visible_controls

#: Names inside an upload that are never histories: ``manifest.json`` describes a bundle, not a run.
NOT_HISTORIES = frozenset({"manifest.json"})
#: Longest name shown in a problem line; longer ones are cut in the middle with a marker.
SHOWN_NAME = 120


@dataclass(frozen=True)
class Limits:
    """What one learner's upload may cost, all of their folders and zips together.

    The defaults leave room for anything a learner honestly hands in (a
    history is tens of kilobytes; a repository zipped with its virtual
    environment is tens of thousands of entries) and stop an upload built to
    exhaust the grader long before it can.
    """

    #: Entries looked at (files and folders, zip entries, nested zips' entries).
    max_entries: int = 100_000
    #: ``.json`` files read as histories; more are named in one line and left unread.
    max_histories: int = 1_000
    #: Largest single history, unpacked (the same default as ``check --max-history-bytes``).
    max_file_bytes: int = 64 * 1024 * 1024
    #: All files read from the upload together, unpacked.
    max_total_bytes: int = 128 * 1024 * 1024
    #: Largest unpacked/packed ratio of a zip entry above ``ratio_floor`` bytes (JSON packs about 10:1).
    max_ratio: int = 200
    #: Entries smaller than this are not held to ``max_ratio`` (tiny files pack oddly).
    ratio_floor: int = 1024 * 1024
    #: Zips read inside the upload: 1 reads ``ada.zip`` or a zip in ``ada/``; 2 also a zip inside those.
    max_depth: int = 2


DEFAULT_LIMITS = Limits()


@dataclass
class Member:
    """One file of an upload: a history's bytes under a name to report, or why it was not read."""

    #: ``ada/crash.json`` or ``ada.zip:crash.json`` (escaped, relative: no machine path reaches a gradebook).
    name: str
    data: bytes | None = None
    #: Set when the file (or the rest of the upload) was not read.
    error: str = ""


@dataclass
class Budget:
    """What a learner's upload has used so far of its :class:`Limits` (shared by all their entries)."""

    limits: Limits = DEFAULT_LIMITS
    entries: int = 0
    histories: int = 0
    bytes: int = 0
    #: ``.json`` files left unread because ``max_histories`` was reached.
    skipped: int = 0
    #: Set once a learner-wide limit is exceeded: nothing more is read.
    exhausted: str = ""
    _notes: list[str] = field(default_factory=list)

    def count_entries(self, n: int, where: str) -> bool:
        """Count ``n`` more entries; False (and the upload ends) once there are too many."""
        self.entries += n
        if self.entries > self.limits.max_entries and not self.exhausted:
            self.exhausted = (f"{where}: more than the {self.limits.max_entries} files and folders one upload "
                              "may hold; the rest was not read: hand in only the exported histories")
        return not self.exhausted

    def take_history(self) -> bool:
        """Count one more ``.json`` file; False once ``max_histories`` are read (it is then skipped)."""
        if self.histories >= self.limits.max_histories:
            self.skipped += 1
            return False
        self.histories += 1
        return True

    def room_for(self, size: int, where: str) -> str:
        """Why ``size`` more bytes cannot be read (empty when they can), and count them if they can."""
        if size > self.limits.max_file_bytes:
            return (f"{where}: {size} bytes unpacked, more than the {self.limits.max_file_bytes} a history may "
                    "have: hand in the exported history itself")
        if self.bytes + size > self.limits.max_total_bytes:
            self.exhausted = (f"{where}: the upload unpacks to more than the {self.limits.max_total_bytes} bytes "
                              "one learner may hand in; the rest was not read: hand in only the exported histories")
            return self.exhausted
        self.bytes += size
        return ""


def display_name(name: str | bytes) -> str:
    """A file or folder name as one safe, printable line of bounded length.

    Bytes that are not UTF-8 (a name unzip made from an LMS download) are
    shown as ``\\xNN`` escapes, and so are control characters; a name longer
    than :data:`SHOWN_NAME` keeps its start and end around a ``…`` marker.
    """
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    name = visible_controls(name)
    if len(name) > SHOWN_NAME:
        half = SHOWN_NAME // 2 - 1
        name = f"{name[:half]}…{name[-half:]}"
    return name


def _visible(part: str) -> bool:
    # Hidden files and the resource forks macOS zips carry are never a learner's histories.
    return bool(part) and not part.startswith(".") and part != "__MACOSX"


def _is_history_name(name: str) -> bool:
    return name.lower().endswith(".json")


def _is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"),
                (stat.S_ISLNK, "a symbolic link (not followed)"))


def _kind(mode: int) -> str:
    return next((what for test, what in _NOT_REGULAR if test(mode)), "not a regular file")


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def _open_regular_fd(path: str, label: str) -> tuple[int | None, int, str]:
    """Open ``path`` for reading if it is a regular file and not a symbolic link.

    Returns ``(descriptor, size, "")`` or ``(None, 0, why)``. O_NOFOLLOW
    refuses a link, O_NONBLOCK keeps a FIFO from blocking the open, and the
    type is checked on the opened file itself, so nothing can be swapped in between.
    """
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return None, 0, f"{label}: {_kind(info.st_mode)}, not a file: hand in the file itself"
        fd = os.open(path, _READ_FLAGS)
    except OSError as err:
        return None, 0, f"{label}: cannot read it ({err.strerror or err})"
    try:
        info = os.fstat(fd)
    except OSError as err:
        os.close(fd)
        return None, 0, f"{label}: cannot read it ({err.strerror or err})"
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None, 0, f"{label}: {_kind(info.st_mode)}, not a file: hand in the file itself"
    return fd, info.st_size, ""


def _open_regular(path: str, label: str, budget: Budget) -> tuple[IO[bytes] | None, int, str]:
    """:func:`_open_regular_fd` as a binary stream (for a zip, which is read by seeking about)."""
    fd, size, why = _open_regular_fd(path, label)
    return (None, 0, why) if fd is None else (os.fdopen(fd, "rb"), size, "")


def _read_at_most(fd: int, most: int) -> bytes:
    """Up to ``most`` bytes from ``fd``: fewer only at the end of the file."""
    data = os.read(fd, most)
    if not data or len(data) == most:
        return data
    parts = [data]
    got = len(data)
    while got < most:
        more = os.read(fd, most - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_upload(path: str | os.PathLike[str], label: str, *, budget: Budget | None = None) -> Iterator[Member]:
    """Every history file of one upload (a folder or a zip), read under ``budget``'s limits.

    ``label`` is how the upload is named in reports (``ada``, ``ada.zip``);
    pass one :class:`Budget` for all of a learner's uploads so the limits
    hold per learner. Yields members in name order, with ``.json`` files as
    bytes and everything that could not or may not be read as an error line;
    never raises for what the upload holds.
    """
    budget = budget or Budget()
    path = os.fspath(path)
    label = display_name(label)
    try:
        info = os.lstat(path)
    except OSError as err:
        yield Member(label, error=f"{label}: cannot read it ({err.strerror or err})")
        return
    if stat.S_ISDIR(info.st_mode):
        yield from _folder(path, label, budget, depth=0)
    elif stat.S_ISREG(info.st_mode) and _is_history_name(path):
        # One history handed in as a file of its own (Canvas hands in every file flat).
        yield from _file(path, label, budget)
    elif stat.S_ISREG(info.st_mode) and not _is_zip_name(path):
        pass  # another file handed in flat (notes.txt): left alone, as inside a folder
    elif stat.S_ISREG(info.st_mode):
        stream, _, why = _open_regular(path, label, budget)
        if stream is None:
            yield Member(label, error=why)
            return
        with stream:
            yield from _zip(stream, label, budget, depth=1)
    else:
        yield Member(label, error=f"{label}: {_kind(info.st_mode)}, not a folder or zip: hand in the files "
                                  "themselves")
    yield from _end_notes(label, budget)


def _end_notes(label: str, budget: Budget) -> Iterator[Member]:
    """The learner-wide lines, said once: a limit reached, histories left unread."""
    if budget.exhausted and budget.exhausted not in budget._notes:
        budget._notes.append(budget.exhausted)
        yield Member(label, error=budget.exhausted)
    if budget.skipped:
        note = (f"{label}: {budget.skipped} more .json files were not read (at most "
                f"{budget.limits.max_histories} are): hand in only the exported histories")
        budget.skipped = 0
        budget._notes.append(note)
        yield Member(label, error=note)


def _folder(root: str, label: str, budget: Budget, *, depth: int) -> Iterator[Member]:
    """The histories (and zips) under a folder, walked without following links and counted as it goes."""
    found: list[tuple[str, str, bool]] = []  # (relative path, full path, a link not to follow)
    unlistable: list[str] = []
    pending = [("", root)]
    while pending and not budget.exhausted:
        relative_dir, folder = pending.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError as err:
            where = f"{label}/{display_name(relative_dir)}" if relative_dir else label
            unlistable.append(f"{where}: cannot list the folder ({err.strerror or err})")
            continue
        if not budget.count_entries(len(entries), label):
            break
        for entry in entries:
            if not _visible(entry.name):
                continue
            relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_link = entry.is_symlink()
            except OSError:
                is_dir, is_link = False, False
            if is_dir:
                pending.append((relative, entry.path))
            elif _is_history_name(entry.name) or _is_zip_name(entry.name):
                # A link could point at /dev/zero, at / or at a classmate's files: never followed, and
                # named when it looks like a history so the instructor sees why it was not read.
                # (Links to folders, like a virtual environment's, are passed over without a word.)
                found.append((relative, entry.path, is_link))
    for line in unlistable:
        yield Member(label, error=line)
    found.sort()
    for relative, full, link in found:
        if budget.exhausted:
            break
        name = f"{label}/{display_name(relative)}"
        if relative in NOT_HISTORIES:
            continue
        if link:
            yield Member(name, error=f"{name}: a symbolic link, not followed: hand in the file itself")
            continue
        if _is_zip_name(relative):
            if depth + 1 > budget.limits.max_depth:
                yield Member(name, error=f"{name}: a zip nested deeper than {budget.limits.max_depth} levels was "
                                         "not read: hand in the histories unzipped")
                continue
            stream, _, why = _open_regular(full, name, budget)
            if stream is None:
                yield Member(name, error=why)
                continue
            with stream:
                yield from _zip(stream, name, budget, depth=depth + 1)
            continue
        yield from _file(full, name, budget)


def _file(path: str, name: str, budget: Budget) -> Iterator[Member]:
    """One history file on disk, if it is a regular file and fits the budget."""
    if not budget.take_history():
        return
    # A bare descriptor, not a stream: a file object costs more to make than a small history to read.
    fd, size, why = _open_regular_fd(path, name)
    if fd is None:
        yield Member(name, error=why)
        return
    try:
        why = budget.room_for(size, name)
        if not why:
            data = _read_at_most(fd, size + 1)
    except OSError as err:
        data, failed = b"", f"{name}: cannot read it ({err.strerror or err})"
    else:
        failed = ""
    finally:
        os.close(fd)
    if why:
        if not budget.exhausted:
            yield Member(name, error=why)
        return
    if failed:
        yield Member(name, error=failed)
        return
    if len(data) > size:  # it grew while being read: not the file that was measured
        yield Member(name, error=f"{name}: changed while it was read: hand it in again")
        return
    yield Member(name, data)


def declared_entries(stream: IO[bytes]) -> int | None:
    """The entry count a zip's end record declares, read before :mod:`zipfile` builds one object per entry."""
    try:
        end = zipfile._EndRecData(stream)  # type: ignore[attr-defined]  # stable since Python 2
    except Exception:  # noqa: BLE001 - a damaged zip is reported by ZipFile itself below
        return None
    finally:
        stream.seek(0)
    return end[zipfile._ECD_ENTRIES_TOTAL] if end else None  # type: ignore[attr-defined]


def _zip(stream: IO[bytes], label: str, budget: Budget, *, depth: int) -> Iterator[Member]:
    """The histories in one zip (and in zips inside it, down to the depth limit)."""
    declared = declared_entries(stream)
    if declared is not None and budget.entries + declared > budget.limits.max_entries:
        budget.count_entries(declared, label)
        return
    try:
        archive = zipfile.ZipFile(stream)
    except Exception as err:  # noqa: BLE001 - whatever a damaged zip raises, it is this file's problem
        yield Member(label, error=f"{label}: not a readable zip file ({err}): download it again")
        return
    with archive:
        infos = archive.infolist()
        if not budget.count_entries(len(infos) if declared is None else 0, label):
            return
        chosen = []
        for info in infos:
            # Plain string work: a PurePosixPath per entry was most of the cost of 100,000 entries.
            parts = [p for p in info.filename.split("/") if p]
            if info.filename.endswith("/") or not parts or not all(_visible(p) for p in parts):
                continue
            if info.filename in NOT_HISTORIES:
                continue
            if _is_history_name(info.filename) or _is_zip_name(info.filename):
                chosen.append(info)
        chosen.sort(key=lambda i: i.filename)
        for info in chosen:
            if budget.exhausted:
                return
            nested = _is_zip_name(info.filename)
            if not nested and budget.histories >= budget.limits.max_histories:
                budget.skipped += 1  # counted, not read (nor named)
                continue
            name = f"{label}:{display_name(info.filename)}"
            if nested and depth + 1 > budget.limits.max_depth:
                yield Member(name, error=f"{name}: a zip nested deeper than {budget.limits.max_depth} levels was "
                                         "not read: hand in the histories unzipped")
                continue
            if not nested and not budget.take_history():
                continue
            limits = budget.limits
            if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                yield Member(name, error=f"{name}: packed {info.file_size // max(info.compress_size, 1)} to 1, "
                                         f"more than the {limits.max_ratio} to 1 a history packs: not read")
                continue
            why = budget.room_for(info.file_size, name)
            if why:
                if not budget.exhausted:
                    yield Member(name, error=why)
                continue
            try:
                with archive.open(info) as member:
                    # zipfile stops at the declared size and checks the CRC, so a header that
                    # understates the size ends in an error here, not in more memory.
                    data = member.read(info.file_size + 1)
            except Exception as err:  # noqa: BLE001 - damaged, encrypted, unknown method: this entry's problem
                yield Member(name, error=f"{name}: cannot unpack it ({err})")
                continue
            if nested:
                yield from _zip(io.BytesIO(data), name, budget, depth=depth + 1)
            else:
                yield Member(name, data)
