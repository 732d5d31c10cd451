"""The files of ``--out DIR``: ``gradebook.csv``, ``gradebook.json`` and ``feedback/<learner>.md``.

Learners are added as they are graded and go straight to a spool (an SQLite
file in a hidden temporary folder inside DIR), so a class of any size is
never held in memory. :meth:`Gradebook.finish` then finds run ids that
appear under more than one learner and streams the spool, in roster order,
into the final files. Every file is first written under a temporary name and
renamed into place, so an interrupted batch leaves the previous gradebook or
the complete new one, never half of one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from grader import __version__
from grader.classroom import spreadsheet
from grader.errors import BadInputError
from grader.rubric import Rubric

try:
    import orjson
except ImportError:  # the standard library writes the same JSON, slower
    orjson = None

SCHEMA_VERSION = 1
#: The gradebook's own CSV columns around the roster's (public interface).
LEADING_COLUMNS = ("learner",)
STATUS_COLUMNS = ("status", "score", "max_score")
#: After the experiments: the marks beside the status (suspect, cross-talk, owner-mismatch), ``;``-separated.
TRAILING_COLUMNS = ("flags",)
#: How every feedback file starts (how a stale one is recognised as ours).
FEEDBACK_TITLE = "# Failure Lab feedback: "
#: How many other learners a duplicated run names before it says "and N more".
MAX_NAMED = 10


def feedback_names(learners: list[str]) -> dict[str, str]:
    """learner -> the file name of their feedback, unique even on a case-insensitive file system.

    macOS and Windows would write ``bob.md`` and ``BOB.md`` to one file, so
    learners whose ids fold to the same name (:func:`grader.learner.learner_key`)
    each get ``<id>-<8 hex of the id>.md``: stable from batch to batch, and
    never another learner's plain name, since a learner id holds no ``-``.
    Everyone else gets ``<id>.md``.
    """
    import hashlib

    from grader.learner import learner_key

    folded: dict[str, int] = {}
    for name in learners:
        folded[learner_key(name)] = folded.get(learner_key(name), 0) + 1
    names = {}
    for name in learners:
        if folded[learner_key(name)] > 1:
            names[name] = f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.md"
        else:
            names[name] = f"{name}.md"
    return names


def csv_columns(rubric: Rubric, roster_columns: list[str]) -> list[str]:
    """The gradebook.csv header: learner, the roster's columns, status, score, max_score, per experiment two, flags."""
    per_experiment = [name for e in rubric.experiments for name in (e.id, f"{e.id}_points")]
    return [*LEADING_COLUMNS, *roster_columns, *STATUS_COLUMNS, *per_experiment, *TRAILING_COLUMNS]


def reserved_columns(rubric: Rubric) -> set[str]:
    """Column names a roster may not use, since the gradebook writes them itself."""
    return set(csv_columns(rubric, [])) - {"learner"}


@lru_cache(maxsize=1)
def gradebook_schema() -> dict[str, Any]:
    """The JSON Schema of ``gradebook.json`` (it refers to the report schema for each learner's report)."""
    return json.loads((Path(__file__).parent.parent / "schemas" / "gradebook.schema.json").read_text())


def gradebook_validator() -> Any:
    """A jsonschema validator for ``gradebook.json`` that resolves its reference to the report schema."""
    import jsonschema
    from referencing import Registry, Resource

    from grader.report import report_schema

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


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    return orjson.loads(text) if orjson is not None else json.loads(text)


def read_learners(path: Path) -> Iterator[dict[str, Any]]:
    """Each learner entry of a ``gradebook.json`` in order, one at a time.

    :meth:`Gradebook.finish` writes the head on the first line and each
    learner on a line of its own (JSON text never holds a raw newline), so
    reading line by line holds one learner's report at a time, not the
    class. A file in any other layout (edited by hand) is read whole.
    """
    with Path(path).open(encoding="utf-8") as handle:
        head = handle.readline()
        if not head.rstrip("\n").endswith('"learners": ['):
            handle.seek(0)
            yield from json.load(handle)["learners"]
            return
        for line in handle:
            line = line.rstrip("\n").rstrip(",")
            if line and line != "]}":
                yield _loads(line)


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
    #: The report as JSON text, or None.
    report_json: str | None
    #: The report in Markdown, or "" when there is no report.
    feedback_body: str
    #: Marks beside the status, e.g. ``suspect``.
    flags: list[str] = field(default_factory=list)
    #: Runs that other learners also handed in (filled in by finish()).
    duplicates: list[dict[str, Any]] = field(default_factory=list)


class Gradebook:
    """Collects graded learners into a spool, then writes the gradebook files in one final pass."""

    def __init__(self, out_dir: Path, rubric: Rubric, *, roster_columns: list[str], source: str) -> None:
        out_dir = Path(out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=".batch-", dir=out_dir))
        except OSError as err:
            raise BadInputError(f"--out {out_dir}: cannot write there ({err.strerror or err})") from None
        self.out_dir = out_dir
        self.rubric = rubric
        self.roster_columns = list(roster_columns)
        self.source = source
        self.db = sqlite3.connect(self._tmp / "spool.sqlite")
        # The spool is scratch: nothing in it must survive a crash, so skip the journal.
        self.db.executescript("""
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
            CREATE TABLE learners (position INTEGER, learner TEXT PRIMARY KEY, status TEXT, score REAL,
                                   max_score REAL, roster TEXT, problems TEXT, cells TEXT, report TEXT,
                                   feedback TEXT, flags TEXT);
            CREATE TABLE runs (run_id TEXT, learner TEXT, workflow_id TEXT);
            CREATE TABLE processes (lkey TEXT, learner TEXT, run_id TEXT, workflow_id TEXT, identity TEXT,
                                    sticky TEXT, events TEXT);
        """)
        self._pending = 0
        self.count = 0

    def add(self, row: Spooled, runs: list[tuple[str, str]], workers: list | None = None) -> None:
        """Spool one learner, the ``(run_id, workflow_id)`` pairs graded for them and their runs' workers.

        ``workers`` are :class:`grader.ownership.RunWorkers`, one per run, kept
        (a few rows a run) so :meth:`cross_talk` can compare the class's processes.
        """
        self.db.execute("INSERT OR REPLACE INTO learners VALUES (?,?,?,?,?,?,?,?,?,?,?)", (
            row.position, row.learner, row.status, row.score, row.max_score, _dumps(row.roster),
            _dumps(row.problems), _dumps(row.cells), row.report_json, row.feedback_body, _dumps(row.flags)))
        if runs:
            self.db.executemany("INSERT INTO runs VALUES (?,?,?)",
                                [(rid, row.learner, wid) for rid, wid in runs if rid])
        if workers:
            from grader.learner import learner_key

            key = learner_key(row.learner)
            self.db.executemany("INSERT INTO processes VALUES (?,?,?,?,?,?,?)", [
                (key, row.learner, w.run_id, w.workflow_id, identity, sticky, _dumps(events))
                for w in workers for identity, events in w.identities.items()
                for sticky in (sorted(w.stickies.get(identity, ())) or [None])])
        self.count += 1
        self._pending += 1
        if self._pending >= 500:
            self.db.commit()
            self._pending = 0

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
        for run_id, holders in by_run.items():
            names = sorted({learner for learner, _ in holders})
            for learner, workflow_id in holders:
                others = [n for n in names if n != learner]
                if not others:
                    continue
                entry = {"run_id": run_id, "workflow_id": workflow_id,
                         "also_under": others[:MAX_NAMED], "others": len(others)}
                if entry not in found.setdefault(learner, []):
                    found[learner].append(entry)
        return found

    def cross_talk(self) -> dict[str, dict[tuple[str, str], list]]:
        """learner -> ``(workflow_id, run_id)`` -> cross-talk findings, for runs sharing a worker process across learners.

        Only processes seen under two learners are looked at again, so a class
        with a queue per learner costs one query. See :func:`grader.ownership.cross_talk`.
        """
        from grader.ownership import RunWorkers, cross_talk

        self.db.commit()
        shared = self.db.execute("""
            SELECT DISTINCT learner, run_id FROM processes WHERE sticky IN (
                SELECT sticky FROM processes WHERE sticky IS NOT NULL GROUP BY sticky
                HAVING COUNT(DISTINCT lkey) > 1)
            OR identity IN (
                SELECT identity FROM processes GROUP BY identity HAVING COUNT(DISTINCT lkey) > 1)""").fetchall()
        if not shared:
            return {}
        runs: dict[tuple[str, str], RunWorkers] = {}
        for learner, run_id in shared:
            for _, _, rid, wid, identity, sticky, events in self.db.execute(
                    "SELECT * FROM processes WHERE learner = ? AND run_id = ?", (learner, run_id)):
                run = runs.setdefault((learner, rid), RunWorkers(learner, wid, rid))
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
        return Spooled(position=r[0], learner=r[1], status=r[2], score=r[3], max_score=r[4],
                       roster=_loads(r[5]), problems=_loads(r[6]), cells=_loads(r[7]),
                       report_json=r[8], feedback_body=r[9] or "", flags=_loads(r[10]))

    def rows(self) -> Iterator[Spooled]:
        """Every spooled learner in gradebook order (roster order, then learner id)."""
        self.db.commit()
        for r in self.db.execute("SELECT * FROM learners ORDER BY position, learner"):
            yield Spooled(position=r[0], learner=r[1], status=r[2], score=r[3], max_score=r[4],
                          roster=_loads(r[5]), problems=_loads(r[6]), cells=_loads(r[7]),
                          report_json=r[8], feedback_body=r[9] or "", flags=_loads(r[10]))

    def finish(self, on_row=None) -> list[Path]:
        """Write gradebook.csv, gradebook.json and the feedback files; return the paths written.

        ``on_row(row)`` sees every learner (with its duplicates filled in) as
        it is written, for the regrade diff and the summary, without a second pass.
        """
        from grader.classroom.feedback import render_feedback

        dupes = self.duplicates()
        file_names = feedback_names([r[0] for r in self.db.execute("SELECT learner FROM learners")])
        feedback_dir = self.out_dir / "feedback"
        feedback_dir.mkdir(exist_ok=True)
        header = csv_columns(self.rubric, self.roster_columns)
        csv_tmp = self._tmp / "gradebook.csv"
        json_tmp = self._tmp / "gradebook.json"
        with csv_tmp.open("w", newline="", encoding=spreadsheet.ENCODING) as csv_file, \
                json_tmp.open("w", encoding="utf-8") as json_file:
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
                json_file.write(("\n" if first else ",\n") + self._json_entry(row))
                first = False
                atomic_write(feedback_dir / file_names[row.learner], render_feedback(row, self.rubric))
                if on_row is not None:
                    on_row(row)
            json_file.write("\n]}\n")
        written = [self.out_dir / "gradebook.json", self.out_dir / "gradebook.csv"]
        for tmp, final in zip((json_tmp, csv_tmp), written):
            os.replace(tmp, final)
        self._remove_stale_feedback(feedback_dir, set(file_names.values()))
        return written

    def _remove_stale_feedback(self, feedback_dir: Path, current: set[str]) -> None:
        """Remove feedback an earlier batch wrote into DIR for a learner this gradebook no longer has.

        Only files this module wrote (they start with its title) are removed, so a
        learner dropped from the roster cannot be sent last week's feedback by mistake.
        """
        with os.scandir(feedback_dir) as entries:
            for entry in entries:
                if not entry.name.endswith(".md") or not entry.is_file():
                    continue
                if entry.name in current:
                    continue
                with open(entry.path, "rb") as f:
                    ours = f.read(len(FEEDBACK_TITLE)) == FEEDBACK_TITLE.encode()
                if ours:
                    os.unlink(entry.path)

    def _csv_row(self, row: Spooled) -> list[Any]:
        cells: list[Any] = [row.learner, *(row.roster.get(c, "") for c in self.roster_columns),
                            row.status, "" if row.score is None else f"{row.score:g}", f"{row.max_score:g}"]
        for exp in self.rubric.experiments:
            status, points, _ = row.cells.get(exp.id) or ("", None, "")
            cells += [status, "" if points is None else f"{points:g}"]
        cells.append("; ".join(row.flags))
        return cells

    def _json_entry(self, row: Spooled) -> str:
        entry = {"learner": row.learner, "roster": row.roster, "status": row.status, "flags": row.flags,
                 "score": row.score, "max_score": row.max_score, "problems": row.problems,
                 "duplicates": row.duplicates}
        text = _dumps(entry)
        # The report is spliced in as the JSON text it was spooled as, not parsed again.
        return text[:-1] + ',"report":' + (row.report_json or "null") + "}"

    def close(self) -> None:
        """Remove the spool (after finish(), or when the batch is interrupted)."""
        self.db.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "Gradebook":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

