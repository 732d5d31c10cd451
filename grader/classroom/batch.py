"""Grade every learner of a class, as their histories arrive, into a gradebook.

:func:`batch_live` reads a server, :func:`batch_files` a submissions folder.
Both give each learner exactly one :class:`LearnerResult` with a status,
hand it to the :class:`~grader.classroom.gradebook.Gradebook` at once (no
class is held in memory) and end with a :class:`BatchResult`: counts, the
learners who need a look, and the regrade diff.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from grader import defaults
from grader.classroom import regrade
from grader.classroom.gradebook import (Gradebook, Spooled, disk_errors, feedback_file_name, feedback_names,
                                        report_json, reserved_columns, spool_records, write_small_file)
from grader.classroom.kept import ReportFile
from grader.classroom.live import DEFAULT_RETRY_SECONDS, Retrier, list_learner_runs, parse_since
from grader.classroom.pacing import DEFAULT_MAX_RPS, DEFAULT_MAX_VISIBILITY_RPS, Pacer
from grader.classroom.progress import Progress
from grader.classroom.roster import MOODLE, Roster, read_roster
from grader.classroom.late import LateHint, is_late
from grader.classroom.uploads import display_name
from grader.classroom.lms import FOLDERS, Download, opened_download, read_download
from grader.classroom.lms_grades import ImportTarget, import_target, write_import
from grader.classroom.submissions import (Submission, bundle_paths, name_problem, read_members,
                                          validate_submission_id)
from grader.engine.classreport import (COPIED_RUN, GRADED, MISSING, NOT_GRADABLE, SIMULATE, STATUSES, SUSPECT,
                                       UNFAMILIAR_CLIENT, UNREADABLE_FILES, Attention, BatchResult, Cell, Change,
                                       ClassRow)
from grader.sources.connect import ConnectionSettings, Target, as_target, connect
from grader.sources.live import listed_label
from grader.errors import BadInputError, HistoryError, ServerUnavailableError
from grader.engine.evidence import build_evidence
from grader.engine.history import History, load_json_text
from grader.engine.integrity import Finding, starter_client, timing_fingerprint
from grader.engine.learner import learner_key, validate_learner_id
from grader.engine.ownership import run_workers
from grader.engine.report import Report, grade
from grader.engine.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from grader.packs import all_packs, rubric_for_workflow_types

if TYPE_CHECKING:  # a batch of files never imports the SDK's client (replay imports what it needs)
    from temporalio.client import Client

DEFAULT_CONCURRENCY = defaults.BATCH_CONCURRENCY


@dataclass
class LearnerResult:
    """One learner's outcome: a status, the report when there is one, and what went wrong."""

    learner: str
    status: str
    report: Report | None = None
    #: One line per problem: a bad file, a run the server would not return, why nothing was graded.
    problems: list[str] = field(default_factory=list)
    #: ``(run_id, workflow_id)`` of every run graded, to find runs handed in twice.
    runs: list[tuple[str, str]] = field(default_factory=list)
    #: The roster's other cells for this learner.
    roster: dict[str, str] = field(default_factory=dict)
    #: Place in the gradebook (roster order); learners not on a roster sort by id after it.
    position: int = 0
    #: Marks for the instructor beside the status: ``suspect`` when a history failed the integrity rules,
    #: ``copied-run``, ``simulate``, ``unfamiliar-client`` (see :data:`FLAGS`), and ``cross-talk`` or
    #: ``owner-mismatch`` when a run is not only the learner's own work (grader.engine.ownership).
    flags: list[str] = field(default_factory=list)
    #: ``(timing fingerprint, workflow_id)`` of every run that has one, to find runs copied between learners.
    timings: list[tuple[str, str]] = field(default_factory=list)
    #: What was handed in, when it is shared with other learners (a group submission); "" for the learner alone.
    holder: str = ""
    #: The worker processes each graded run shows, for finding cross-talk across the class.
    workers: list = field(default_factory=list)
    #: The gradebook's ``late``: True, False, or None when nothing tells (see grader.classroom.late).
    late: bool | None = None


def _flag(result: LearnerResult, flag: str) -> None:
    if flag not in result.flags:
        result.flags.append(flag)


def note_ownership(result: LearnerResult) -> None:
    """Flag a learner with a run that is not their own work, with one problem line per such run and finding.

    The flags are the finding codes: ``cross-talk`` and ``owner-mismatch`` (grader.engine.ownership).
    """
    for entry in result.report.ownership if result.report is not None else ():
        for finding in entry.findings:
            result.problems.append(f"{entry.source} {entry.workflow_id}: {finding.code}: {finding.message}")
            _flag(result, finding.code)


def note_integrity(result: LearnerResult) -> None:
    """Flag a learner whose report holds a suspect history, with one problem line per such history.

    A history whose only finding is ``copied-run`` flags the learner
    ``copied-run``, not ``suspect``: the history itself may be honest.
    """
    for entry in result.report.integrity if result.report is not None else ():
        if entry.suspect:
            codes = sorted({f.code for f in entry.findings})
            if codes == [COPIED_RUN]:
                result.problems.append(f"{entry.source}: copied run: {entry.findings[0].message}")
                _flag(result, COPIED_RUN)
                continue
            result.problems.append(f"{entry.source}: suspect history ({', '.join(codes)}): "
                                   f"{entry.findings[0].message}")
            _flag(result, SUSPECT)
            if COPIED_RUN in codes:
                _flag(result, COPIED_RUN)


def note_provenance(result: LearnerResult) -> None:
    """Flag a learner graded on a run ``grader simulate`` made, naming the experiments concerned."""
    made = [e.id for e in result.report.experiments if e.workflow is not None
            and e.workflow.provenance == "simulate"] if result.report is not None else []
    if made:
        result.problems.append(f"graded on runs made by `grader simulate` (its mark is on the start event): "
                               f"{', '.join(made)}")
        _flag(result, SIMULATE)


#: How many runs of an unfamiliar client a problem line names before it counts the rest.
_NAMED_RUNS = 5


def note_clients(result: LearnerResult, histories: list[History]) -> None:
    """Name the runs started from a client that none of the learner's graded runs came from.

    Anyone who can start workflows on a shared server can start them under
    another learner's id: such runs are graded like the rest (an honest run
    still wins), and named here so the instructor can look. A learner's own
    runs come from their machine (:func:`grader.engine.integrity.starter_client`);
    the runs their grade rests on say which machine that is.
    """
    if result.report is None or len(histories) < 2:
        return
    # The runs the grade rests on: those of passed experiments (a failing decoy chosen for an experiment
    # no run passed must not make its client familiar), else every graded run.
    passed = {(e.workflow.workflow_id, e.workflow.run_id) for e in result.report.experiments
              if e.workflow and e.status == "pass"}
    graded = passed or {(e.workflow.workflow_id, e.workflow.run_id) for e in result.report.experiments
                        if e.workflow}
    familiar = {starter_client(h) for h in histories if (h.workflow_id, h.run_id) in graded}
    strangers = [h for h in histories if starter_client(h) not in familiar]
    if not strangers or not familiar:
        return
    clients = sorted({starter_client(h) or "an unrecorded client" for h in strangers})
    named = ", ".join(h.workflow_id for h in strangers[:_NAMED_RUNS])
    more = f" and {len(strangers) - _NAMED_RUNS} more" if len(strangers) > _NAMED_RUNS else ""
    result.problems.append(f"{len(strangers)} run(s) started from an unfamiliar client ({', '.join(clients[:3])}), "
                           f"not the one the graded runs came from ({', '.join(sorted(familiar)[:3])}): "
                           f"{named}{more}")
    _flag(result, UNFAMILIAR_CLIENT)


def learner_status(*, inputs: int, unreadable: int, unreachable: bool) -> str:
    """The status a learner earns from what happened to their inputs.

    One place decides it, so a further status is one more branch here and
    one more value in :data:`STATUSES`. An integrity verdict is a flag beside
    the status for now (:func:`note_integrity`), not a status of its own.
    """
    if unreachable:
        return NOT_GRADABLE
    if unreadable:
        return UNREADABLE_FILES
    if not inputs:
        return MISSING
    return GRADED


def grade_runs(histories: list[History], rubric: Rubric, *, sources: list[str], errors: list[str],
               findings: dict | None = None, replay: bool = False, credit_simulate: bool = True,
               copied: Mapping[str, list[str]] | None = None, learner: str | None = None,
               claims: dict[str, str] | None = None, folders: dict[str, list[str]] | None = None,
               known: set[str] | None = None, held: dict | None = None) -> Report:
    """A learner's report from their histories (newest first), exactly as ``grader check`` grades them.

    The integrity rules always apply (a suspect history cannot pass);
    ``replay`` also replays each history through the reference workflow, as
    ``grader check --replay`` does (it costs milliseconds a history, which a
    class of thousands feels). ``findings`` are a bundle's hash findings.
    ``copied`` maps the timing fingerprint of a run other learners also
    handed in to those learners: such a run gets a ``copied-run`` finding,
    so it is credited to no one. Without ``credit_simulate`` a run made by
    ``grader simulate`` earns nothing.
    With ``learner``, a run that names another learner (its workflow id,
    its bundle's manifest in ``claims``, its folders in ``folders``, both by
    history source; ids count when in ``known``) is ``owner-mismatch``.
    ``held`` adds findings made across the class, by ``(workflow_id,
    run_id)`` (cross-talk). No run with such a finding passes.
    """
    from grader.api import check_integrity
    from grader.engine.ownership import owner_findings
    from grader.sources.loaded import Loaded

    loaded = Loaded(histories=histories, sources=sources, errors=errors, findings=findings or {})
    more = _copied_findings(histories, copied) if copied else None
    integrity = check_integrity(loaded, replay=replay, more_findings=more)
    holds = []
    for history in histories:
        found = list((held or {}).get((history.workflow_id, history.run_id), ()))
        if learner is not None:
            found += owner_findings(history.workflow_id, learner, manifest_learner=(claims or {}).get(history.source),
                                    folders=(folders or {}).get(history.source, ()), known=known)
        holds.append(found)
    return grade([build_evidence(h) for h in histories], rubric, sources=sources, errors=errors,
                 integrity=integrity, credit_simulate=credit_simulate, held=holds)


def _copied_findings(histories: list[History], copied: Mapping[str, list[str]]) -> list[list[Finding]]:
    found: list[list[Finding]] = []
    for history in histories:
        others = copied.get(timing_fingerprint(history) or "")
        found.append([Finding(COPIED_RUN, f"run {history.run_id} ({history.workflow_id}) has, to the nanosecond, "
                              f"the event timings of a run handed in by {', '.join(others)}: one run cannot be "
                              "two learners' work, so neither is credited", [1])] if others else [])
    return found


def run_timings(histories: list[History]) -> list[tuple[str, str]]:
    """``(timing fingerprint, workflow_id)`` of each history that has a fingerprint (see grader.engine.integrity)."""
    return [(fp, h.workflow_id) for h in histories if (fp := timing_fingerprint(h))]


def _to_row(result: LearnerResult, rubric: Rubric) -> Spooled:
    from grader.formats.markdown import render as render_markdown

    report = result.report
    cells: dict[str, list] = {}
    if report is not None:
        for exp in report.experiments:
            checks = ((c.required, c.status, c.message) for c in exp.checks)
            cells[exp.id] = [exp.status, exp.score, regrade.finding(exp.status, checks, exp.note)]
    max_score = report.max_score if report is not None else _rubric_max(rubric)
    return Spooled(
        position=result.position, learner=result.learner, status=result.status,
        score=report.score if report is not None else None, max_score=max_score,
        roster=result.roster, problems=result.problems, cells=cells, flags=result.flags, late=result.late,
        report_json=report_json(report) if report is not None else None,
        feedback_body=render_markdown(report, level=2) if report is not None else "",
        timings=result.timings, holder=result.holder,
    )


def _rubric_max(rubric: Rubric) -> float:
    return sum(e.max_points for e in rubric.experiments if e.required)


class _Collector:
    """Feeds results to the gradebook, the progress line and the caller's hook as they arrive."""

    def __init__(self, book: Gradebook, rubric: Rubric, progress: Progress,
                 on_result: Callable[[LearnerResult], None] | None) -> None:
        self.book = book
        self.rubric = rubric
        self.progress = progress
        self.on_result = on_result

    def __call__(self, result: LearnerResult) -> None:
        self.book.add(_to_row(result, self.rubric), result.runs, result.workers)
        self.progress.advance()
        if self.on_result is not None:
            self.on_result(result)



def _shared_run(dup: dict) -> str:
    """``run ID also under ada, bob`` (and how many more) for one duplicated run."""
    more = dup["others"] - len(dup["also_under"])
    return f"run {dup['run_id']} also under {', '.join(dup['also_under'])}" + (f" and {more} more" if more > 0 else "")


def _finish(book: Gradebook, *, previous: dict[str, regrade.Before] | None, began: float,
            not_on_roster: list[str], ignored: list[str], retried: int = 0,
            warnings: list[str] | None = None,
            lms_import: tuple[Roster | None, ImportTarget | None, Rubric] | None = None) -> BatchResult:
    counts = {s: 0 for s in STATUSES}
    attention: list[Attention] = []
    changes: list[Change] | None = [] if previous is not None else None
    seen: set[str] = set()
    total_score, scored, max_score = 0.0, 0, 0.0
    learners: list[ClassRow] = []

    def on_row(row: Spooled) -> None:
        nonlocal total_score, scored, max_score
        counts[row.status] = counts.get(row.status, 0) + 1
        max_score = max(max_score, row.max_score)
        if row.score is not None and row.status == GRADED:
            total_score += row.score
            scored += 1
        why = row.problems[0] if row.problems else ""
        if row.duplicates:
            dup = row.duplicates[0]
            why = (why + "; " if why else "") + (f"run {dup['run_id']} also under "
                                                 f"{', '.join(dup['also_under'][:3])}")
        if row.flags and not row.duplicates:
            why = next((p for p in row.problems if "suspect history" in p or ": copied run: " in p
                        or "grader simulate" in p or "unfamiliar client" in p), why)
        if row.status != GRADED or row.duplicates or row.flags:
            attention.append(Attention(row.learner, row.status, why))
        cells = {k: Cell(v[0], v[1], v[2]) for k, v in row.cells.items()}
        learners.append(ClassRow(row.learner, row.status, list(row.flags), row.score, row.max_score, cells,
                                 list(row.problems), [_shared_run(d) for d in row.duplicates], row.late))
        if previous is not None:
            seen.add(row.learner)
            changes.extend(regrade.compare(row.learner, previous.get(row.learner), row.status, cells))

    warnings = list(warnings or [])

    def import_file(staging: Path) -> list[str]:
        """canvas-import.csv or moodle-import.csv, staged with the gradebook so they swap in together."""
        roster, target, rubric = lms_import or (None, None, book.rubric)
        if target is None or roster is None:
            return []
        scores = ((row.learner, row.status, row.score) for row in learners)
        path, said = write_import(roster, target, scores, staging, max_score=max_score or _rubric_max(rubric))
        warnings.extend(said)
        return [path.name] if path is not None else []

    written = book.finish(on_row, also=import_file)
    if previous is not None:
        changes.extend(regrade.gone(previous, seen))
    return BatchResult(
        out_dir=book.out_dir, source=book.source, counts=counts, attention=attention, changes=changes,
        written=written, not_on_roster=not_on_roster, ignored=ignored, elapsed=time.monotonic() - began,
        retried=retried, mean_score=total_score / scored if scored else None, max_score=max_score,
        learners=learners, warnings=warnings,
        experiments=[(e.id, e.title) for e in book.rubric.experiments],
        optional=[e.id for e in book.rubric.experiments if not e.required],
        rubric={"id": book.rubric.id, "version": book.rubric.version},
    )


def _load_inputs(rubric: str | Path | Rubric | None, roster_path: Path | None, previous_path: Path | None,
                 validate: Callable[[str, str], str], *,
                 id_column: str | None = None) -> tuple[Rubric, Roster | None, dict | None]:
    """Everything a batch reads before it grades, so bad input stops it before any work.

    ``rubric=None`` (the packs told from the runs later): the default rubric
    for now, and the roster may use no column any pack's gradebook writes.
    """
    packs = all_packs()  # the packs' checks and names, before the rubric or any history is read
    if rubric is None:
        rubric = load_rubric(DEFAULT_RUBRIC)
        reserved = set().union(*(reserved_columns(load_rubric(str(p.rubric_path))) for p in packs.values()))
    else:
        rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
        reserved = reserved_columns(rubric)
    if id_column is not None and roster_path is None:
        raise BadInputError("--id-column names a column of the roster: pass --roster too")
    roster = (read_roster(roster_path, validate=validate, reserved=reserved, id_column=id_column)
              if roster_path is not None else None)
    previous = regrade.load_previous(previous_path) if previous_path is not None else None
    return rubric, roster, previous


def _resume_key(mode: str, source: str, roster: Path | None, rubric: Rubric, **options) -> str:
    """The fingerprint of what decides every learner's row, for ``--resume`` to match (see grader.classroom.resume)."""
    from grader.classroom.resume import fingerprint

    return fingerprint(mode=mode, source=source, roster=Path(roster) if roster is not None else None,
                       rubric=Path(rubric.path) if rubric.path else f"{rubric.id}@{rubric.version}", **options)


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (the K-th of N parts of a class, counted from 1) as ``(K, N)``; BadInputError otherwise."""
    k, sep, n = text.partition("/")
    try:
        part, parts = int(k), int(n)
    except ValueError:
        part, parts = 0, 0
    if not sep or not 1 <= part <= parts:
        raise BadInputError(f"--shard {text!r}: give K/N, the K-th of N parts of the class, with 1 <= K <= N "
                            "(for example --shard 1/4 on the first of four machines)")
    return part, parts


def in_shard(learner: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``learner`` belongs to part K of N: a stable hash of the id, so every machine agrees.

    The id is compared as :func:`grader.engine.learner.learner_key` spells it,
    so ``Olga`` and ``olga`` land in the same part.
    """
    if shard is None:
        return True
    part, parts = shard
    digest = hashlib.sha256(learner_key(learner).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % parts == part - 1


def _left_to_grade(plan: list, book: Gradebook, progress: Progress) -> list:
    """``plan`` without the learners the spool already holds; starts the progress count with them."""
    if book.note:
        progress.say(book.note)
    done = book.finished_learners() if book.resumed else set()
    left = [item for item in plan if item[1] not in done]
    progress.start(len(plan), resumed=len(plan) - len(left))
    return left


# --- live ------------------------------------------------------------------


def validate_live_id(value: str, what: str) -> str:
    """A roster's learner id for a live batch: the rule every id meets, then the learner-id rule.

    The first half is :func:`grader.classroom.submissions.name_problem`, the
    same check a roster of files gets, so a path, a NUL or an over-long id
    is refused with the same words whichever way the class is graded.
    """
    problem = name_problem(value)
    if problem:
        from grader.classroom.uploads import display_name

        raise BadInputError(f"{what} {display_name(value)!r} {problem}: give the id that starts the "
                            "learner's workflow ids")
    return validate_learner_id(value, what=what)


async def batch_live(
    out_dir: Path,
    connection: ConnectionSettings | Target | str | None = None,
    namespace: str | None = None,
    *,
    roster: Path | None = None,
    previous: Path | None = None,
    rubric: str | Path | Rubric | None = DEFAULT_RUBRIC,
    concurrency: int = DEFAULT_CONCURRENCY,
    since: str | datetime | None = defaults.BATCH_SINCE,
    retry_seconds: float = DEFAULT_RETRY_SECONDS,
    replay: bool = True,
    progress: Progress | None = None,
    client: Client | None = None,
    on_result: Callable[[LearnerResult], None] | None = None,
    id_column: str | None = None,
    lms_column: str | None = None,
    due: datetime | None = None,
    resume: bool = False,
    credit_simulate: bool = True,
    max_rps: float = DEFAULT_MAX_RPS,
    max_visibility_rps: float = DEFAULT_MAX_VISIBILITY_RPS,
    shard: tuple[int, int] | None = None,
) -> BatchResult:
    """Grade a class from a server into a gradebook in ``out_dir``.

    History reads go out at most ``max_rps`` a second and listing pages at
    most ``max_visibility_rps`` (:mod:`grader.classroom.pacing`); when the
    server throttles anyway, the pace halves and ``progress`` says so.
    ``shard=(K, N)`` grades only the learners of part K of N (:func:`in_shard`).

    ``connection`` is where, as :func:`grader.sources.connect.as_target` takes it (a
    plain string is an address). Learners are the roster's, or without one every learner id that owns a
    workflow of the pack's type. Every run each learner started since
    ``since`` (a duration back from now such as ``120d``, a date, or None for
    all) is read, with at most ``concurrency`` reads in flight over one
    client, and graded as soon as they arrive; runs started from a client
    none of the learner's graded runs came from are named (``unfamiliar-client``). ``on_result`` sees each learner as it is graded.
    With ``resume``, the learners an interrupted batch on ``out_dir`` had
    graded are kept and only the others are read (see
    :mod:`grader.classroom.resume`); its not-gradable learners are tried again.
    ``rubric=None`` lists every pack's workflows and grades with the rubric
    of the packs the listed runs belong to (joined with ``+`` when several:
    :func:`grader.packs.rubric_for_workflow_types`), as a folder of
    submissions is graded pack by pack.
    Raises :class:`BadInputError` for a bad roster, rubric or previous
    gradebook and :class:`ServerUnavailableError` when no server answers.
    """
    from temporalio.service import RPCError

    began = time.monotonic()
    progress = progress or Progress(quiet=True)
    told = rubric is None  # the packs are told from the runs listed
    rubric, class_roster, before = _load_inputs(rubric, roster, previous, validate_live_id, id_column=id_column)
    target_column = import_target(class_roster, lms_column)
    if concurrency < 1:
        raise BadInputError("--concurrency must be at least 1")
    since_at = parse_since(since) if isinstance(since, str) else since
    target = as_target(connection, namespace)
    address, namespace = target.address, target.namespace
    # One retrier for every call, the first connection included: a server that stalls (paused,
    # overloaded) is waited out within retry_seconds, with a line on stderr, instead of exit 3.
    if max_rps <= 0 or max_visibility_rps <= 0:
        raise BadInputError("--max-rps and --max-visibility-rps must be above 0")
    retrier = Retrier(retry_seconds, notify=progress.say)
    client = client or await retrier.call(lambda: connect(target))

    def slowed(what: str) -> Callable[[float], None]:
        return lambda rate: progress.say(f"the server is rate-limiting {what} (ResourceExhausted): slowing to "
                                         f"{rate:.0f} a second")

    reads = Pacer(max_rps, on_slow=slowed("history reads"))
    listing = Pacer(max_visibility_rps, burst=1, on_slow=slowed("listing pages"))
    wanted = set(class_roster.learners) if class_roster else None
    seen: set[str] = set()
    listed_for = None if told else rubric  # None: every pack's workflows are listed
    try:
        runs = await list_learner_runs(client, retrier, target, learners=wanted, since=since_at, pacer=listing,
                                      rubric=listed_for, types_seen=seen)
    except (RPCError, ServerUnavailableError) as err:
        raise ServerUnavailableError(f"the server at {address} did not list the workflows of namespace "
                                     f"{namespace!r} ({err}), even after retrying") from err
    # The listing asked only for the roster's learners: others on a shared server are other classes.
    if class_roster is not None:
        plan = [(i, name, cells, runs.get(name, []))
                for i, (name, cells) in enumerate(class_roster.learners.items())]
    else:
        plan = [(0, name, {}, runs[name]) for name in sorted(runs)]
        if not plan:
            raise BadInputError(f"no learner found: no {listed_label(listed_for)} workflow of namespace "
                                f"{namespace!r} at {address} has an id of the form <learner>-...: pass "
                                "--roster, or check --address and --namespace")
    if told:  # graded pack by pack: the rubric of the packs whose runs were listed
        rubric = load_rubric(rubric_for_workflow_types(seen) or DEFAULT_RUBRIC)
    plan = [item for item in plan if in_shard(item[1], shard)]
    source = f"server {address}/{namespace}"
    columns = class_roster.columns if class_roster else []
    key = _resume_key("live", source, roster, rubric, replay=replay, since=str(since), id_column=id_column,
                      lms_column=lms_column, due=due, credit_simulate=credit_simulate, shard=shard)
    with Gradebook(out_dir, rubric, roster_columns=columns, source=source, resume_key=key, resume=resume,
                   retry_statuses=(NOT_GRADABLE,)) as book:
        everyone, plan = plan, _left_to_grade(plan, book, progress)
        marked = class_roster.late if class_roster is not None and class_roster.kind == MOODLE else None
        collect = _Collector(book, rubric, progress, on_result)
        await _grade_live(plan, client=client, target=target, rubric=rubric, concurrency=concurrency,
                          retrier=retrier, emit=collect, replay=replay, due=due, marked=marked,
                          credit_simulate=credit_simulate, pacer=reads)
        # Copies and cross-talk are known only once the whole class is read: grade those learners again,
        # the copied runs and the runs a classmate's worker did work in now credited to no one.
        # A learner a resumed batch graded before counts too: the whole class is looked at.
        copies = book.copied_runs()
        held = book.cross_talk()
        if copies or held:
            again = [item for item in everyone if item[1] in copies or item[1] in held]

            def regraded(result: LearnerResult) -> None:
                if result.status == NOT_GRADABLE and result.learner in held:
                    # The server went away since: hold back what the first grade credited.
                    result = withhold_spooled(book, result.learner, held[result.learner], rubric)
                book.replace(_to_row(result, rubric))

            await _grade_live(again, client=client, target=target, rubric=rubric, concurrency=concurrency,
                              retrier=retrier, emit=regraded, replay=replay, due=due, marked=marked,
                              credit_simulate=credit_simulate, copied=copies, pacer=reads,
                              held={k: v for name in held for k, v in held[name].items()})
        progress.close()
        return _finish(book, previous=before, began=began, not_on_roster=[], ignored=[],
                       retried=retrier.retried, warnings=class_roster.warnings if class_roster else [],
                       lms_import=(class_roster, target_column, rubric))


async def _grade_live(plan: list, *, client: Client, target: Target, rubric: Rubric, concurrency: int,
                      retrier: Retrier, emit: Callable[[LearnerResult], None], replay: bool = False,
                      due: datetime | None = None, marked: dict[str, bool] | None = None,
                      credit_simulate: bool = True, copied: Mapping[str, Mapping[str, list[str]]] | None = None,
                      pacer: Pacer | None = None, held: dict | None = None) -> None:
    """Grade every learner of ``plan`` with ``concurrency`` reads in flight, emitting each when done.

    Each read first takes its turn from ``pacer``.

    ``copied`` is :meth:`Gradebook.copied_runs`: each learner's runs that others handed in too.
    ``held`` holds findings made across the class (cross-talk) by ``(workflow_id, run_id)``.
    """
    import asyncio  # here, not at the top: a batch of files never needs it (about 20 ms to import)

    from temporalio.service import RPCError, RPCStatusCode

    from grader.sources.live import fetch_run

    gate = asyncio.Semaphore(concurrency)
    queue: asyncio.Queue = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def read(workflow_id: str, run_id: str):
        async with gate:
            # Without the SDK's retries: a throttled read comes back to the Retrier, which paces and says so.
            return await retrier.call(lambda: fetch_run(client, workflow_id, run_id, target=target,
                                                        sdk_retries=False), pacer=pacer)

    async def learner(position: int, name: str, cells: dict, targets: list) -> LearnerResult:
        result = LearnerResult(name, MISSING, roster=cells, position=position)
        if not targets:
            result.problems.append(f"no {listed_label(rubric)} workflow with an id starting {name}- was found")
            return result
        fetched = await asyncio.gather(*(read(w, r) for w, r in targets), return_exceptions=True)
        histories, errors, unreachable = [], [], False
        for (workflow_id, _), item in zip(targets, fetched):
            if isinstance(item, (RPCError, ServerUnavailableError)):
                unreachable = True
                if isinstance(item, RPCError) and item.status == RPCStatusCode.NOT_FOUND:
                    result.problems.append(f"workflow {workflow_id}: listed, but the server no longer has it")
                else:
                    why = item.message if isinstance(item, RPCError) else str(item)
                    result.problems.append(f"workflow {workflow_id}: the server did not return it "
                                           f"({why}), even after retrying")
            elif isinstance(item, HistoryError):
                errors.append(str(item))
            elif isinstance(item, BaseException):
                raise item
            else:
                histories.append(item)
                result.runs.append((item.run_id, workflow_id))
        # A run the server returned but that is no history of the graded type is the learner's, so it is
        # graded (and named), unlike a run the server could not return.
        result.status = learner_status(inputs=len(histories) + len(errors), unreadable=0,
                                       unreachable=unreachable)
        if result.status != NOT_GRADABLE:
            result.problems += errors
            result.timings = run_timings(histories)
            # Ids match case-insensitively: a roster naming bob and BOB reads the same runs for both.
            result.holder = learner_key(name)
            result.report = grade_runs(histories, rubric, sources=[f"server {target.address}/{target.namespace}"],
                                       errors=errors, replay=replay, credit_simulate=credit_simulate,
                                       copied=(copied or {}).get(name), learner=name, held=held)
            result.workers = [run_workers(h, name) for h in histories]
            note_integrity(result)
            note_provenance(result)
            note_clients(result, histories)
            note_ownership(result)
            hint = LateHint(marked=marked.get(name, False)) if marked is not None else None
            result.late = is_late(result.report, histories, due=due, hint=hint)
        return result

    async def worker() -> None:
        while True:
            try:
                position, name, cells, targets = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            emit(await learner(position, name, cells, targets))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(plan)) or 1)))


# --- files -----------------------------------------------------------------


def batch_files(
    submissions: Path,
    out_dir: Path,
    *,
    roster: Path | None = None,
    previous: Path | None = None,
    rubric: str | Path | Rubric = DEFAULT_RUBRIC,
    replay: bool = True,
    jobs: int | None = None,
    progress: Progress | None = None,
    on_result: Callable[[LearnerResult], None] | None = None,
    id_column: str | None = None,
    lms_column: str | None = None,
    due: datetime | None = None,
    resume: bool = False,
    credit_simulate: bool = True,
    shard: tuple[int, int] | None = None,
) -> BatchResult:
    """Grade a submissions folder (one subfolder or ``.zip`` per learner) into a gradebook in ``out_dir``.

    Learners are graded in ``jobs`` processes (default: one per CPU) when the
    class is large enough to gain from it; ``on_result`` keeps it in this one.
    With a roster, its learners are graded (a learner with no submission is
    ``missing``) and other submissions are listed in the result, not graded.
    With ``resume``, the learners an interrupted batch on ``out_dir`` had
    graded are kept and only the others are graded (see :mod:`grader.classroom.resume`).
    ``shard=(K, N)`` grades only the learners of part K of N (:func:`in_shard`).
    Raises :class:`BadInputError` for a bad folder, roster, rubric or previous gradebook.
    """
    began = time.monotonic()
    progress = progress or Progress(quiet=True)

    rubric, class_roster, before = _load_inputs(rubric, roster, previous, validate_submission_id,
                                                id_column=id_column)
    target_column = import_target(class_roster, lms_column)
    with opened_download(submissions) as folder:
        download = read_download(folder, class_roster)
        found = download.submissions
        if class_roster is not None:
            if download.layout == FOLDERS:
                found = match_submissions(list(class_roster.learners), found)
                taken = {learner_key(name) for name in class_roster.learners}
                download.not_on_roster = sorted(n for n in download.submissions if learner_key(n) not in taken)
            plan = [(i, name, cells, found.get(name), _hint(download, name))
                    for i, (name, cells) in enumerate(class_roster.learners.items())]
        else:
            plan = [(0, name, None, found[name], _hint(download, name)) for name in sorted(found)]
            if not plan:
                raise BadInputError(f"--submissions {submissions}: no learner folder or .zip in it: pass the "
                                    "folder that holds one subfolder or .zip per learner, or an LMS's download")
        plan = [item for item in plan if in_shard(item[1], shard)]
        columns = class_roster.columns if class_roster else []
        jobs = jobs or os.cpu_count() or 1
        source = f"submissions {Path(submissions).name}" + (f" ({download.layout} download)"
                                                              if download.layout != FOLDERS else "")
        key = _resume_key("files", str(Path(submissions).resolve()), roster, rubric, replay=replay,
                          id_column=id_column, lms_column=lms_column, due=due, credit_simulate=credit_simulate,
                          shard=shard)
        # Everyone a workflow id or a folder could name: the roster's learners and every submission's.
        known = {learner_key(name) for name in (*download.submissions,
                                                *(class_roster.learners if class_roster else ()))}
        with Gradebook(out_dir, rubric, roster_columns=columns, source=source, resume_key=key,
                       resume=resume) as book:
            everyone, plan = plan, _left_to_grade(plan, book, progress)
            collect = _Collector(book, rubric, progress, on_result)
            if jobs > 1 and on_result is None and rubric.path and len(plan) >= 2 * _CHUNK:
                _grade_files_in_processes(plan, book, rubric, jobs=jobs, replay=replay, progress=progress,
                                          due=due, credit_simulate=credit_simulate, known=known,
                                          learners=[item[1] for item in everyone])
            else:
                for position, name, cells, submission, hint in plan:
                    collect(grade_submission(name, submission, rubric, roster=cells, position=position,
                                             replay=replay, due=due, late_hint=hint,
                                             credit_simulate=credit_simulate, known=known))
            copies = book.copied_runs()
            held = book.cross_talk()
            # Copies and cross-talk are known only once the whole class is read: grade those learners
            # again, those runs now credited to no one (a learner a resumed batch graded before counts too).
            for position, name, cells, submission, hint in everyone:
                if name in copies or name in held:
                    book.replace(_to_row(grade_submission(
                        name, submission, rubric, roster=cells, position=position, replay=replay, due=due,
                        late_hint=hint, credit_simulate=credit_simulate, copied=copies.get(name), known=known,
                        held=held.get(name)), rubric))
            progress.close()
            result = _finish(book, previous=before, began=began, not_on_roster=download.not_on_roster,
                             ignored=download.ignored, warnings=class_roster.warnings if class_roster else [],
                             lms_import=(class_roster, target_column, rubric))
            result.unmatched = download.unmatched
            return result


def _hint(download: Download, learner: str) -> LateHint | None:
    """What the download says about a learner's lateness (Canvas's _LATE, Moodle's Status, Gradescope's time)."""
    marked, when = download.late.get(learner), download.submitted_at.get(learner)
    return LateHint(marked, when) if marked is not None or when is not None else None


def match_submissions(names: list[str], found: dict[str, Submission]) -> dict[str, Submission]:
    """Each roster name's submission, matched case-insensitively (roster ``Olga``, folder ``olga``).

    A name matching several entries (``olga/`` and ``OLGA.zip``) gets all of
    them, as a learner with a folder and a zip does; the roster's spelling is kept.
    """
    by_key: dict[str, list[Submission]] = {}
    for entry_name in sorted(found):
        by_key.setdefault(learner_key(entry_name), []).append(found[entry_name])
    matched = {}
    for name in names:
        entries = by_key.get(learner_key(name))
        if not entries:
            continue
        if len(entries) == 1 and entries[0].learner == name:
            matched[name] = entries[0]
            continue
        matched[name] = Submission(name, entries[0].folder, [n for e in entries for n in e.names])
    return matched


#: Learners a grading process takes at a time.
_CHUNK = 64


@dataclass(frozen=True)
class _ChunkJob:
    """What every chunk of one multi-process batch shares, handed to each grading process once, as it starts."""

    #: The private folder the rows files go through (see :func:`_grade_files_in_processes`).
    rows_dir: str
    rubric_path: str
    replay: bool
    due: datetime | None
    credit_simulate: bool
    known: set[str] | None
    #: The gradebook's staging feedback folder: each learner's feedback file is written there.
    feedback_dir: str
    #: learner -> feedback file name, for the few learners whose name is not :func:`feedback_file_name`'s
    #: (ids that fold to one name: :func:`grader.classroom.gradebook.feedback_names`).
    renamed: dict[str, str]
    #: Where each grading process keeps its learners' reports (:attr:`Gradebook.reports_folder`).
    reports_dir: str

    def file_name(self, learner: str) -> str:
        """The name of ``learner``'s feedback file, as the gradebook names it for this class."""
        return self.renamed.get(learner) or feedback_file_name(learner)


#: In a grading process: the batch's :class:`_ChunkJob` (set by :func:`_start_grading_process`).
_JOB: _ChunkJob | None = None
#: In a grading process: the file its learners' reports go to (opened with the first one).
_REPORTS: ReportFile | None = None
#: In a grading process of a batch that replays: the shapes it took as clean, for the replayer.
_DEFERRED = None


def _grade_files_in_processes(plan: list, book: Gradebook, rubric: Rubric, *, jobs: int, replay: bool,
                              progress: Progress, due: datetime | None = None, credit_simulate: bool = True,
                              known: set[str] | None = None, learners: list[str] | None = None) -> None:
    """Grade ``plan`` in ``jobs`` processes, a chunk of learners each; only finished rows come back.

    Grading is pure CPU, so one process per core is what makes a class of
    10,000 fit in seconds. At most two chunks per process are in flight, so
    memory stays bounded however large the class.

    Rows come back through files in a private folder, and only the file's
    name through the pool's pipe: a process killed while it writes a large
    result into the pipe would leave half a message there, and the pool
    would wait for the rest forever. A name is shorter than ``PIPE_BUF``, so
    the kernel writes it whole or not at all.

    Each grading process also writes its learners' feedback files into the
    gradebook's staging folder, named as the gradebook names them for the
    class (``learners``: every learner of the class), and turns its rows into
    the spool's records: the parent only inserts them, and its final pass
    writes only the feedback that changed since (see :meth:`Gradebook.finish`).
    """
    import tempfile

    from grader.classroom.replayer import Replayer

    # With replay, the grading processes defer each new shape to one replayer process, started with
    # the first of them (see grader.classroom.replayer): neither this process nor they import the SDK.
    # What _grade_chunk imports on its first learner, imported once here rather than in every process.
    import grader.api  # noqa: F401
    import grader.classroom.feedback  # noqa: F401
    import grader.lab.processes  # noqa: F401
    import grader.formats.markdown  # noqa: F401
    import grader.sources.bundles  # noqa: F401
    names = feedback_names(learners if learners is not None else [item[1] for item in plan])
    renamed = {learner: name for learner, name in names.items() if name != feedback_file_name(learner)}
    with tempfile.TemporaryDirectory(prefix="grader-rows-") as rows_dir:
        job = _ChunkJob(rows_dir, rubric.path, replay, due, credit_simulate, known, str(book.staged_feedback),
                        renamed, str(book.reports_folder))
        # A grading process that cannot write a feedback file for a full disk says so as the parent does.
        replayer = Replayer()
        try:
            with disk_errors(book.out_dir):
                _grade_in_pools(plan, book, rubric, jobs=jobs, progress=progress, job=job, replayer=replayer)
                _last_verdicts(book, rubric, progress, job, replayer)
        finally:
            replayer.close()


def _last_verdicts(book: Gradebook, rubric: Rubric, progress: Progress, job: _ChunkJob, replayer) -> None:
    """Once every learner is graded: wait for the shapes still replaying, spool the learners they confirm,
    and grade again, replaying each of their histories here, those whose shape did not replay clean."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from grader.classroom.replayer import LAST_VERDICTS_SECONDS

    while replayer.running:
        done, _ = wait(replayer.running, timeout=LAST_VERDICTS_SECONDS, return_when=FIRST_COMPLETED)
        if not done:
            break  # no verdict for that long: the replayer is stuck, and what it holds is given up
        _spool_held(book, progress, replayer.settle(done))
    _spool_held(book, progress, replayer.give_up())
    replayer.close()
    for position, name, cells, submission, hint in replayer.again:
        # The grading process wrote this learner's feedback from the grade now replaced.
        book.drop_staged_feedback(name, job.file_name(name))
        result = grade_submission(name, submission, rubric, roster=cells, position=position, replay=True,
                                  due=job.due, late_hint=hint, credit_simulate=job.credit_simulate,
                                  known=job.known)
        book.add(_to_row(result, rubric), result.runs, result.workers)
        progress.advance(1)


def _spool_held(book: Gradebook, progress: Progress, ready: list) -> None:
    """Spool learners held for their shapes' verdicts, now confirmed."""
    if ready:
        book.add_records([held.record for held in ready], {held.item[1]: held.feedback for held in ready})
        progress.advance(len(ready))


def _grade_in_pools(plan: list, book: Gradebook, rubric: Rubric, *, jobs: int, progress: Progress,
                    job: _ChunkJob, replayer) -> None:
    """:func:`_grade_files_in_processes`'s work: chunks on a pool, lost ones again, then one by one."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from grader.interrupts import signals_held

    chunks = [plan[i:i + _CHUNK] for i in range(0, len(plan), _CHUNK)]
    lost: list = []  # chunks whose grading process died (the kernel's OOM killer, a stray kill -9)
    for attempt in range(2):
        pool = _pool(jobs, job)
        try:
            running: dict = {}
            for chunk in chunks:
                try:
                    with signals_held():  # a submit may fork a grading process
                        running[pool.submit(_grade_chunk, chunk)] = chunk
                except BrokenProcessPool:
                    # It broke since the last look (a process killed between two chunks): what it
                    # finished is kept, the rest is graded again, and a new pool takes over.
                    lost.append(chunk)
                    pool = _collect(wait(running)[0], running, book, progress, lost, pool, jobs, job, replayer,
                                    broken=True)
                    continue
                while len(running) >= 2 * jobs:
                    pool = _collect(_wait_any(running, replayer), running, book, progress, lost, pool, jobs, job,
                                    replayer)
            while running:
                pool = _collect(_wait_any(running, replayer), running, book, progress, lost, pool, jobs, job,
                                replayer)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if not lost:
            return
        # Graded again on a new pool: a process killed from outside loses nobody their grade.
        chunks, lost = lost, []
    for chunk in chunks:
        # Lost twice: one learner per process, so a learner whose files kill a grading process is
        # the only one who pays for it (their row says so); everyone else is graded.
        for item in chunk:
            with _pool(1, job) as alone:
                try:
                    with signals_held():
                        future = alone.submit(_grade_chunk, [item])
                    _spool_chunk([item], future.result(), book, progress, replayer)
                except BrokenProcessPool:
                    # The process may have died half-way through the learner's feedback file.
                    book.drop_staged_feedback(item[1], job.file_name(item[1]))
                    book.add_records([_died_record(item, rubric)], {})
                    progress.advance(1)


def _pool(jobs: int, job: _ChunkJob):
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, initializer=_start_grading_process, initargs=(os.getpid(), job))


def _start_grading_process(parent: int, job: _ChunkJob) -> None:
    """In a new grading process: keep the batch's shared arguments, and end with the batch.

    Given once per process (forked processes inherit them without pickling),
    not with every chunk: the class's ``known`` ids alone are thousands of names.
    """
    global _JOB, _REPORTS, _DEFERRED
    from grader.lab.processes import die_with_parent

    _JOB = job
    _REPORTS = ReportFile(job.reports_dir)
    if job.replay:
        from grader.lab.replay import Deferred, defer_replays

        _DEFERRED = Deferred()
        defer_replays(_DEFERRED)  # new shapes go to the batch's replayer (grader.classroom.replayer)
    die_with_parent(parent)


def _wait_any(running: dict, replayer) -> set:
    """The grading chunks and shape replays done, once at least one is."""
    from concurrent.futures import FIRST_COMPLETED, wait

    return wait([*running, *replayer.running], return_when=FIRST_COMPLETED)[0]


def _collect(done: Iterable, running: dict, book: Gradebook, progress: Progress, lost: list, pool, jobs: int,
             job: _ChunkJob, replayer, *, broken: bool = False):
    """Spool the finished chunks; note the chunks a dead grading process took with it, and start a new pool.

    ``done`` may hold shape replays too: the learners they confirm are spooled.
    ``broken``: the pool is known to be broken already (it refused a chunk).
    """
    done = set(done)
    _spool_held(book, progress, replayer.settle(done))
    # In the order the chunks were handed out, not the set's: a grading process names a shape with its
    # history in the first chunk that relied on it, and refers to it by number in the chunks after.
    # Its chunks finish in the order it took them, so the earlier one is done, and spooled, first.
    for future in [future for future in running if future in done]:
        chunk = running.pop(future)
        try:
            path = future.result()
        except BrokenProcessPool:
            lost.append(chunk)
            broken = True
            continue
        _spool_chunk(chunk, path, book, progress, replayer)
    if not broken:
        return pool
    # A dead process breaks the whole pool: every chunk still in it is graded again, on a new one.
    lost.extend(running.values())
    running.clear()
    pool.shutdown(wait=False, cancel_futures=True)
    return _pool(jobs, job)


def _spool_chunk(chunk: list, path: str, book: Gradebook, progress: Progress, replayer) -> None:
    """Spool a graded chunk's learners whose shapes are confirmed; hold the others for their verdicts."""
    from grader.classroom.replayer import PENDING, Held

    records, feedback, (process, new, used) = _rows_from(path)
    replayer.learn(process, new)
    now, now_feedback = [], {}
    for item, record, numbers in zip(chunk, records, used):
        name = item[1]
        shapes = replayer.shapes_of(process, numbers)
        verdict = replayer.verdict(shapes)
        if verdict:
            now.append(record)
            now_feedback[name] = feedback[name]
        elif verdict is PENDING:
            replayer.held.append(Held(item, record, feedback[name], shapes))
        else:
            replayer.again.append(item)
    if now:
        book.add_records(now, now_feedback)
        progress.advance(len(now))


def _died_record(item: tuple, rubric: Rubric) -> tuple:
    position, name, cells, *_ = item
    result = LearnerResult(name, UNREADABLE_FILES, roster=cells or {}, position=position)
    result.problems.append("the grading process died while reading these files (out of memory?): hand in only "
                           "the exported histories")
    return spool_records(_to_row(result, rubric), [], [])


def _grade_chunk(chunk: list) -> str:
    """In a grading process: each learner of ``chunk`` graded and spooled as records; the rows file's name.

    Each learner's feedback file is written into the staging folder first,
    then the records and the names of those files are pickled into a file of
    the rows folder for :func:`_rows_from` to read: see
    :func:`_grade_files_in_processes`. Its name is returned only once it is
    whole; what a killed process half wrote goes with the folder, and its
    learners (and their feedback files) are graded again.
    """
    import pickle
    import tempfile

    from grader.classroom.feedback import render_feedback

    job, deferred = _JOB, _DEFERRED
    rubric = _process_rubric(job.rubric_path)
    records, feedback, used = [], {}, []
    for position, name, cells, submission, hint in chunk:
        result = grade_submission(name, submission, rubric, roster=cells, position=position, replay=job.replay,
                                  due=job.due, late_hint=hint, credit_simulate=job.credit_simulate,
                                  known=job.known)
        row = _to_row(result, rubric)
        # As the gradebook's final pass would write it for a learner who shares no run with another
        # (it rewrites the few who do, and those graded again once the class is read).
        # "w": a chunk graded again after its process died overwrites what that process half wrote.
        file_name = job.file_name(name)
        write_small_file(os.path.join(job.feedback_dir, file_name), render_feedback(row, rubric))
        feedback[name] = file_name
        # The report and its Markdown stay in this process's file: the parent spools where they lie.
        _REPORTS.keep(row)
        records.append(spool_records(row, result.runs, result.workers))
        used.append(deferred.take_used() if deferred is not None else [])
    # The shapes this process relied on first in this chunk, one history each, for the replayer.
    shapes = (os.getpid(), deferred.take_new() if deferred is not None else {}, used)
    fd, path = tempfile.mkstemp(dir=job.rows_dir, suffix=".rows")
    with os.fdopen(fd, "wb") as handle:
        pickle.dump((records, feedback, shapes), handle, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _rows_from(path: str) -> tuple[list[tuple], dict[str, str], tuple]:
    """The spool records, feedback file names and shapes relied on that a grading process left in ``path``
    (see :func:`_grade_chunk`); the file is removed."""
    import pickle

    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    finally:
        os.unlink(path)


@lru_cache(maxsize=4)
def _process_rubric(path: str) -> Rubric:
    all_packs()  # a pool process starts with none loaded (--pack-path reaches it through the environment)
    return load_rubric(path)


#: Problem lines kept per learner; the rest are counted in one more line (a learner's 100,000 bad
#: files must not make a 100,000-line feedback file, or a gradebook that takes minutes to write).
MAX_PROBLEMS = 50


def cap_lines(lines: list[str], most: int = MAX_PROBLEMS) -> list[str]:
    """``lines`` with at most ``most`` kept and a last line counting the others."""
    if len(lines) <= most:
        return lines
    return lines[:most] + [f"... and {len(lines) - most} more problems like these (the first {most} are listed)"]


def grade_submission(learner: str, submission: Submission | None, rubric: Rubric, *,
                     roster: dict[str, str] | None = None, position: int = 0, replay: bool = False,
                     due: datetime | None = None, late_hint: LateHint | None = None,
                     credit_simulate: bool = True, copied: Mapping[str, list[str]] | None = None,
                     known: set[str] | None = frozenset(), held: dict | None = None) -> LearnerResult:
    """Grade one learner's folder and/or zip; a file that cannot be read is named, the rest graded.

    ``due`` and ``late_hint`` (what the LMS said) decide the learner's ``late``
    (:func:`grader.classroom.late.is_late`).

    A folder or zip with a ``manifest.json`` is a bundle from `grader export`
    and is read with its hashes checked (:func:`grader.sources.bundles.read_bundle`).
    ``copied`` and ``credit_simulate`` are as for :func:`grade_runs`.
    A run whose bundle manifest, workflow id or folder names another learner
    (ids count when their key is in ``known``, the class) is
    ``owner-mismatch``; ``held`` adds cross-talk found across the class.
    Whatever the upload holds, the answer is this learner's row: a failure
    of ours on their files makes them ``unreadable-files`` with the reason,
    never stops the class.
    """
    try:
        return _grade_submission(learner, submission, rubric, roster=roster, position=position, replay=replay,
                                 due=due, late_hint=late_hint, credit_simulate=credit_simulate, copied=copied,
                                 known=known, held=held)
    except Exception as err:  # noqa: BLE001 - one learner's upload must never take the class down
        from grader.errors import write_crash_report

        try:
            where = f"; details in {write_crash_report(err)}"
        except OSError:
            where = ""
        what = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        result = LearnerResult(learner, UNREADABLE_FILES, roster=roster or {}, position=position)
        result.problems.append(f"the grader could not read these files ({what}): a fault of the grader, "
                               f"please report it{where}")
        return result


def _grade_submission(learner: str, submission: Submission | None, rubric: Rubric, *,
                      roster: dict[str, str] | None, position: int, replay: bool,
                      due: datetime | None = None, late_hint: LateHint | None = None,
                      credit_simulate: bool = True, copied: Mapping[str, list[str]] | None = None,
                      known: set[str] | None = frozenset(), held: dict | None = None) -> LearnerResult:
    from grader.sources.bundles import read_bundle

    result = LearnerResult(learner, MISSING, roster=roster or {}, position=position)
    if submission is None:
        result.problems.append("no folder or zip was handed in")
        return result
    histories: list[History] = []
    sources: list[str] = []
    errors: list[str] = list(submission.problems)
    findings: dict = {}
    claims: dict[str, str] = {}
    folders: dict[str, list[str]] = {}
    bundles = bundle_paths(submission)
    for path in bundles:
        loaded = read_bundle(path)
        histories += loaded.histories
        sources += [h.source for h in loaded.histories]
        errors += loaded.errors
        findings.update(loaded.findings)
        claims.update(loaded.claims)
    # What stopped the reading of a whole upload (a limit reached) is said before the lines about
    # single files, so the cap on problem lines never hides it.
    labels = {display_name(name) for name in submission.names}
    upload_wide: list[str] = []
    for member in read_members(submission, skip_bundles=bundles):
        sources.append(member.name)
        if member.error:
            (upload_wide if member.name in labels else errors).append(member.error)
            continue
        try:
            histories.append(load_json_text(member.data, source=member.name))
            folders[member.name] = _inner_folders(member.name)
        except HistoryError as err:
            errors.append(str(err))
        member.data = None  # parsed: the bytes can go
    errors = cap_lines(upload_wide + errors)
    result.runs = [(h.run_id, h.workflow_id) for h in histories]
    result.timings = run_timings(histories)
    # A group submission reaches each of its learners as the same entries: one holder, no copy.
    # Hashed: entry names may be any bytes an unzip made (not UTF-8), which the spool cannot store.
    result.holder = hashlib.sha256(os.fsencode("\0".join([str(submission.folder), *sorted(submission.names)]))
                                   ).hexdigest()
    result.status = learner_status(inputs=len(sources) + len(errors), unreadable=len(errors), unreachable=False)
    result.problems += errors
    if result.status == MISSING:
        result.problems.append(f"no .json history files in {', '.join(display_name(n) for n in submission.names)}")
        return result
    result.report = grade_runs(histories, rubric, sources=cap_lines(sources, 1000), errors=errors,
                               findings=findings, replay=replay, credit_simulate=credit_simulate, copied=copied,
                               learner=learner, claims=claims, folders=folders, known=known, held=held)
    result.workers = [run_workers(h, learner) for h in histories]
    note_integrity(result)
    note_provenance(result)
    note_ownership(result)
    result.late = is_late(result.report, histories, due=due, hint=late_hint)
    result.problems = cap_lines(result.problems, MAX_PROBLEMS + 1)
    return result


def withhold_spooled(book: Gradebook, learner: str, held: dict, rubric: Rubric) -> LearnerResult:
    """A learner's first grade with the cross-talk runs in ``held`` gated, when their runs cannot be read again.

    Grading again would pick the best run that is still the learner's own;
    without the runs, every experiment graded on a held run loses its points,
    so cross-talk never passes even when the server went away mid-batch.
    """
    from grader.engine.report import OwnershipEntry, assemble, gate_ownership, report_from_dict

    row = book.row(learner)
    result = LearnerResult(learner, row.status, roster=row.roster, position=row.position,
                           problems=[p for p in row.problems], flags=list(row.flags), late=row.late)
    if row.report_json is None:
        return result
    report = report_from_dict(_json_loads(row.report_json))
    for exp in report.experiments:
        ref = exp.workflow
        if ref is not None and (ref.workflow_id, ref.run_id) in held:
            gate_ownership(exp, held[(ref.workflow_id, ref.run_id)])
    gated = assemble(report.experiments, rubric, sources=report.sources, errors=report.errors,
                     integrity=report.integrity)
    gated.ownership = report.ownership + [OwnershipEntry("", wid, rid, list(found))
                                          for (wid, rid), found in held.items()]
    gated.in_progress = report.in_progress
    result.report = gated
    note_ownership(result)
    return result


def _json_loads(text: str):
    import json

    return json.loads(text)


def _inner_folders(member_name: str) -> list[str]:
    """The folders a file sits in inside a submission: ``ada.zip:carol-bundle/x.json`` -> ``["carol-bundle"]``.

    The submission's own entry (``ada/``, ``ada.zip``) is left out: it names the learner being graded.
    """
    inner = member_name.split(":", 1)[1] if ".zip:" in member_name else member_name.split("/", 1)[-1]
    if inner == member_name and "/" not in member_name:
        return []
    return [part for part in inner.split("/")[:-1] if part]
