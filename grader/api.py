"""One call from a source to a graded report: what the CLI and ``grader simulate`` use.

    report = check_files([Path("histories/")])
    report = await check_live(ConnectionSettings(profile="staging"), learner="alice")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from grader import defaults
from grader.engine.evidence import build_evidence
from grader.engine.history import DEFAULT_MAX_HISTORY_BYTES, History
from grader.engine.integrity import Finding, IntegrityEntry, assess
from grader.engine.report import Report, grade
from grader.engine.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from grader.packs import all_packs, rubric_for_workflow_types
from grader.sources.files import read_files
from grader.sources.loaded import Loaded

if TYPE_CHECKING:  # only annotations: grader.sources.connect is loaded on the live path
    from grader.sources.connect import ConnectionSettings, Target


def grade_loaded(loaded: Loaded, *, rubric: str | Path | Rubric | None = DEFAULT_RUBRIC,
                 experiments: Sequence[str] | None = None, replay: bool = True,
                 credit_simulate: bool = True, learner: str | None = None,
                 known: set[str] | None = None) -> Report:
    """Build evidence for every loaded history, check its integrity and grade it against ``rubric``.

    ``rubric=None`` grades each run by the pack its workflow type belongs to
    (:func:`grader.packs.rubric_for_workflow_types`; the default pack's when none).

    Without ``credit_simulate`` runs made by ``grader simulate`` earn nothing.
    ``learner`` is whose work the histories are meant to be (``--learner``):
    a run naming someone else is ``owner-mismatch`` (see
    :func:`ownership_findings` for ``known``). Runs sharing a worker process
    with another learner's run, among the histories or ``loaded.others``, are
    ``cross-talk``. Neither passes.
    """
    all_packs()  # the packs' checks and names, before a rubric or history is read
    if rubric is None:  # each run graded by the pack its workflow type belongs to
        rubric = rubric_for_workflow_types({h.workflow_type for h in loaded.histories}) or DEFAULT_RUBRIC
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    runs = [build_evidence(h) for h in loaded.histories]
    return grade(runs, rubric, experiments=experiments, sources=loaded.sources, errors=loaded.errors,
                 integrity=check_integrity(loaded, replay=replay), credit_simulate=credit_simulate,
                 held=ownership_findings(loaded, learner=learner, known=known))


def ownership_findings(loaded: Loaded, *, learner: str | None = None,
                       known: set[str] | None = None) -> list[list]:
    """Per loaded history (same order): its ``owner-mismatch`` and ``cross-talk`` findings (grader.engine.ownership).

    With ``learner``, every history is graded as that learner's, and one
    that names another learner (workflow id, bundle manifest) is a
    mismatch; ``known`` limits that to the class's learner keys when no
    manifest vouches for the id (None: any id counts). Without ``learner``,
    each run belongs to whom its workflow id names, so several learners'
    runs graded together (``--all-learners``, a folder of everyone's files)
    are compared with each other.
    """
    held: list[list] = [[] for _ in loaded.histories]
    if learner is None and len(loaded.histories) + len(loaded.others) <= 1:
        return held  # one run of its writer's: nothing to compare (nor to import, a plain check's start-up)
    from grader.engine.learner import learner_of
    from grader.engine.ownership import cross_talk, owner_findings, run_workers

    def owner(history: History) -> str:
        return learner or learner_of(history.workflow_id) or history.workflow_id

    if learner is not None:
        for i, history in enumerate(loaded.histories):
            held[i] += owner_findings(history.workflow_id, learner, manifest_learner=loaded.claims.get(history.source),
                                      known=known)
    if len(loaded.histories) + len(loaded.others) > 1:
        workers = [run_workers(h, owner(h)) for h in loaded.histories]
        workers += [run_workers(h, learner_of(h.workflow_id) or h.workflow_id) for h in loaded.others]
        for i, found in enumerate(cross_talk(workers)[:len(loaded.histories)]):
            held[i] += found
    return held


def check_integrity(loaded: Loaded, *, replay: bool = True,
                    more_findings: Sequence[Sequence[Finding]] | None = None) -> list[IntegrityEntry]:
    """One integrity verdict per loaded history.

    The rules of :mod:`grader.engine.integrity`, agreement between histories of one
    run, the bundle's hashes and, with ``replay``, a replay through the
    reference workflow (:mod:`grader.lab.replay`). ``more_findings`` are made
    elsewhere, one list per history in order (a batch's copied runs).
    """
    if not (replay and loaded.histories):
        return assess(loaded.histories, extra=loaded.findings, more_findings=more_findings)
    from grader.engine.integrity import inspect_history
    from grader.lab.replay import replay_histories

    inspected = [inspect_history(h) for h in loaded.histories]
    outcome = replay_histories(loaded.histories, inspected=inspected)
    found = outcome.findings
    if more_findings is not None:
        found = [list(a) + list(b) for a, b in zip(found, more_findings)]
    return assess(loaded.histories, extra=loaded.findings, more_findings=found, notes=outcome.notes,
                  inspected=inspected)


def grade_histories(histories: Sequence[History], **options) -> Report:
    """Grade histories already in memory (e.g. the ones ``grader simulate`` produced)."""
    loaded = Loaded(histories=list(histories), sources=sorted({h.source for h in histories}))
    return grade_loaded(loaded, **options)


def check_files(paths: Sequence[Path], *, rubric: str | Path | Rubric = DEFAULT_RUBRIC,
                experiments: Sequence[str] | None = None, replay: bool = True,
                max_history_bytes: int = DEFAULT_MAX_HISTORY_BYTES, learner: str | None = None) -> Report:
    """Grade exported history files (folders expand to their ``*.json``; bundles to their histories).

    A file larger than ``max_history_bytes`` is refused unread. With
    ``learner``, the files are graded as that learner's work, and a run
    naming another learner is an ``owner-mismatch``.
    """
    all_packs()  # which workflow types are histories to grade
    return grade_loaded(read_files(paths, max_bytes=max_history_bytes), rubric=rubric, experiments=experiments,
                        replay=replay, learner=learner)


async def check_live(connection: ConnectionSettings | Target | str | None = None, namespace: str | None = None,
                     *, workflow_ids: Sequence[str] = (), learner: str | None = None,
                     limit: int = defaults.LIVE_LIMIT, ui_url: str | None = None,
                     rubric: str | Path | Rubric | None = DEFAULT_RUBRIC,
                     experiments: Sequence[str] | None = None, replay: bool = True) -> Report:
    """Grade histories read live from a server (``connection``: settings, a target or an address).

    The runs listed are those of every pack (``--pack`` narrows it, see
    :func:`grader.sources.live.use_pack`); ``rubric=None`` grades
    each by its own pack, as :func:`grade_loaded` says.

    With ``learner``: that learner's runs (or the ``workflow_ids`` given,
    graded as theirs), compared with other learners' runs on the same task
    queues for cross-talk.
    """
    from grader.sources.live import read_live  # the live path only: file grading never loads it

    all_packs()  # the packs' checks and names, before a rubric or history is read
    if rubric is not None:  # None: told from the runs read (every pack's are listed)
        rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)  # bad rubric before any RPC
    loaded = await read_live(connection, namespace, workflow_ids=workflow_ids, learner=learner,
                             limit=limit, ui_url=ui_url)
    return grade_loaded(loaded, rubric=rubric, experiments=experiments, replay=replay, learner=learner)


def nothing_found_message(address: str, namespace: str, learner: str | None) -> str:
    """The one line said when a server holds no MoneyTransfer workflow to grade."""
    whose = f" for learner {learner}" if learner else ""
    advice = "start one with python run_workflow.py" + (", or check --learner" if learner else "")
    from grader.sources import live

    return f"no {live.listed_label()} workflows{whose} at {address} (namespace {namespace}): {advice}"


def grade_simulation(runs: Sequence, *, rubric: str | Path | Rubric = DEFAULT_RUBRIC,
                     outage: float | None = None) -> Report:
    """Grade what ``grader simulate`` produced: each experiment on its own workflow.

    A simulated outage may be shorter than the rubric's ``min_outage_seconds``
    (tests and demos shorten it); the grade then asks for most of the outage
    that really happened, not for the classroom's 30 s.
    """
    import dataclasses

    from grader.engine.history import history_from_document
    from grader.engine.report import assemble, gate, grade_experiment, ungraded_experiment

    all_packs()  # the packs' checks and names, before a rubric or history is read

    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    histories = {run.experiment: history_from_document(run.history, source=f"simulate {run.experiment}",
                                                       workflow_id=run.workflow_id)
                 for run in runs if run.history is not None}
    integrity = check_integrity(Loaded(histories=list(histories.values())))
    verdicts = dict(zip(histories, integrity))
    experiments = []
    graded = []
    for run in runs:
        spec = rubric.experiment(run.experiment)
        if spec is None:
            continue
        if run.experiment == "network-partition" and outage is not None:
            floor = min(spec.params["min_outage_seconds"], 0.8 * outage)
            spec = dataclasses.replace(spec, params={**spec.params, "min_outage_seconds": floor})
        if run.history is None:
            experiments.append(ungraded_experiment(spec, run.note or "the experiment produced no workflow"))
            continue
        evidence = build_evidence(histories[run.experiment])
        report = gate(grade_experiment(spec, evidence), verdicts[run.experiment])
        report.candidates = 1
        experiments.append(report)
        graded.append(evidence)
    return assemble(experiments, rubric, sources=["grader simulate"], runs=graded, integrity=integrity)
