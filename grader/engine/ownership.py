"""Whose work a run is: ``owner-mismatch`` and ``cross-talk`` findings.

A history can be genuine, consistent, and still not the learner's own work:

- **owner-mismatch**: the run names another learner. Its workflow id starts
  with another id (``carol-transfer-...`` handed in by wendy), the bundle
  manifest ``grader export`` wrote says ``"learner": "carol"``, or the folder
  it sits in is another learner's (``carol-bundle/``, ``carol/``).
- **cross-talk**: a worker *process* did work in the runs of more than one
  learner. On a shared server, workers of several learners polling one task
  queue take each other's tasks: a learner kills their worker and a
  classmate's finishes the transfer, which then looks like crash recovery.

Neither kind of run may earn credit (:func:`grader.report.gate_ownership`).

How a history proves a process (HISTORY-FACTS): a worker identity is a
string anyone can set, so two learners may well both call their worker
``worker-1``. What is per process is the sticky queue a Python, TypeScript or
.NET worker asks for, ``<identity>-<32 hex>``: the same sticky queue name in
two learners' runs is one process. An identity of the SDK's default form
``<pid>@<host>`` names a process too, unless the runs show it with different
sticky queues (two processes that happened to share a pid and host name). A
custom identity alone proves nothing and is never matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from grader.engine.history import History
from grader.engine.integrity import Finding
from grader.engine.learner import learner_key, learner_of, same_learner

#: Finding codes (public: they appear in reports, gradebooks and feedback).
OWNER_MISMATCH = "owner-mismatch"
CROSS_TALK = "cross-talk"

#: Events that carry the identity of the worker that did the work.
_WORK_EVENTS = frozenset({"WorkflowTaskStarted", "WorkflowTaskCompleted", "WorkflowTaskFailed",
                          "ActivityTaskStarted", "ActivityTaskCompleted", "ActivityTaskFailed"})
_STICKY_SUFFIX = re.compile(r"[0-9a-f]{32}")
_DEFAULT_IDENTITY = re.compile(r"\d+@\S+")
#: ``grader export`` names its folder ``<learner>-bundle``.
_BUNDLE_FOLDER = re.compile(r"(.+)-bundle", re.IGNORECASE)
#: How many event ids a message lists before "...".
_EVENTS_SHOWN = 8


@dataclass
class RunWorkers:
    """The worker processes one run shows, and whose run it is."""

    #: The learner the run is graded for.
    learner: str
    workflow_id: str
    run_id: str
    #: identity -> ids of the events that identity's work wrote in this run.
    identities: dict[str, list[int]] = field(default_factory=dict)
    #: identity -> the sticky queues (one per process) this run shows for it.
    stickies: dict[str, set[str]] = field(default_factory=dict)
    #: The run's timing fingerprint (grader.engine.integrity), if it has one: a copy of a run has the
    #: same, and is the ``copied-run`` finding's business, not cross-talk.
    fingerprint: str | None = None


def run_workers(history: History, learner: str) -> RunWorkers:
    """Walk ``history`` once for the worker identities that did work and the sticky queues they asked for."""
    from grader.engine.integrity import timing_fingerprint

    seen = RunWorkers(learner, history.workflow_id, history.run_id, fingerprint=timing_fingerprint(history))
    for event in history.events:
        attrs = event.attrs
        if event.type in _WORK_EVENTS:
            identity = attrs.get("identity")
            if isinstance(identity, str) and identity and not identity.startswith(("temporal-cli", "history-service")):
                seen.identities.setdefault(identity, []).append(event.id)
        elif event.type == "WorkflowTaskScheduled":
            queue = attrs.get("taskQueue")
            if isinstance(queue, dict) and str(queue.get("kind", "")).endswith("STICKY"):
                name = str(queue.get("name") or "")
                owner, _, suffix = name.rpartition("-")
                if owner and _STICKY_SUFFIX.fullmatch(suffix):
                    seen.stickies.setdefault(owner, set()).add(name)
    return seen


def task_queue_of(history: History) -> str | None:
    """The task queue a run was started on (what its workers poll), from its first event."""
    queue = history.events[0].attrs.get("taskQueue") if history.events else None
    name = queue.get("name") if isinstance(queue, dict) else None
    return name if isinstance(name, str) and name else None


#: How many of another learners' runs one finding collects (it names a few and counts the learners).
_OTHERS_KEPT = 20


def cross_talk(runs: Sequence[RunWorkers]) -> list[list[Finding]]:
    """For each run (same order), a ``cross-talk`` finding per worker process it shares with other learners' runs.

    Two runs of one learner, or two copies of one run (the same run id or
    the same timing fingerprint: a copied hand-in, reported as
    ``copied-run``), are never cross-talk. Runs are grouped by
    process first, so a class where one worker served everyone costs time in
    proportion to the runs, not to their pairs.
    """
    # Each process -> {learner key -> runs}. A sticky queue is one process. A default-form
    # identity is one process per group of runs that share a sticky queue of it, and runs that
    # show no sticky queue of it (loose) may be any of them.
    groups: list[tuple[str, bool, dict[str, list[int]], dict[str, list[int]] | None]] = []
    by_sticky: dict[str, dict[str, list[int]]] = {}
    by_identity: dict[str, list[int]] = {}
    for index, run in enumerate(runs):
        key = learner_key(run.learner)
        for identity in run.identities:
            for sticky in run.stickies.get(identity, ()):
                by_sticky.setdefault(sticky, {}).setdefault(key, []).append(index)
            if _DEFAULT_IDENTITY.fullmatch(identity):
                by_identity.setdefault(identity, []).append(index)
    for sticky, members in by_sticky.items():
        if len(members) > 1:
            groups.append((sticky.rpartition("-")[0], True, members, None))
    for identity, members in by_identity.items():
        if len({learner_key(runs[i].learner) for i in members}) < 2:
            continue
        loose: dict[str, list[int]] = {}
        parent: dict[str, str] = {}

        def find(name: str) -> str:
            while parent.setdefault(name, name) != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        for i in members:
            names = sorted(runs[i].stickies.get(identity, ()))
            for other in names[1:]:
                parent[find(other)] = find(names[0])
        components: dict[str, dict[str, list[int]]] = {}
        for i in members:
            names = sorted(runs[i].stickies.get(identity, ()))
            bucket = components.setdefault(find(names[0]), {}) if names else loose
            bucket.setdefault(learner_key(runs[i].learner), []).append(i)
        if not components:
            groups.append((identity, False, loose, None))
        for component in components.values():
            groups.append((identity, False, component, loose))

    # run index -> identity -> (other runs, whether the proof is a sticky queue)
    shared: dict[int, dict[str, tuple[set[int], bool]]] = {}
    for identity, proven, members, loose in groups:
        pools = [members] + ([loose] if loose else [])
        everyone = {k for pool in pools for k in pool}
        if len(everyone) < 2:
            continue
        for pool in pools:
            for key, indexes in pool.items():
                others: list[int] = []
                for other_pool in pools:
                    for other_key, other_indexes in other_pool.items():
                        if other_key != key:
                            others += other_indexes[:_OTHERS_KEPT - len(others)]
                        if len(others) >= _OTHERS_KEPT:
                            break
                for i in indexes:
                    kept = {j for j in others if not _copies(runs[i], runs[j])}
                    if not kept:
                        continue
                    seen, was_proven = shared.setdefault(i, {}).setdefault(identity, (set(), False))
                    seen |= kept
                    shared[i][identity] = (seen, was_proven or proven)

    found: list[list[Finding]] = [[] for _ in runs]
    for i, by_process in shared.items():
        run = runs[i]
        for identity, (others, proven) in sorted(by_process.items()):
            mine = run.identities.get(identity, [])
            learners = sorted({runs[j].learner for j in others}, key=learner_key)
            ordered = sorted(others, key=lambda j: (learner_key(runs[j].learner), runs[j].workflow_id))
            elsewhere = "; ".join(f"{runs[j].workflow_id} (events {_events(runs[j].identities.get(identity, []))})"
                                  for j in ordered[:4])
            more = len(others) - min(len(others), 4)
            proof = "its sticky queue" if proven else "its pid@host identity"
            found[i].append(Finding(
                CROSS_TALK,
                f"worker process {identity} (one process, by {proof}) did work in this run (events "
                f"{_events(mine)}) and in runs of {_names(learners)}: {elsewhere}"
                + (f" and {more} more" if more else "")
                + "; work done by another learner's worker earns no credit",
                mine[:_EVENTS_SHOWN]))
    return found


def _copies(a: RunWorkers, b: RunWorkers) -> bool:
    """True when ``a`` and ``b`` are one run handed in twice (same run id or same timings)."""
    return bool(a.run_id and a.run_id == b.run_id) or bool(a.fingerprint and a.fingerprint == b.fingerprint)


def owner_findings(workflow_id: str, learner: str, *, manifest_learner: str | None = None,
                   folders: Iterable[str] = (), known: set[str] | None = None) -> list[Finding]:
    """``owner-mismatch`` findings for one run graded as ``learner``'s.

    ``manifest_learner`` is the learner a bundle's manifest names; ``folders``
    the folder names the file sat in inside the submission. ``known`` holds
    the :func:`~grader.learner.learner_key` of every learner of the class:
    without a manifest, a workflow id or a folder is taken as naming another
    learner only when that learner is known (an LMS names folders its own
    way, and a run's id prefix that is nobody in the class proves nothing).
    ``known=None`` means every id counts (``grader check --learner ID`` on
    files or workflow ids given by hand). A bundle's manifest always counts:
    ``grader export`` writes one learner's runs, under that learner's name.
    """
    findings = []

    def counts(name: str) -> bool:
        return known is None or learner_key(name) in known

    if manifest_learner and not same_learner(manifest_learner, learner):
        findings.append(Finding(OWNER_MISMATCH, f"the bundle's manifest says it holds learner "
                                f"{manifest_learner}'s runs, but it was graded as {learner}'s"))
    owner = learner_of(workflow_id)
    if owner is not None and not same_learner(owner, learner) and counts(owner):
        findings.append(Finding(OWNER_MISMATCH, f"workflow id {workflow_id} names learner {owner}, but the run "
                                f"was graded as {learner}'s", [1]))
    for folder in folders:
        bundle = _BUNDLE_FOLDER.fullmatch(folder)
        named = bundle.group(1) if bundle else folder
        if not same_learner(named, learner) and (bundle or (known is not None and learner_key(named) in known)):
            findings.append(Finding(OWNER_MISMATCH, f"the run sits in folder {folder}, which names learner "
                                    f"{named}, but it was graded as {learner}'s"))
            break
    return findings


def _events(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:_EVENTS_SHOWN])
    return shown + (", ..." if len(ids) > _EVENTS_SHOWN else "")


def _names(learners: Sequence[str]) -> str:
    shown = learners[:5]
    text = ", ".join(shown)
    return text + (f" and {len(learners) - len(shown)} more" if len(learners) > len(shown) else "")
