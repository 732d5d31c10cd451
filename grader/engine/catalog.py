"""What the course packs teach the engine: their experiments, parameters and workflow types.

The engine grades any Temporal exercise, but knows none by name. Each pack
(``grader/packs/<id>/``, found by :mod:`grader.packs`) registers one
:class:`ExerciseKind` here when it loads; the history reader, the rubric
loader, the report and the run picture read this catalog instead of naming
an exercise's workflow or activities themselves. The engine never imports a
pack: the arrow points from the packs down to this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class ExerciseKind:
    """One pack as the engine sees it."""

    #: The pack's id, e.g. ``sagas``.
    pack_id: str
    #: The pack's title, for messages.
    title: str
    #: Workflow type names the pack recognises, in every SDK spelling (compared case-insensitively).
    workflow_types: tuple[str, ...]
    #: Experiment id -> title, in the order the exercise teaches them.
    experiments: dict[str, str]
    #: Parameters the pack's checks understand, with their defaults.
    params: dict[str, Any] = field(default_factory=dict)
    #: Compensation activity type -> the step activity type it undoes (lowercase names).
    compensations: dict[str, str] = field(default_factory=dict)
    #: Activity types whose failure-then-success on a new worker is drawn as a live fix.
    fixable: tuple[str, ...] = ()
    #: Experiment id -> what no run showed when none counts for it (the note of a not-attempted experiment).
    defined_by: dict[str, str] = field(default_factory=dict)
    #: Activity type (lowercase) -> the colour pictures draw its attempts in.
    colours: dict[str, str] = field(default_factory=dict)

    @property
    def workflow_label(self) -> str:
        """The workflow type as messages name it (its first spelling)."""
        return self.workflow_types[0] if self.workflow_types else self.pack_id


#: Every registered kind, by pack id, in registration order.
KINDS: dict[str, ExerciseKind] = {}
#: Every experiment of every registered pack: id -> title (what rubrics and ``--experiment`` name).
EXPERIMENTS: dict[str, str] = {}
#: Every check parameter of every registered pack, with its default (a rubric may override them).
DEFAULT_PARAMS: dict[str, Any] = {}
#: Rubric name -> file, for the rubrics packs ship (``--rubric sagas``).
RUBRICS: dict[str, Path] = {}


def register(kind: ExerciseKind) -> ExerciseKind:
    """Add ``kind`` to the catalog (again is harmless); refuse an experiment id another pack owns."""
    for exp_id in kind.experiments:
        owner = experiment_owner(exp_id)
        if owner is not None and owner.pack_id != kind.pack_id:
            raise ValueError(f"experiment {exp_id!r} of pack {kind.pack_id!r} is already pack {owner.pack_id!r}'s")
    KINDS[kind.pack_id] = kind
    _OWNER_OF.clear()  # a new kind may own names looked up (and not found) before
    _KIND_OF_TYPE.clear()
    EXPERIMENTS.update(kind.experiments)
    for name, value in kind.params.items():
        DEFAULT_PARAMS.setdefault(name, value)
    return kind


#: Answers of :func:`experiment_owner` and :func:`kind_of_workflow_type`, asked several times for
#: every history graded. Only :func:`register` changes ``KINDS``, and it empties them.
_OWNER_OF: dict[str, ExerciseKind | None] = {}
_KIND_OF_TYPE: dict[str, ExerciseKind | None] = {}
#: Most names cached: workflow types come from the files read, and odd files must not grow it forever.
_CACHE_LIMIT = 1024


def _remembered(cache: dict[str, ExerciseKind | None], key: str,
                look_up: Callable[[], ExerciseKind | None]) -> ExerciseKind | None:
    """``cache[key]``, looked up (and kept while the cache has room) the first time."""
    if key in cache:
        return cache[key]
    found = look_up()
    if len(cache) < _CACHE_LIMIT:
        cache[key] = found
    return found


def kind_of_workflow_type(name: Any) -> ExerciseKind | None:
    """The registered kind that recognises workflow type ``name`` (case ignored), or None."""
    if not isinstance(name, str):
        return None
    wanted = name.lower()
    return _remembered(_KIND_OF_TYPE, name, lambda: next(
        (k for k in KINDS.values() if wanted in (t.lower() for t in k.workflow_types)), None))


def experiment_owner(experiment_id: str) -> ExerciseKind | None:
    """The registered kind whose experiment ``experiment_id`` is, or None."""
    def look_up() -> ExerciseKind | None:
        return next((k for k in KINDS.values() if experiment_id in k.experiments), None)

    return _remembered(_OWNER_OF, experiment_id, look_up) if isinstance(experiment_id, str) else look_up()


def workflow_label_of(experiment_id: str) -> str:
    """The workflow type an experiment grades, as a message names it ("a workflow" when unknown)."""
    owner = experiment_owner(experiment_id)
    return owner.workflow_label if owner else "matching"


def defined_by(experiment_id: str) -> str:
    """The note of an experiment no run shows: what its defining events would have been."""
    owner = experiment_owner(experiment_id)
    return (owner.defined_by.get(experiment_id) if owner else None) or "no run shows it"


def colour_sets() -> list[dict[str, str]]:
    """Each registered pack's activity colours (lowercase activity type -> colour), in registration order."""
    return [k.colours for k in KINDS.values() if k.colours]


def known_workflow_types() -> list[str]:
    """The first spelling of every registered kind's workflow type, for messages."""
    return [k.workflow_label for k in KINDS.values()]


def compensated_step(activity_type: str) -> str | None:
    """The step activity a compensation activity undoes, when some pack declares it one."""
    wanted = activity_type.lower()
    for kind in KINDS.values():
        if wanted in kind.compensations:
            return kind.compensations[wanted]
    return None


def is_fixable(activity_type: str) -> bool:
    """True when some pack draws this activity's failure-then-success on a new worker as a live fix."""
    wanted = activity_type.lower()
    return any(wanted in kind.fixable for kind in KINDS.values())
