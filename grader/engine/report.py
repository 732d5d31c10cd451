"""The report model and the grading that fills it.

:func:`grade` takes the evidence of one or more runs and a rubric, runs each
experiment's checks on every run, keeps for each experiment the run that
satisfies it best, and sums points. The report is plain data; renderers in
:mod:`grader.formats` turn it into a table or JSON, and its JSON form is
described by ``grader/schemas/report.schema.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from grader import __version__
from grader.engine import catalog
from grader.engine.checks import (ANY_EXPERIMENT, ERROR, FAIL, NOT_ATTEMPTED, PASS, PENDING, PROVEN,
                                  CheckResult, experiment_shown, pending_result, run_check)
from grader.engine.evidence import RunEvidence
from grader.engine.history import parse_time
from grader.engine.integrity import IntegrityEntry
from grader.engine.rubric import Rubric, RubricExperiment

if TYPE_CHECKING:  # imported on first use below: the table of a plain check never draws
    from grader.engine.inprogress import RunInProgress  # only when a run is still open (start-up, issue 18)
    from grader.engine.runview import RunTimeline

SCHEMA_VERSION = 1


#: A graded check as the report holds it: the check's result with its title,
#: points and required flag filled in (one object, no copy per check).
CheckReport = CheckResult


#: Each provenance (see grader.engine.history.PROVENANCES) in words, for the renderers.
PROVENANCE_SAID = {
    "server": "read live from the server",
    "file": "handed in as a file",
    "bundle": "handed in as an export bundle",
    "simulate": "made by grader simulate",
}


def provenance_said(provenance: str) -> str:
    """Where a run's evidence came from, in words (``evidence read live from the server``)."""
    return "evidence " + PROVENANCE_SAID.get(provenance, provenance)


@dataclass(slots=True)
class WorkflowRef:
    """Which run an experiment was graded on."""

    workflow_id: str
    run_id: str
    #: A file path, or ``server ADDRESS/NAMESPACE``.
    source: str
    #: Web UI link for runs read from a server, else None.
    ui_link: str | None = None
    #: Where the evidence came from: ``server`` (read live by the grader), ``file`` or ``bundle``
    #: (handed in), ``simulate`` (made by ``grader simulate``); see grader.engine.history.PROVENANCES.
    provenance: str = "file"


@dataclass(slots=True)
class ExperimentReport:
    """One experiment's grade."""

    id: str
    title: str
    required: bool
    status: str
    score: float
    max_score: float
    workflow: WorkflowRef | None
    checks: list[CheckReport]
    #: How many runs were considered for this experiment.
    candidates: int = 0
    #: A sentence for the reader when no run could be graded.
    note: str = ""
    #: Why this run was graded when several were looked at, and which others were.
    selection: str = ""


@dataclass(slots=True)
class OwnershipEntry:
    """A run that is not the graded learner's own work (``owner-mismatch``, ``cross-talk``; see grader.engine.ownership)."""

    source: str
    workflow_id: str
    run_id: str
    findings: list  # list[grader.engine.integrity.Finding]


@dataclass
class Report:
    """The whole grade."""

    grader_version: str
    rubric: dict[str, str]
    status: str
    score: float
    max_score: float
    experiments: list[ExperimentReport]
    #: Every history source read.
    sources: list[str] = field(default_factory=list)
    #: One line per input that could not be graded (bad files), which did not stop the others.
    errors: list[str] = field(default_factory=list)
    #: One verdict per history read: consistent, or suspect with findings (see grader.engine.integrity).
    integrity: list[IntegrityEntry] = field(default_factory=list)
    #: Runs that are not the learner's own work, with why (no experiment passes on them).
    ownership: list[OwnershipEntry] = field(default_factory=list)
    #: The newest run still open when read (grader.engine.inprogress), or None.
    in_progress: RunInProgress | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The report as the JSON document of ``--format json``."""
        data = asdict(self)
        ordered = {"schema_version": data.pop("schema_version")}
        ordered.update(data)
        ordered["timelines"] = [asdict(t) for t in self.timelines]
        return ordered

    @property
    def timelines(self) -> list[RunTimeline]:
        """A picture model of each graded run (grader.engine.runview), in the order experiments first use them.

        Built on first use: grading many histories in bulk never pays for pictures it does not draw.
        """
        built = self.__dict__.get("_timelines")
        if built is None:
            from grader.engine.runview import build_timeline

            runs = {id(r): r for r in self.__dict__.get("graded_runs", ())}
            built = self.__dict__["_timelines"] = [build_timeline(r) for r in runs.values()]
        return built

    @property
    def graded_nothing(self) -> bool:
        """True when no run was read to grade (nothing found, or every input was bad).

        Runs that show no experiment were still graded: their experiments are ``not-attempted``
        (or ``pending`` while such a run is open).
        """
        return all(e.workflow is None and e.status in (FAIL, ERROR) for e in self.experiments)

    @property
    def passed(self) -> bool:
        """True when every counted experiment passed (exit code 0)."""
        return self.status == PASS


def report_from_dict(data: dict[str, Any]) -> Report:
    """A report back from its JSON form (:meth:`Report.to_dict`), as a gradebook stores it.

    The class formats use it to render each learner's report from
    ``gradebook.json`` without grading again; timelines are not rebuilt
    (they need the run), so a format that draws runs cannot use it.
    """
    from grader.engine.integrity import Finding

    def known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
        names = cls.__dataclass_fields__
        return {k: v for k, v in values.items() if k in names}

    experiments = []
    for exp in data.get("experiments", []):
        values = known(ExperimentReport, exp)
        values["checks"] = [CheckResult(**known(CheckResult, c)) for c in exp.get("checks", [])]
        values["workflow"] = WorkflowRef(**exp["workflow"]) if exp.get("workflow") else None
        experiments.append(ExperimentReport(**values))
    integrity = []
    for entry in data.get("integrity", []):
        values = known(IntegrityEntry, entry)
        values["findings"] = [Finding(**known(Finding, f)) for f in entry.get("findings", [])]
        integrity.append(IntegrityEntry(**values))
    ownership = [OwnershipEntry(**{**known(OwnershipEntry, entry),
                                   "findings": [Finding(**known(Finding, f)) for f in entry.get("findings", [])]})
                 for entry in data.get("ownership", [])]
    values = known(Report, data)
    values.update(experiments=experiments, integrity=integrity, ownership=ownership)
    if data.get("in_progress"):
        from grader.engine.inprogress import RunInProgress

        values["in_progress"] = RunInProgress(**known(RunInProgress, data["in_progress"]))
    return Report(**values)


@lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    """The JSON Schema of :meth:`Report.to_dict`."""
    from grader.resources import schema_path

    return json.loads(schema_path("report").read_text())


#: Events a check line lists as its evidence; a run of 40,000 activities listed every one, in every
#: format (a 37 MB JSON report). The rest are counted in one more entry.
MAX_EVIDENCE = 50


def cap_evidence(evidence: list[dict[str, Any]], most: int = MAX_EVIDENCE) -> list[dict[str, Any]]:
    """``evidence`` with at most ``most`` events kept and a last entry counting the others."""
    if len(evidence) <= most:
        return evidence
    return evidence[:most] + [{"event_id": None, "event_type": "more",
                               "detail": f"... and {len(evidence) - most} more events like these"}]


def grade_experiment(spec: RubricExperiment, run: RunEvidence) -> ExperimentReport:
    """Run one experiment's checks on one run and weigh them."""
    checks = []
    score = max_score = 0.0
    required_statuses = []
    params = spec.params
    for rc in spec.checks:
        result = run_check(rc.id, run, params, rc.check.func)
        result.title = rc.check.title
        result.score = points = rc.points if result.status == PASS else 0.0
        result.max_score = rc.points
        result.required = rc.required
        result.visibility, result.hint_visibility = rc.visibility, rc.hint_visibility
        result.evidence = cap_evidence(result.evidence)
        score += points
        max_score += rc.points
        if rc.required:
            required_statuses.append(result.status)
        checks.append(result)
    return ExperimentReport(
        id=spec.id, title=spec.title, required=spec.required,
        status=combine_statuses(required_statuses), score=score, max_score=max_score,
        workflow=_workflow_ref(run),
        checks=checks,
    )


def _workflow_ref(run: RunEvidence) -> WorkflowRef:
    ref = run.memo.get("workflow-ref")  # one per run, shared by its experiments
    if ref is None:
        ref = run.memo["workflow-ref"] = WorkflowRef(run.workflow_id, run.run_id, run.source, run.ui_link,
                                                     run.source_kind)
    return ref


#: The check line an experiment graded on a suspect history gets.
INTEGRITY_CHECK = "integrity.history-consistent"


def gate(report: ExperimentReport, entry: IntegrityEntry | None) -> ExperimentReport:
    """Keep an experiment graded on a suspect history from passing, and say why.

    The checks' own statuses stay (they show what the history would prove),
    but every point is withheld and a required failing line lists the
    findings, so the totals, the status and the rows agree.
    """
    if entry is None or not entry.suspect:
        return report
    codes = sorted({f.code for f in entry.findings})
    for chk in report.checks:
        chk.score = 0.0
    # A copy of a classmate's run may be an untouched history: say so, not "edited".
    copied = codes == ["copied-run"]
    report.checks.append(CheckResult(
        INTEGRITY_CHECK, FAIL,
        f"the history is suspect ({', '.join(codes)}): {entry.findings[0].message}; points withheld",
        hint="hand in a run of your own" if copied else
        "grade a history exported straight from the server (`grader export`), unedited",
        evidence=[{"event_id": eid, "event_type": f.code, "detail": f.message}
                  for f in entry.findings for eid in (f.event_ids[:1] or [None])],
        title="The history is as the server recorded it", required=True))
    report.score = 0.0
    report.status = FAIL
    return report


#: The check line an experiment graded on a run ``grader simulate`` made gets under ``--no-credit-simulate``.
SIMULATE_CHECK = "provenance.not-simulated"


def withhold_simulated(report: ExperimentReport, run: RunEvidence) -> ExperimentReport:
    """Credit nothing for a run ``grader simulate`` made (``--no-credit-simulate``), and say why."""
    if run.source_kind != "simulate":
        return report
    for chk in report.checks:
        chk.score = 0.0
    report.checks.append(CheckResult(
        SIMULATE_CHECK, FAIL, "this run was made by `grader simulate` (its mark is on the start event), which "
        "this grading does not credit; points withheld",
        hint="do the experiment yourself with your own worker and hand in that run",
        title="The run is the learner's own, not grader simulate's", required=True))
    report.score = 0.0
    report.status = FAIL
    return report


#: The check line an experiment graded on a run that is not the learner's own work gets.
OWNERSHIP_CHECK = "ownership.own-work"

_OWNERSHIP_HINTS = {
    "cross-talk": "give your worker a task queue of its own (the apps' default, TRANSFER_MONEY_TASK_QUEUE-<your "
                  "id>, unless TRANSFER_TASK_QUEUE overrides it) and run the experiment again",
    "owner-mismatch": "hand in your own runs: workflow ids that start with your learner id, exported with "
                      "`grader export --learner <your id>`",
}


def gate_ownership(report: ExperimentReport, findings: Sequence | None) -> ExperimentReport:
    """Keep an experiment graded on a run that is not the learner's own work from passing, and say why.

    Like :func:`gate`: the checks keep their statuses, every point is
    withheld and a required failing line names the findings (``cross-talk``,
    ``owner-mismatch``) with the events behind them.
    """
    if not findings:
        return report
    codes = sorted({f.code for f in findings})
    for chk in report.checks:
        chk.score = 0.0
    more = f" (and {len(findings) - 1} more finding{'s' if len(findings) > 2 else ''})" if len(findings) > 1 else ""
    report.checks.append(CheckResult(
        OWNERSHIP_CHECK, FAIL,
        f"this run is not only this learner's work ({', '.join(codes)}): {findings[0].message}{more}; points withheld",
        hint=_OWNERSHIP_HINTS.get(findings[0].code, ""),
        evidence=[{"event_id": eid, "event_type": f.code, "detail": f.message}
                  for f in findings for eid in (f.event_ids[:3] or [None])],
        title="The run is this learner's own work", required=True))
    report.score = 0.0
    report.status = FAIL
    return report


def combine_statuses(statuses: Iterable[str]) -> str:
    """The worst of several statuses: error, then fail (a counted experiment not attempted is
    failed for the whole grade), then pending, else pass."""
    statuses = statuses if isinstance(statuses, list) else list(statuses)
    if ERROR in statuses:
        return ERROR
    if FAIL in statuses or NOT_ATTEMPTED in statuses:
        return FAIL
    if PENDING in statuses:
        return PENDING
    return PASS


def ungraded_experiment(spec: RubricExperiment, note: str) -> ExperimentReport:
    """An experiment with no run to grade: every check fails, ``note`` says why."""
    return _unrun_experiment(spec, FAIL, "no workflow to grade", note)


def not_attempted_experiment(spec: RubricExperiment, note: str) -> ExperimentReport:
    """An experiment that none of the runs shows: ``not-attempted``, 0 points, ``note`` says how to do it.

    Every check is listed (so formats that show one line per check still do),
    each ``not-attempted`` with the same message.
    """
    return _unrun_experiment(spec, NOT_ATTEMPTED, f"not attempted: {note}", note)


def _unrun_experiment(spec: RubricExperiment, status: str, message: str, note: str) -> ExperimentReport:
    """An experiment whose checks did not run: ``status`` for it and each line, ``message`` on each, 0 points."""
    # Most experiments of most gradings land here (a run shows one experiment of four): what the
    # lines share is read from the rubric once, and each line is built by position, in CheckResult's
    # order (keyword arguments cost twice as much). Each line is still a new object: later steps may
    # change a report's lines.
    checks = [CheckResult(check_id, status, message, "", [], title, 0.0, points, required, "", True,
                          visibility, hint_visibility)
              for check_id, title, points, required, visibility, hint_visibility in spec.check_lines]
    return ExperimentReport(spec.id, spec.title, spec.required, status, 0.0, spec.max_points, None, checks, 0, note)


def awaited_experiment(spec: RubricExperiment, run: RunEvidence) -> ExperimentReport:
    """An experiment no closed run shows while ``run`` is still open and shows none yet: ``pending``.

    The open run may still turn into it (a worker killed a moment ago shows
    no takeover yet), so each check waits for the run to close.
    """
    note = f"workflow {run.workflow_id} is still running and shows no experiment's events yet"
    checks = []
    for rc in spec.checks:
        result = pending_result(rc.id, run, "it shows no experiment's events yet")
        result.title, result.max_score, result.required = rc.check.title, rc.points, rc.required
        result.visibility, result.hint_visibility = rc.visibility, rc.hint_visibility
        checks.append(result)
    # The open run is named (with its Web UI link): it is what the learner is waiting on.
    return ExperimentReport(spec.id, spec.title, spec.required, PENDING, 0.0,
                            sum(c.max_score for c in checks), _workflow_ref(run), checks, 1, note)


def grade(
    runs: Sequence[RunEvidence],
    rubric: Rubric,
    *,
    experiments: Sequence[str] | None = None,
    sources: Sequence[str] = (),
    errors: Sequence[str] = (),
    integrity: Sequence[IntegrityEntry] = (),
    credit_simulate: bool = True,
    held: Sequence[Sequence] = (),
) -> Report:
    """Grade ``runs`` (newest first) against ``rubric``.

    One run, one experiment: each run counts only for the experiment its
    defining events show (:func:`grader.engine.checks.experiment_shown`), and each
    experiment is graded on the most convincing of the runs that show it (see
    :func:`select_run`), its report saying why. An experiment no run shows is
    ``not-attempted`` and scores 0; a run that shows none (a plain transfer)
    earns nothing. With ``experiments`` only those are graded, and all of
    them count for the overall status, optional or not. ``integrity`` holds
    one entry per run (same order): a run whose history is suspect cannot
    pass (:func:`gate`), so an honest run wins over it.
    Without ``credit_simulate`` a run made by ``grader simulate`` earns nothing
    (:func:`withhold_simulated`). ``held`` holds, per run (same order), the
    ownership findings (:mod:`grader.engine.ownership`: cross-talk,
    owner-mismatch) that keep it from passing (:func:`gate_ownership`).
    """
    verdicts = {id(run): entry for run, entry in zip(runs, integrity)}
    holds = {id(run): found for run, found in zip(runs, held) if found}
    chosen = [e for e in rubric.experiments if not experiments or e.id in experiments]
    params = rubric.classifying_params()
    shown = {id(run): experiment_shown(run, params) for run in runs}
    # The runs that show each experiment, in the order of ``runs``; the open runs that show none yet.
    showing: dict[str | None, list[RunEvidence]] = {}
    for run in runs:
        showing.setdefault(shown[id(run)].experiment, []).append(run)
    still_open = [run for run in showing.get(None, ()) if run.is_open]
    reports = []
    graded_runs: list[RunEvidence] = []
    for spec in chosen:
        if not runs:
            reports.append(ungraded_experiment(spec, f"no {catalog.workflow_label_of(spec.id)} workflow "
                                                           "was found to grade"))
            continue
        if ANY_EXPERIMENT in showing:  # runs of a pack with no classifier count for any of its experiments
            owner = catalog.experiment_owner(spec.id)
            candidates = [run for run in runs if shown[id(run)].experiment == spec.id
                          or (shown[id(run)].experiment == ANY_EXPERIMENT and owner is not None
                              and catalog.kind_of_workflow_type(run.workflow_type) is owner)]
        else:
            candidates = showing.get(spec.id, [])
        if not candidates:
            if still_open:  # it may yet become this experiment: wait for it, as its checks would
                reports.append(awaited_experiment(spec, still_open[0]))
                graded_runs.append(still_open[0])
            else:
                reports.append(not_attempted_experiment(spec, catalog.defined_by(spec.id)))
            continue
        graded = [(run, gate_ownership(gate(grade_experiment(spec, run), verdicts.get(id(run))),
                                       holds.get(id(run))))
                  for run in candidates]
        if not credit_simulate:
            graded = [(run, withhold_simulated(report, run)) for run, report in graded]
        best_run, best = select_run(graded)
        reports.append(best)
        graded_runs.append(best_run)
    if not graded_runs and runs:
        graded_runs.append(runs[0])  # nothing counted: the newest run is still drawn for the learner
    report = assemble(reports, rubric, count_optional=bool(experiments), sources=sources, errors=errors,
                      runs=graded_runs, integrity=integrity)
    report.ownership = [OwnershipEntry(run.source, run.workflow_id, run.run_id, list(holds[id(run)]))
                        for run in runs if id(run) in holds]
    if any(run.is_open for run in runs):  # else None, the default; a run of files is usually closed
        from grader.engine.inprogress import newest_open_run

        report.in_progress = newest_open_run(runs, shown)
    return report


def _standing(report: ExperimentReport) -> tuple[int, int, int, int, int]:
    """Required checks passed and their count, bonus checks passed and their count, proven passes."""
    required = [c for c in report.checks if c.required]
    bonus = [c for c in report.checks if not c.required]
    proven = sum(1 for c in report.checks if c.status == PASS and c.strength == PROVEN)
    return (sum(c.status == PASS for c in required), len(required),
            sum(c.status == PASS for c in bonus), len(bonus), proven)


def _not_needed(report: ExperimentReport) -> int:
    """How many checks passed only because they did not apply to the run."""
    return sum(1 for c in report.checks if c.status == PASS and not c.applies)


def _start_key(run: RunEvidence) -> float:
    start = parse_time(run.start_time)
    return start.timestamp() if start else float("-inf")


def select_run(graded: Sequence[tuple[RunEvidence, ExperimentReport]]) -> tuple[RunEvidence, ExperimentReport]:
    """The most convincing run among ``graded`` (given newest first) and its report, which says why.

    Runs are ranked by required checks passed, then bonus evidence (bonus
    checks passed, then passes whose evidence is *proven*), then the newest
    start. A pending check is not a passed one, so a run still running never
    outranks a completed run that passed more. The chosen report's
    ``selection`` names the reason and the other runs looked at.
    """
    if len(graded) == 1:  # the common case (one history, one run): nothing to rank
        graded[0][1].candidates = 1
        return graded[0]

    def key(item: tuple[int, tuple[RunEvidence, ExperimentReport]]) -> tuple:
        position, (run, report) = item
        req, _, bonus, _, proven = _standing(report)
        # A check passed only because it did not apply proves less than one that applied.
        return (req, bonus, proven, -_not_needed(report), _start_key(run), -position)

    ranked = sorted(enumerate(graded), key=key, reverse=True)
    best_run, best = ranked[0][1]
    best.candidates = len(graded)
    req, n_req, bonus, n_bonus, proven = _standing(best)
    reason = f"chosen for {req}/{n_req} required checks passed"
    if n_bonus:
        reason += f" and {bonus}/{n_bonus} bonus"
    if proven:
        reason += f", {proven} proven"
    runner_up = _standing(ranked[1][1][1])
    if (runner_up[0], runner_up[2], runner_up[4]) == (req, bonus, proven):
        if _not_needed(ranked[1][1][1]) > _not_needed(best):
            reason += ", with fewer checks that only passed because they did not apply"
        else:
            reason += ", the newest of the runs that did as well"
    others = [f"{_run_name(run)} ({report.status}, {_standing(report)[0]}/{n_req} required"
              + (f", {_standing(report)[2]}/{n_bonus} bonus" if n_bonus else "") + ")"
              for _, (run, report) in ranked[1:]]
    shown = others[:_OTHERS_SHOWN]
    if len(others) > len(shown):
        shown.append(f"{len(others) - len(shown)} more")
    best.selection = f"{reason}; also looked at: {', '.join(shown)}"
    return best_run, best


#: How many of the other runs a selection line names.
_OTHERS_SHOWN = 4


def _run_name(run: RunEvidence) -> str:
    return f"{run.workflow_id} run {run.run_id[:8]}" if run.run_id else run.workflow_id


def assemble(
    reports: Sequence[ExperimentReport],
    rubric: Rubric,
    *,
    count_optional: bool = False,
    sources: Sequence[str] = (),
    errors: Sequence[str] = (),
    runs: Sequence[RunEvidence] = (),
    integrity: Sequence[IntegrityEntry] = (),
) -> Report:
    """Sum experiment reports into a :class:`Report`.

    Optional experiments count for the total and the status only with
    ``count_optional`` (when a user asked for them by name), or when nothing
    else was graded. ``runs`` are the graded runs, each drawn once in
    ``timelines``.
    """
    counted = [r for r in reports if r.required or count_optional] or list(reports)
    report = Report(
        grader_version=__version__,
        rubric={"id": rubric.id, "version": rubric.version},
        status=combine_statuses([r.status for r in counted]) if counted else PASS,
        score=sum(r.score for r in counted),
        max_score=sum(r.max_score for r in counted),
        experiments=list(reports),
        sources=list(sources),
        errors=list(errors),
        integrity=list(integrity),
    )
    # Kept beside the fields, not in them: the report's data stays plain, and
    # timelines are drawn from these runs only when someone asks (see Report.timelines).
    report.graded_runs = list(runs)
    return report


def error_report(error: str, rubric: Rubric | None = None, *, experiments: Sequence[str] | None = None) -> Report:
    """The report of a grading that broke before anything could be graded, with ``error`` as its message.

    CI must never go silent: when the app does not start, no history could be
    read or no server answered, every document format still gets a whole
    document. Each experiment of ``rubric`` (those in ``experiments`` when
    given) is listed ungraded, score 0, every check failed with the error as
    its finding, the experiment's status ``error``; the report's
    status is ``error`` and ``errors`` holds the one line. With no rubric (the
    rubric itself was the problem) the report lists no experiment at all.
    """
    reports = []
    for spec in (rubric.experiments if rubric is not None else ()):
        if experiments and spec.id not in experiments:
            continue
        exp = ungraded_experiment(spec, f"not graded: {error}")
        for chk in exp.checks:
            chk.message = f"not graded: {error}"
        exp.status = ERROR
        reports.append(exp)
    rubric_ref = ({"id": rubric.id, "version": rubric.version} if rubric is not None
                  else {"id": "unknown", "version": ""})
    counted = [r for r in reports if r.required or experiments] or reports
    return Report(grader_version=__version__, rubric=rubric_ref, status=ERROR, score=0.0,
                  max_score=sum(r.max_score for r in counted), experiments=reports, errors=[error])
