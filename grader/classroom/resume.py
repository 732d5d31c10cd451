"""What lets a killed batch continue: the spool kept in ``--out``, and the batch's fingerprint.

Every batch spools its graded learners into ``DIR/.grader-resume/spool.sqlite``
(SQLite in WAL mode, committed every fraction of a second), so what it has
finished survives a Ctrl+C, a SIGTERM or a ``kill -9``: the operating system
holds every committed write even when the process dies mid-way. The grading
processes of a files batch keep each learner's report JSON and feedback text
in files of their own in the same folder
(:class:`grader.classroom.kept.ReportFile`), written before the row that
points into them is spooled. The spool is
removed once the gradebook is written. ``grader batch --resume`` with the
same arguments opens it again, skips every learner in it and grades the rest;
the gradebook it then writes is the one a clean run would have written,
because the final files are always made from the whole spool, in roster
order, in one pass.

The spool records a fingerprint of what decides a learner's row (where the
histories come from, the roster's and the rubric's bytes, ``--replay``,
``--since``, ``--due``, ``--shard`` and the like). A resume with other
arguments is refused rather than mixing two gradings in one gradebook.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import BadInputError

#: The folder in ``--out`` that holds a batch's spool while it runs (and after it was killed).
RESUME_DIR = ".grader-resume"
SPOOL_NAME = "spool.sqlite"
#: Bumped when the spool's tables change: an older spool is not resumed.
SPOOL_VERSION = 1

def fingerprint(**parts: Any) -> str:
    """A short digest of the arguments that decide every learner's row (files are given by their bytes)."""
    canonical = {}
    for name, value in sorted(parts.items()):
        if isinstance(value, Path):
            try:
                value = "sha256:" + hashlib.sha256(value.read_bytes()).hexdigest()
            except OSError:
                value = str(value)
        canonical[name] = value
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class OpenedSpool:
    """The spool a batch writes into, and what it already held."""

    db: sqlite3.Connection
    path: Path
    #: Learners already graded by the interrupted batch (0 for a fresh spool).
    resumed: int
    #: One line for stderr about an interrupted batch found in DIR, or "".
    note: str


def open_spool(out_dir: Path, key: str, tables: str, *, resume: bool,
               retry_statuses: tuple[str, ...] = ()) -> OpenedSpool:
    """The spool of ``out_dir``: the interrupted batch's when ``resume`` and its fingerprint is ``key``.

    ``tables`` is the spool's SQL (the gradebook's); a spool made with other
    tables (an older grader) counts as made with other arguments.

    Without ``resume`` an interrupted batch's spool is discarded (and the
    note says so). With ``resume`` and no spool the batch starts from the
    beginning (the note says that too). Learners whose status is in
    ``retry_statuses`` (a live batch's ``not-gradable``) are dropped from a
    resumed spool, so they are tried again. Raises :class:`BadInputError`
    when the spool was made with other arguments.
    """
    key = f"{key}:{hashlib.sha256(tables.encode()).hexdigest()[:8]}"
    folder = Path(out_dir) / RESUME_DIR
    path = folder / SPOOL_NAME
    note = ""
    resumed = 0
    if path.exists():
        held = _held(path)
        if not resume:
            shutil.rmtree(folder, ignore_errors=True)
            if held is not None:
                note = (f"{out_dir} held an interrupted batch ({held[1]} learners graded): starting again; "
                        "`grader batch --resume` with the same arguments continues one instead")
        elif held is None or held[0] != key:
            raise BadInputError(f"--resume: the interrupted batch in {out_dir} was run with other arguments "
                                "(source, roster, rubric, --limit or --replay differ): run it with the same ones, "
                                "or without --resume to grade the class from the beginning")
    elif resume:
        note = f"--resume: no interrupted batch in {out_dir}: grading the whole class"
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level="DEFERRED")
    # WAL: a committed learner survives the process being killed at any instant (the OS keeps the
    # file's pages); synchronous=OFF skips the fsyncs only a power cut would need.
    db.executescript("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;"
                     "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);" + tables
                     + "CREATE INDEX IF NOT EXISTS runs_by_learner ON runs (learner);")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('key', ?)", (key,))
    db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(SPOOL_VERSION),))
    if retry_statuses:
        marks = ",".join("?" * len(retry_statuses))
        db.execute(f"DELETE FROM runs WHERE learner IN (SELECT learner FROM learners WHERE status IN ({marks}))",
                   retry_statuses)
        db.execute(f"DELETE FROM learners WHERE status IN ({marks})", retry_statuses)
    db.commit()
    resumed = db.execute("SELECT COUNT(*) FROM learners").fetchone()[0]
    return OpenedSpool(db, path, resumed, note)


def _held(path: Path) -> tuple[str, int] | None:
    """(fingerprint, learners graded) of an interrupted batch's spool, or None when it is not readable."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta"))
            if meta.get("version") != str(SPOOL_VERSION):
                return None
            return meta.get("key", ""), db.execute("SELECT COUNT(*) FROM learners").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None


def discard(out_dir: Path) -> None:
    """Remove ``out_dir``'s spool (after the gradebook it fed is in place)."""
    shutil.rmtree(Path(out_dir) / RESUME_DIR, ignore_errors=True)
