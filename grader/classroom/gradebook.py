"""The files of ``--out DIR``: ``gradebook.csv``, ``gradebook.json`` and ``feedback/<learner>.md``.

Learners are added as they are graded and go straight to a spool (an SQLite
file in a hidden staging folder inside DIR, ``.staging-<pid>-<hex>``), so a
class of any size is never held in memory. :meth:`Gradebook.finish` then
finds run ids that appear under more than one learner and streams the spool,
in roster order, into the new gradebook.csv, gradebook.json and feedback
folder, all inside the staging folder.

``--out`` is all or nothing. Only when every new file is complete does the
staging folder get a ``commit`` mark, and then three renames put the new
feedback folder and the two gradebook files in place. A batch killed before
the mark leaves the previous gradebook whole (its staging folder is removed
by the next batch); killed after it, the next batch on DIR finishes the
renames first. So the feedback in DIR always belongs to the gradebook beside
it. While a batch runs it holds an exclusive lock on DIR itself (flock), so
a second batch on the same DIR stops at once instead of mixing two classes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from grader import __version__
from grader.classroom import spreadsheet
from grader.classroom.feedback import FEEDBACK_TITLE
from grader.classroom.kept import JsonWriter, read_kept, write_all
from grader.engine.classreport import _loads
from grader.errors import BadInputError, DiskFullError, OutputBusyError
from grader.engine.rubric import Rubric
from grader.formats.classbook import late_words

try:
    import orjson
except ImportError:  # the standard library writes the same JSON, slower
    orjson = None

SCHEMA_VERSION = 1
#: The gradebook's own CSV columns around the roster's (public interface).
LEADING_COLUMNS = ("learner",)
STATUS_COLUMNS = ("status", "score", "max_score", "late")
#: After the experiments: the marks beside the status (suspect, cross-talk, owner-mismatch ...), ``;``-separated.
TRAILING_COLUMNS = ("flags",)
#: Seconds between two commits of the spool: at most this much grading is redone after a kill.
COMMIT_SECONDS = 0.25
#: The spool's tables (the scratch spool's and the --resume spool's alike).
SPOOL_TABLES = """
    CREATE TABLE IF NOT EXISTS learners (position INTEGER, learner TEXT PRIMARY KEY, status TEXT, score REAL,
                                         max_score REAL, roster TEXT, problems TEXT, cells TEXT, report TEXT,
                                         feedback TEXT, flags TEXT, late INTEGER, report_at TEXT,
                                         feedback_at TEXT);
    CREATE INDEX IF NOT EXISTS learners_in_order ON learners (position, learner);
    CREATE TABLE IF NOT EXISTS runs (run_id TEXT, learner TEXT, workflow_id TEXT);
    CREATE TABLE IF NOT EXISTS timings (fingerprint TEXT, learner TEXT, workflow_id TEXT, holder TEXT);
    CREATE TABLE IF NOT EXISTS processes (lkey TEXT, learner TEXT, run_id TEXT, workflow_id TEXT, identity TEXT,
                                          sticky TEXT, events TEXT, fingerprint TEXT);
"""
#: How many other learners a duplicated run names before it says "and N more".
MAX_NAMED = 10
#: Names in DIR that a batch owns while it runs (the staging folder) and that an older version left
#: behind (its spool folder, its temporary files): removed by the next batch on DIR.
_STAGING = ".staging-"
_LEFTOVER = re.compile(r"^\.(?:staging-|batch-).+|^\..+\.\d+-[0-9a-f]{8}\.tmp$")
_COMMIT = "commit"
#: Characters a feedback file name may keep from a learner id as it is.
_PLAIN_NAME = re.compile(r"[\w.@+-]+")
_NOT_PLAIN = re.compile(r"[^\w.@+-]+")


def feedback_file_name(learner: str) -> str:
    """The file name of a learner's feedback in ``feedback/``: ``ada.md``, or a safe name derived from the id.

    An id that is a plain short name keeps it. Any other (spaces, accents,
    an escaped non-UTF-8 name, 200 characters, ``../x``) becomes its plain
    characters, cut short, then ``-`` and a hash of the whole id, so two ids
    never share a file and no id can name a path or exceed a file-name limit.
    gradebook.json gives each learner's file name (``feedback``).
    """
    if (_PLAIN_NAME.fullmatch(learner) and len(learner.encode("utf-8", "surrogatepass")) <= 100
            and not learner.startswith(".")):
        return f"{learner}.md"
    digest = hashlib.sha256(learner.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    plain = _NOT_PLAIN.sub("_", learner).strip("._")[:40] or "learner"
    return f"{plain}-{digest}.md"


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def disk_errors(path: Path, option: str = "--out"):
    """Turn "the disk is full" (as the OS or SQLite says it) into one clear line and exit code 4.

    A file-size limit (EFBIG, ``ulimit -f``) and a quota count as full too:
    the person can only make room or write elsewhere.
    """
    try:
        yield
    except OSError as err:
        if err.errno in _FULL:
            raise DiskFullError(f"{option} {path}: {err.strerror or err} while writing: free some space or "
                                   f"choose another {option} (nothing there was replaced)") from None
        raise
    except sqlite3.Error as err:
        text = str(err).lower()
        if "full" in text or "disk i/o" in text or "too big" in text:
            raise DiskFullError(f"{option} {path}: no room to write the gradebook ({err}): free some space "
                                   f"or choose another {option} (nothing there was replaced)") from None
        raise


#: The values of gradebook.csv's ``<experiment>`` columns, exactly.
EXPERIMENT_STATES = ("pass", "fail", "pending", "not-attempted")


def experiment_cell(status: str) -> str:
    """An experiment's value in gradebook.csv: one of :data:`EXPERIMENT_STATES`.

    A check that could not run (``error``) withholds the points, so it is a
    ``fail`` there; a learner with no graded runs (missing, nothing
    readable) attempted nothing the grader saw.
    """
    if status == "error":
        return "fail"
    return status if status in EXPERIMENT_STATES else "not-attempted"


def feedback_names(learners: list[str]) -> dict[str, str]:
    """learner -> the file name of their feedback, unique even on a case-insensitive file system.

    macOS and Windows would write ``bob.md`` and ``BOB.md`` to one file, so
    learners whose ids fold to the same name (:func:`grader.engine.learner.learner_key`)
    each get ``<id>-<8 hex of the id>.md``: stable from batch to batch, and
    never another learner's plain name, since a learner id holds no ``-``.
    Everyone else gets :func:`feedback_file_name`: ``<id>.md``, or a safe
    name for an id that cannot be a file name as it is.
    """
    from grader.engine.learner import learner_key

    keys = {name: learner_key(name) for name in learners}  # once per learner: a class is thousands
    folded: dict[str, int] = {}
    for name in learners:
        folded[keys[name]] = folded.get(keys[name], 0) + 1
    names = {}
    for name in learners:
        plain = feedback_file_name(name)
        if folded[keys[name]] > 1 and plain == f"{name}.md":
            names[name] = f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.md"
        else:
            names[name] = plain
    return names


def csv_columns(rubric: Rubric, roster_columns: list[str]) -> list[str]:
    """The gradebook.csv header: learner, the roster's columns, status, score, max_score, late, per experiment two, flags."""
    per_experiment = [name for e in rubric.experiments for name in (e.id, f"{e.id}_points")]
    return [*LEADING_COLUMNS, *roster_columns, *STATUS_COLUMNS, *per_experiment, *TRAILING_COLUMNS]


def reserved_columns(rubric: Rubric) -> set[str]:
    """Column names a roster may not use, since the gradebook writes them itself."""
    return set(csv_columns(rubric, [])) - {"learner"}


@lru_cache(maxsize=1)
def gradebook_schema() -> dict[str, Any]:
    """The JSON Schema of ``gradebook.json`` (it refers to the report schema for each learner's report)."""
    from grader.resources import schema_path

    return json.loads(schema_path("gradebook").read_text())


def gradebook_validator() -> Any:
    """A jsonschema validator for ``gradebook.json`` that resolves its reference to the report schema."""
    import jsonschema
    from referencing import Registry, Resource

    from grader.engine.report import report_schema

    report = report_schema()
    registry = Registry().with_resource(report["$id"], Resource.from_contents(report))
    return jsonschema.Draft202012Validator(gradebook_schema(), registry=registry)


def _dumps(value: Any) -> str:
    if orjson is not None:
        return orjson.dumps(value).decode()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def report_json(report: Any) -> str:
    """A report as the JSON text of ``Report.to_dict()``, fast.

    orjson serialises the report's dataclasses directly, which costs a
    fraction of ``dataclasses.asdict``'s deep copy; a class of 10,000 learners
    made that copy the batch's largest cost.
    """
    if orjson is None:
        return _dumps(report.to_dict())
    head = {"schema_version": report.schema_version}
    head.update((name, getattr(report, name)) for name in report.__dataclass_fields__ if name != "schema_version")
    return orjson.dumps(head).decode()


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    # open(..., "x") rather than mkstemp: the file gets the usual permissions (umask), not 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_small_file(path: str | os.PathLike[str], text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path``, replacing what it held; ``exclusive``: the file must be new.

    A batch writes one such file per learner (the feedback files), and
    ``open()`` in text mode builds three layers of objects, an encoder and a
    terminal check for each: this writes the bytes with three system calls,
    the same bytes as ``open(path, "w", encoding="utf-8")`` on every system
    this runs on (no newline translation on POSIX).
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o666)
    try:
        write_all(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


@dataclass
class Spooled:
    """One learner as the spool hands it back in the final pass."""

    position: int
    learner: str
    status: str
    score: float | None
    max_score: float
    roster: dict[str, str]
    problems: list[str]
    #: experiment id -> [status, points, finding]; empty when nothing was graded.
    cells: dict[str, list]
    #: The report as JSON text, or None (no report, or a grading process kept it: ``report_at``).
    report_json: str | None
    #: The report in Markdown, or "" when there is no report.
    feedback_body: str
    #: Marks beside the status, e.g. ``suspect``.
    flags: list[str] = field(default_factory=list)
    #: True when the work came in late, False when not, None when nothing tells (see grader.classroom.late).
    late: bool | None = None
    #: Runs that other learners also handed in (filled in by finish()).
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    #: ``(timing fingerprint, workflow_id)`` of the learner's runs (see grader.engine.integrity.timing_fingerprint).
    timings: list[tuple[str, str]] = field(default_factory=list)
    #: What the learner handed in, when several learners share it (a group submission): runs under
    #: one holder are not copies of each other. Empty means the learner alone.
    holder: str = ""
    #: Where a grading process left the report's JSON instead of ``report_json`` (then None): a
    #: :class:`grader.classroom.kept.ReportFile` reference, ``<file name>:<offset>:<length>``.
    report_at: str | None = None
    #: Where it left ``feedback_body`` (then ""), the same way: read back only to write the feedback again.
    feedback_at: str | None = None


_INSERT_LEARNER = "INSERT OR REPLACE INTO learners VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"


def _learner_record(row: Spooled) -> tuple:
    return (row.position, row.learner, row.status, row.score, row.max_score, _dumps(row.roster),
            _dumps(row.problems), _dumps(row.cells), row.report_json, row.feedback_body, _dumps(row.flags),
            None if row.late is None else int(row.late), row.report_at, row.feedback_at)


def spool_records(row: Spooled, runs: list[tuple[str, str]], workers: list | None = None) -> tuple:
    """One learner as the spool's tables hold it: ``(learner, runs, timings, processes)``, plain values only.

    Everything :meth:`Gradebook.add` does per learner besides the inserts (the
    JSON of the roster, problems, cells, flags and each worker's events) is
    done here, so a grading process can do it and its parent only inserts.
    """
    from grader.engine.learner import learner_key

    runs_of = [(rid, row.learner, wid) for rid, wid in runs if rid]
    timings = [(fp, row.learner, wid, row.holder or row.learner) for fp, wid in row.timings]
    processes = []
    if workers:
        key = learner_key(row.learner)
        processes = [(key, row.learner, w.run_id, w.workflow_id, identity, sticky, _dumps(events), w.fingerprint)
                     for w in workers for identity, events in w.identities.items()
                     for sticky in (sorted(w.stickies.get(identity, ())) or [None])]
    return _learner_record(row), runs_of, timings, processes


class Gradebook:
    """Collects graded learners into a spool, then writes the gradebook files in one final pass."""

    def __init__(self, out_dir: Path, rubric: Rubric, *, roster_columns: list[str], source: str,
                 resume_key: str | None = None, resume: bool = False, retry_statuses: tuple[str, ...] = ()) -> None:
        """Lock ``out_dir`` and open the spool.

        With ``resume_key`` (a fingerprint of the batch's arguments) the spool
        is durable, in ``DIR/.grader-resume``, and outlives a killed batch;
        ``resume`` then continues an interrupted batch's spool instead of
        starting a new one (see :mod:`grader.classroom.resume`).
        """
        out_dir = Path(out_dir)
        self.out_dir = out_dir
        self._lock_fd: int | None = None
        self._tmp: Path | None = None
        #: Learners already in the spool when it was opened (an interrupted batch's, with ``resume``).
        self.resumed = 0
        #: A line for stderr about an interrupted batch found in DIR, or "".
        self.note = ""
        self._durable = resume_key is not None
        self._finished = False
        self._spool_dir: Path | None = None
        #: learner -> the feedback file a grading process wrote for them in the staging folder.
        self._written: dict[str, str] = {}
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            recover(out_dir)
            self._tmp = out_dir / f"{_STAGING}{os.getpid()}-{secrets.token_hex(4)}"
            self._tmp.mkdir()
            if self._durable:
                from grader.classroom.resume import open_spool

                with disk_errors(out_dir):
                    opened = open_spool(out_dir, resume_key, SPOOL_TABLES, resume=resume,
                                        retry_statuses=retry_statuses)
                self.db, self.resumed, self.note = opened.db, opened.resumed, opened.note
                self._spool_dir = Path(opened.path).parent
            else:
                self._spool_dir = self._tmp
                self.db = sqlite3.connect(self._tmp / "spool.sqlite")
                # A scratch spool: nothing in it must survive a crash, so skip the journal.
                with disk_errors(out_dir):
                    self.db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + SPOOL_TABLES)
        except sqlite3.Error as err:
            self.close()
            raise BadInputError(f"--out {out_dir}: cannot keep the batch's spool there ({err})") from None
        except OSError as err:
            self.close()
            if err.errno in _FULL:
                raise DiskFullError(f"--out {out_dir}: {err.strerror or err}: free some space or choose "
                                       "another --out") from None
            raise BadInputError(f"--out {out_dir}: cannot write there ({err.strerror or err})") from None
        except BaseException:
            self.close()
            raise
        self.rubric = rubric
        self.roster_columns = list(roster_columns)
        self.source = source
        self._last_commit = time.monotonic()
        self.count = self.resumed

    def finished_learners(self) -> set[str]:
        """Learners already in the spool: a resumed batch does not grade them again."""
        return {name for (name,) in self.db.execute("SELECT learner FROM learners")}

    def _lock(self) -> None:
        """Hold DIR's lock for the life of this gradebook, or raise :class:`OutputBusyError` at once.

        The lock is on the folder itself (flock on its descriptor), so no lock
        file is left behind, and the kernel drops it when the process dies,
        however it dies.
        """
        fd = os.open(self.out_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusyError(f"--out {self.out_dir}: another grader batch is writing there now: wait for it "
                                  "to finish, or choose another --out") from None
        except OSError:  # a file system without flock: carry on unlocked rather than refuse to grade
            pass
        self._lock_fd = fd

    def add(self, row: Spooled, runs: list[tuple[str, str]], workers: list | None = None) -> None:
        """Spool one learner, the ``(run_id, workflow_id)`` pairs graded for them and their runs' workers.

        ``workers`` are :class:`grader.engine.ownership.RunWorkers`, one per run, kept
        (a few rows a run) so :meth:`cross_talk` can compare the class's processes.
        """
        self.add_records([spool_records(row, runs, workers)])

    def add_records(self, records: list[tuple], feedback: dict[str, str] | None = None) -> None:
        """Spool learners already made into :func:`spool_records` (by a grading process), in one go.

        ``feedback`` maps each learner whose feedback file the grading process
        already wrote into :attr:`staged_feedback` to that file's name:
        :meth:`finish` keeps those files instead of writing them again.
        """
        with disk_errors(self.out_dir):
            self._insert(records)
        if feedback:
            self._written.update(feedback)

    def _insert(self, records: list[tuple]) -> None:
        # One executemany per table for a whole chunk of learners: a statement per learner and
        # table cost the parent of a multi-process batch more than the grading processes left it.
        self.db.executemany(_INSERT_LEARNER, [r[0] for r in records])
        for sql, part in (("INSERT INTO runs VALUES (?,?,?)", 1), ("INSERT INTO timings VALUES (?,?,?,?)", 2),
                          ("INSERT INTO processes VALUES (?,?,?,?,?,?,?,?)", 3)):
            values = [v for r in records for v in r[part]]
            if values:
                self.db.executemany(sql, values)
        self.count += len(records)
        # Committed a few times a second: what a killed batch had graded up to then is kept for --resume
        # (a commit per learner would cost more than a small learner's grading).
        now = time.monotonic()
        if now - self._last_commit >= COMMIT_SECONDS:
            self.db.commit()
            self._last_commit = now

    def _store(self, row: Spooled) -> None:
        self.db.execute(_INSERT_LEARNER, _learner_record(row))

    def replace(self, row: Spooled) -> None:
        """Spool a learner graded again (after copied runs were found); their runs stay as first spooled."""
        with disk_errors(self.out_dir):
            self._store(row)
        # The feedback a grading process wrote is the first grade's: finish() writes this one.
        self.drop_staged_feedback(row.learner)

    @property
    def reports_folder(self) -> Path:
        """Where grading processes keep their :class:`grader.classroom.kept.ReportFile`: beside the spool
        (kept for ``--resume`` when the spool is; otherwise in the staging folder)."""
        assert self._spool_dir is not None
        return self._spool_dir

    def _kept_text(self, at: str) -> str:
        """The text a :class:`grader.classroom.kept.ReportFile` reference points at (BadInputError when gone)."""
        text = read_kept(self.reports_folder, at)
        if text is None:
            raise self._damaged(at)
        return text

    def _damaged(self, at: str) -> BadInputError:
        return BadInputError(f"--out {self.out_dir}: the batch's spool is damaged ({at} cannot be read from "
                             f"{self.reports_folder}): grade the class again without --resume")

    @property
    def staged_feedback(self) -> Path:
        """The new feedback folder in the staging area, where grading processes may write feedback files.

        A file written there for a learner counts only once :meth:`add_records`
        names it; until then it is a leftover (:meth:`drop_staged_feedback`).
        """
        folder = self._tmp / "feedback"
        folder.mkdir(exist_ok=True)
        return folder

    def drop_staged_feedback(self, learner: str, name: str | None = None) -> None:
        """Remove the feedback file written for ``learner`` in the staging area (``name``: the one a grading
        process would have used, for a file it may have half written before it died)."""
        name = self._written.pop(learner, name)
        if name is not None:
            (self._tmp / "feedback" / name).unlink(missing_ok=True)

    def copied_runs(self) -> dict[str, dict[str, list[str]]]:
        """learner -> {timing fingerprint: the other learners whose runs have it}, for copies between learners.

        One GROUP BY over the spooled fingerprints: linear in the runs, no run is compared with another.
        Runs shared under one run id count too (the same run handed in twice is a copy as well);
        learners of one group submission (one holder) are not copies of each other.
        """
        with disk_errors(self.out_dir):
            return self._copied_runs()

    def _copied_runs(self) -> dict[str, dict[str, list[str]]]:
        self.db.commit()
        shared = self.db.execute("""
            SELECT DISTINCT fingerprint, holder, learner FROM timings WHERE fingerprint IN (
                SELECT fingerprint FROM timings GROUP BY fingerprint HAVING COUNT(DISTINCT holder) > 1)
            ORDER BY fingerprint, holder, learner""")
        groups: dict[str, list[tuple[str, str]]] = {}
        for fingerprint, holder, learner in shared:
            groups.setdefault(fingerprint, []).append((holder, learner))
        found: dict[str, dict[str, list[str]]] = {}
        for fingerprint, members in groups.items():
            per_holder: dict[str, int] = {}
            for holder, _ in members:
                per_holder[holder] = per_holder.get(holder, 0) + 1
            # A learner's others are named from the first few of each holder: linear in a big group.
            head: list[tuple[str, str]] = []
            shown_of: dict[str, int] = {}
            for holder, learner in members:
                if shown_of.get(holder, 0) <= MAX_NAMED and len(head) < 2 * (MAX_NAMED + 1):
                    head.append((holder, learner))
                    shown_of[holder] = shown_of.get(holder, 0) + 1
            for holder, learner in members:
                others = [n for h, n in head if h != holder][:MAX_NAMED]
                more = len(members) - per_holder[holder] - len(others)
                found.setdefault(learner, {})[fingerprint] = others + ([f"{more} more"] if more > 0 else [])
        return found

    def duplicates(self) -> dict[str, list[dict[str, Any]]]:
        """learner -> the runs they share with other learners (run id, workflow id, the others)."""
        self.db.commit()
        shared = self.db.execute("""
            SELECT run_id, learner, workflow_id FROM runs WHERE run_id IN (
                SELECT run_id FROM runs GROUP BY run_id HAVING COUNT(DISTINCT learner) > 1)
            ORDER BY run_id, learner""")
        by_run: dict[str, list[tuple[str, str]]] = {}
        for run_id, learner, workflow_id in shared:
            by_run.setdefault(run_id, []).append((learner, workflow_id))
        found: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, str, str]] = set()
        for run_id, holders in by_run.items():
            names = sorted({learner for learner, _ in holders})
            # Each holder names up to MAX_NAMED others: the first MAX_NAMED + 1 names always hold
            # them, so the cost is linear in the holders (50,000 learners handing in one run).
            first = names[:MAX_NAMED + 1]
            for learner, workflow_id in holders:
                if len(names) < 2 or (learner, run_id, workflow_id) in seen:
                    continue
                seen.add((learner, run_id, workflow_id))
                found.setdefault(learner, []).append({
                    "run_id": run_id, "workflow_id": workflow_id,
                    "also_under": [n for n in first if n != learner][:MAX_NAMED], "others": len(names) - 1})
        return found

    def cross_talk(self) -> dict[str, dict[tuple[str, str], list]]:
        """learner -> ``(workflow_id, run_id)`` -> cross-talk findings, for runs sharing a worker process across learners.

        Only processes seen under two learners are looked at again, so a class
        with a queue per learner costs one query. See :func:`grader.engine.ownership.cross_talk`.
        """
        with disk_errors(self.out_dir):
            return self._cross_talk()

    def _cross_talk(self) -> dict[str, dict[tuple[str, str], list]]:
        from grader.engine.ownership import RunWorkers, cross_talk

        self.db.commit()
        # In gradebook order (then each learner's runs as graded), not the order learners reached the
        # spool: the findings name the first few others, and grading processes, a resumed batch and
        # a live batch's reads spool learners in an order of their own.
        shared = self.db.execute("""
            SELECT p.learner, p.run_id FROM processes p JOIN learners l ON l.learner = p.learner
            WHERE p.sticky IN (
                SELECT sticky FROM processes WHERE sticky IS NOT NULL GROUP BY sticky
                HAVING COUNT(DISTINCT lkey) > 1)
            OR p.identity IN (
                SELECT identity FROM processes GROUP BY identity HAVING COUNT(DISTINCT lkey) > 1)
            GROUP BY p.learner, p.run_id ORDER BY MIN(l.position), p.learner, MIN(p.rowid)""").fetchall()
        if not shared:
            return {}
        runs: dict[tuple[str, str], RunWorkers] = {}
        for learner, run_id in shared:
            for _, _, rid, wid, identity, sticky, events, fingerprint in self.db.execute(
                    "SELECT * FROM processes WHERE learner = ? AND run_id = ?", (learner, run_id)):
                run = runs.setdefault((learner, rid), RunWorkers(learner, wid, rid, fingerprint=fingerprint))
                run.identities[identity] = _loads(events)
                if sticky:
                    run.stickies.setdefault(identity, set()).add(sticky)
        ordered = list(runs.values())
        held: dict[str, dict[tuple[str, str], list]] = {}
        for run, found in zip(ordered, cross_talk(ordered)):
            if found:
                held.setdefault(run.learner, {})[(run.workflow_id, run.run_id)] = found
        return held

    def row(self, learner: str) -> Spooled:
        """One spooled learner (KeyError when there is none)."""
        self.db.commit()
        r = self.db.execute("SELECT * FROM learners WHERE learner = ?", (learner,)).fetchone()
        if r is None:
            raise KeyError(learner)
        report = r[8] if r[8] is not None or r[12] is None else self._kept_text(r[12])
        body = self._kept_text(r[13]) if r[13] is not None else r[9] or ""
        return Spooled(position=r[0], learner=r[1], status=r[2], score=r[3], max_score=r[4],
                       roster=_loads(r[5]), problems=_loads(r[6]), cells=_loads(r[7]),
                       report_json=report, feedback_body=body, flags=_loads(r[10]),
                       late=None if r[11] is None else bool(r[11]))

    def rows(self) -> Iterator[Spooled]:
        """Every spooled learner in gradebook order (roster order, then learner id).

        A report a grading process kept in a :class:`grader.classroom.kept.ReportFile` stays there
        (``report_json`` None, ``report_at`` set): the final pass copies it.
        """
        self.db.commit()
        for r in self.db.execute("SELECT * FROM learners ORDER BY position, learner"):
            yield Spooled(position=r[0], learner=r[1], status=r[2], score=r[3], max_score=r[4],
                          roster=_loads(r[5]), problems=_loads(r[6]), cells=_loads(r[7]),
                          report_json=r[8], feedback_body=r[9] or "", flags=_loads(r[10]),
                          late=None if r[11] is None else bool(r[11]), report_at=r[12], feedback_at=r[13])

    def finish(self, on_row=None, *, also=None) -> list[Path]:
        """Write gradebook.csv, gradebook.json and the feedback files; return the paths written.

        Everything is written into the staging folder first and put in place
        together at the end (see the module docstring). ``on_row(row)`` sees
        every learner (with its duplicates filled in) as it is written, for
        the regrade diff and the summary, without a second pass.
        ``also(staging_folder)`` may write more files of the same gradebook
        there (an LMS import file) and returns their names: they are put in
        place with the rest.
        """
        with disk_errors(self.out_dir):
            self._write_staged(on_row)
            self._keep_foreign_feedback()
            extra = list(also(self._tmp)) if also is not None else []
            # The mark lists the extra files, so a batch that finishes this commit knows them too.
            (self._tmp / _COMMIT).write_text("".join(f"{name}\n" for name in extra), encoding="utf-8")
        # From the commit mark on the new gradebook is decided (recover() completes it if this process
        # dies): the --resume spool has served its purpose.
        self._finished = True
        commit(self._tmp, self.out_dir)
        return [self.out_dir / "gradebook.json", self.out_dir / "gradebook.csv", *(self.out_dir / n for n in extra)]

    def _write_staged(self, on_row) -> None:
        from grader.classroom.feedback import render_feedback

        dupes = self.duplicates()
        self._file_names = feedback_names([r[0] for r in self.db.execute("SELECT learner FROM learners")])
        feedback_dir = self.staged_feedback
        # A grading process named a file from the class it was told of; a learner whose final name
        # differs (a resumed spool holding other learners) gets the file written again here.
        for learner, name in list(self._written.items()):
            if self._file_names.get(learner) != name:
                self.drop_staged_feedback(learner)
        header = csv_columns(self.rubric, self.roster_columns)
        with (self._tmp / "gradebook.csv").open("w", newline="", encoding=spreadsheet.ENCODING) as csv_file, \
                JsonWriter(self._tmp / "gradebook.json", self.reports_folder, self._damaged) as json_file:
            # gradebook.csv is opened in spreadsheets: no cell may run as a formula (see .spreadsheet).
            writer = spreadsheet.SafeWriter(csv_file)
            writer.writerow(header)
            head = {"schema_version": SCHEMA_VERSION, "grader_version": __version__,
                    "rubric": {"id": self.rubric.id, "version": self.rubric.version},
                    "source": self.source, "columns": header,
                    "experiments": [e.id for e in self.rubric.experiments]}
            json_file.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "learners": [')
            first = True
            for row in self.rows():
                row.duplicates = dupes.get(row.learner, [])
                writer.writerow(self._csv_row(row))
                json_file.write(("\n" if first else ",\n") + self._json_head(row))
                if row.report_json is None and row.report_at is not None:
                    json_file.copy(row.report_at)
                else:
                    json_file.write(row.report_json or "null")
                json_file.write("}")
                first = False
                # Written by a grading process already, unless the runs it shares with others (known only
                # now) have their own section.
                written = self._written.get(row.learner) is not None
                if not written or row.duplicates:
                    if row.feedback_at is not None:
                        row.feedback_body = self._kept_text(row.feedback_at)
                    # "x": a new file in the private staging folder; two learners never share a name.
                    write_small_file(feedback_dir / self._file_names[row.learner], render_feedback(row, self.rubric),
                                     exclusive=not written)
                if on_row is not None:
                    on_row(row)
            json_file.write("\n]}\n")

    def _keep_foreign_feedback(self) -> None:
        """Carry files in DIR/feedback that a batch did not write (an instructor's notes) into the new folder.

        Feedback an earlier batch wrote (it starts with the feedback title) for
        a learner this gradebook no longer has is left behind, so a learner
        dropped from the roster cannot be sent last week's feedback by
        mistake. Hard links, not moves: until the commit, the old folder stays whole.
        """
        old = self.out_dir / "feedback"
        new = self._tmp / "feedback"
        try:
            scan = os.scandir(old)
        except FileNotFoundError:
            return
        with scan as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False) or (new / entry.name).exists():
                    continue
                if entry.name.endswith(".md"):
                    with open(entry.path, "rb") as f:
                        if f.read(len(FEEDBACK_TITLE)) == FEEDBACK_TITLE.encode():
                            continue
                try:
                    os.link(entry.path, new / entry.name)
                except OSError:
                    shutil.copy2(entry.path, new / entry.name)

    def _csv_row(self, row: Spooled) -> list[Any]:
        cells: list[Any] = [row.learner, *(row.roster.get(c, "") for c in self.roster_columns),
                            row.status, "" if row.score is None else f"{row.score:g}", f"{row.max_score:g}",
                            late_words(row.late)]
        for exp in self.rubric.experiments:
            status, points, _ = row.cells.get(exp.id) or ("", None, "")
            cells += [experiment_cell(status), "" if points is None else f"{points:g}"]
        cells.append("; ".join(row.flags))
        return cells

    def _json_head(self, row: Spooled) -> str:
        """A learner's gradebook.json entry up to its report, which follows (then ``}``)."""
        entry = {"learner": row.learner, "roster": row.roster, "status": row.status, "flags": row.flags,
                 "late": row.late,
                 "score": row.score, "max_score": row.max_score, "problems": row.problems,
                 "duplicates": row.duplicates, "feedback": f"feedback/{self._file_names[row.learner]}"}
        # The report is spliced in as the JSON text it was spooled as, not parsed again.
        return _dumps(entry)[:-1] + ',"report":'

    def close(self) -> None:
        """Remove the staging folder and let DIR go (after finish(), or when the batch is interrupted)."""
        db = getattr(self, "db", None)
        if db is not None:
            if self._durable and not self._finished:
                try:
                    db.commit()  # the learners graded so far, for --resume
                except sqlite3.Error:
                    pass
            db.close()
        if self._durable and self._finished:
            from grader.classroom.resume import discard

            discard(self.out_dir)  # the gradebook is in place: nothing left to resume
        if self._tmp is not None and (self._tmp / _COMMIT).exists():
            # Interrupted between the commit mark and the last rename: finish now, or leave the
            # staging folder for the next batch on DIR to finish (recover()).
            try:
                commit(self._tmp, self.out_dir)
            except OSError:
                self._tmp = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> "Gradebook":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def commit(staging: Path, out_dir: Path) -> None:
    """Put a committed staging folder's feedback folder and gradebook files in place.

    Each step checks what is left to do, so a batch killed half-way through
    is finished by the next one (:func:`recover`) with the same calls.
    """
    new_feedback = staging / "feedback"
    if new_feedback.exists():
        if (out_dir / "feedback").exists() or (out_dir / "feedback").is_symlink():
            # Moved aside into the staging folder, which is removed once the commit is done.
            os.rename(out_dir / "feedback", staging / f"feedback.old-{secrets.token_hex(4)}")
        os.rename(new_feedback, out_dir / "feedback")
    mark = staging / _COMMIT
    extra = [n for n in mark.read_text(encoding="utf-8").splitlines() if n and "/" not in n] if mark.exists() else []
    # gradebook.json last: once it is the new one, everything else already is.
    for name in (*extra, "gradebook.csv", "gradebook.json"):
        if (staging / name).exists():
            os.replace(staging / name, out_dir / name)


def recover(out_dir: Path) -> None:
    """Clean DIR after a batch that was killed: finish its commit if it got that far, else drop its files.

    Called with DIR's lock held, so no other batch is using what it removes.
    """
    for entry in sorted(os.listdir(out_dir)):
        if not _LEFTOVER.match(entry):
            continue
        path = out_dir / entry
        if entry.startswith(_STAGING) and (path / _COMMIT).exists():
            commit(path, out_dir)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    feedback = out_dir / "feedback"
    if feedback.is_dir():
        for entry in os.listdir(feedback):
            if _LEFTOVER.match(entry):
                (feedback / entry).unlink(missing_ok=True)
