"""Texts a grading process keeps beside the spool, and gradebook.json written with them.

A learner's report JSON and Markdown body are most of what a batch spools
(67 MB of text for 5,000 learners). Sent to the parent, they were pickled, read
back, inserted into SQLite and read out of it again, all in the one process
that the grading processes wait on. Instead, each grading process appends
them to a :class:`ReportFile` of its own in the spool's folder and the
parent spools only where each one lies (``<file name>:<offset>:<length>``).
The final pass (:class:`JsonWriter`) has the kernel copy each report into
gradebook.json, and reads a Markdown body back (:func:`read_kept`) only for
the few feedback files it writes again. Beside a ``--resume`` spool, the
files outlive a killed batch as the spool does; each text is written before
the row that points at it reaches the spool.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path
from typing import Any, Callable

#: What ``copy_file_range`` answers where it cannot copy between these two files (another file
#: system, an old kernel, a file system without it): the text is then read and written instead.
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})
#: A reference: the file's name, then the text's offset and length in bytes.
_REFERENCE = re.compile(r"^(reports-\d+-[0-9a-f]{8}):(\d+):(\d+)$")


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a write may take less than it was given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class ReportFile:
    """One grading process's kept texts, appended to a file of their own in ``folder``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = os.fspath(folder)
        #: The file's name in ``folder`` ("" until the first text).
        self.name = ""
        self._fd: int | None = None
        self._size = 0

    def add(self, text: str) -> str:
        """Append one text (a report's JSON, a Markdown body); the reference it is read back by."""
        data = text.encode("utf-8")
        if self._fd is None:
            self.name = f"reports-{os.getpid()}-{secrets.token_hex(4)}"
            self._fd = os.open(os.path.join(self.folder, self.name),
                               os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        write_all(self._fd, data)
        at = f"{self.name}:{self._size}:{len(data)}"
        self._size += len(data)
        return at

    def keep(self, row: Any) -> None:
        """Move a spooled row's report JSON and Markdown body here, leaving references in their place
        (``report_at``, ``feedback_at``: see :class:`grader.classroom.gradebook.Spooled`)."""
        if row.report_json is not None:
            row.report_at, row.report_json = self.add(row.report_json), None
        if row.feedback_body:
            row.feedback_at, row.feedback_body = self.add(row.feedback_body), ""

    def close(self) -> None:
        """Close the file (it stays, for the gradebook's final pass)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def place(at: str) -> tuple[str, int, int]:
    """(file name, offset, length) of a :meth:`ReportFile.add` reference; ValueError for anything else."""
    match = _REFERENCE.match(at)
    if match is None:  # a spool edited by hand: no other name, and no negative offset, is read
        raise ValueError(at)
    return match[1], int(match[2]), int(match[3])


def read_kept(folder: Path, at: str) -> str | None:
    """The text ``at`` points at in ``folder``; None when it cannot be read whole."""
    try:
        name, offset, length = place(at)
        with open(folder / name, "rb") as f:
            f.seek(offset)
            data = f.read(length)
    except (OSError, ValueError):
        return None
    return data.decode("utf-8") if len(data) == length else None


class JsonWriter:
    """gradebook.json as the final pass writes it: its own text, and reports copied from the report files.

    Text is gathered and written in one call before each copy (or once a
    megabyte has gathered); a report is copied by the kernel
    (``copy_file_range``), or read and written where the system cannot.
    ``damaged(at)`` is the exception raised for a reference that cannot be
    read whole.
    """

    def __init__(self, path: Path, folder: Path, damaged: Callable[[str], Exception]) -> None:
        self._folder = folder
        self._damaged = damaged
        self._file = open(path, "wb", buffering=0)
        self._fd = self._file.fileno()
        self._pending: list[str] = []
        self._size = 0
        self._sources: dict[str, int] = {}
        self._kernel_copy = hasattr(os, "copy_file_range")

    def write(self, text: str) -> None:
        """Add text (a report kept in the spool, by a batch in one process, comes this way too)."""
        self._pending.append(text)
        self._size += len(text)
        if self._size >= 1 << 20:
            self._flush()

    def copy(self, at: str) -> None:
        """Add the text a :meth:`ReportFile.add` reference points at."""
        try:
            name, offset, length = place(at)
            source = self._sources.get(name)
            if source is None:
                source = self._sources[name] = os.open(self._folder / name, os.O_RDONLY)
        except (OSError, ValueError):
            raise self._damaged(at) from None
        self._flush()
        while length > 0:
            if self._kernel_copy:
                try:
                    done = os.copy_file_range(source, self._fd, length, offset)
                except OSError as err:
                    if err.errno not in _NO_KERNEL_COPY:
                        raise
                    self._kernel_copy = False
                    continue
            else:
                data = os.pread(source, min(length, 1 << 20), offset)
                write_all(self._fd, data)
                done = len(data)
            if done == 0:  # the file ends before the text does
                raise self._damaged(at)
            offset += done
            length -= done

    def _flush(self) -> None:
        if self._pending:
            write_all(self._fd, "".join(self._pending).encode("utf-8"))
            self._pending.clear()
            self._size = 0

    def __enter__(self) -> "JsonWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._flush()
        finally:
            for fd in self._sources.values():
                os.close(fd)
            self._file.close()
