"""Rubrics: which checks grade each experiment, for how many points, with which parameters.

A rubric is data (JSON or TOML) validated against ``rubrics/schema.json``.
An instructor copies ``rubrics/failure-simulation.json``, changes points and
parameters, and passes the copy with ``--rubric PATH``; no code changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from grader.engine import catalog
from grader.engine.checks import CHECKS, DEFAULT_PARAMS, EXPERIMENTS, Check
from grader.errors import RubricError

#: The rubric used when none is named.
DEFAULT_RUBRIC = "failure-simulation"

#: Gradescope's visibility levels, which a rubric may give a check and its hint.
VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")


def rubrics_dir() -> Path:
    """The folder of bundled rubrics (``rubrics/`` in the checkout, packed into the wheel)."""
    from grader.resources import data_dir

    return data_dir("rubrics")


@dataclass(frozen=True)
class RubricCheck:
    """One check as a rubric weighs it."""

    id: str
    points: float
    #: An optional check adds points when it passes but never fails its experiment.
    required: bool = True
    #: Gradescope visibility of the check's result (see :data:`VISIBILITIES`).
    visibility: str = "visible"
    #: Gradescope visibility of the check's hint; after the due date unless the rubric says otherwise.
    hint_visibility: str = "after_due_date"
    #: The registered check (its title and function), looked up once here rather than per history.
    check: Check | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RubricExperiment:
    """One experiment of a rubric."""

    id: str
    title: str
    #: Optional experiments are reported but kept out of the total score and exit code.
    required: bool
    #: Check parameters, the defaults of grader.engine.checks.DEFAULT_PARAMS overridden by the rubric.
    params: dict[str, Any]
    checks: tuple[RubricCheck, ...]

    @cached_property
    def max_points(self) -> float:
        """The points of all its checks together."""
        return sum(rc.points for rc in self.checks)

    @cached_property
    def check_lines(self) -> tuple[tuple[str, str, float, bool, str, str], ...]:
        """What a report line says of each check before it runs, in order: id, title, points,
        required, visibility and hint visibility (read once; most gradings list checks that did not run)."""
        return tuple((rc.id, rc.check.title, rc.points, rc.required, rc.visibility, rc.hint_visibility)
                     for rc in self.checks)


@dataclass(frozen=True)
class Rubric:
    """A validated rubric."""

    id: str
    version: str
    title: str
    experiments: tuple[RubricExperiment, ...]
    #: Where it was read from.
    path: str = field(default="", compare=False)

    def experiment(self, experiment_id: str) -> RubricExperiment | None:
        """The experiment with that id, or None."""
        return next((e for e in self.experiments if e.id == experiment_id), None)

    def classifying_params(self) -> dict[str, Any]:
        """The parameters that classifying a run reads: each experiment's, where the rubric changed a default.

        Worked out once, not for every history graded. Packs only ever add
        defaults (they never change one), so the answer holds while their
        number stays the same; a pack loaded later makes it worked out again.
        """
        known = self.__dict__.get("_classifying")
        if known is not None and known[0] == len(DEFAULT_PARAMS):
            return known[1]
        params: dict[str, Any] = {}
        for spec in self.experiments:
            params.update({k: v for k, v in spec.params.items() if k not in params or v != DEFAULT_PARAMS.get(k)})
        # A frozen dataclass: the answer is kept beside its fields, as functools.cached_property keeps its own.
        self.__dict__["_classifying"] = (len(DEFAULT_PARAMS), params)
        return params


@lru_cache(maxsize=1)
def rubric_schema() -> dict[str, Any]:
    """The JSON Schema every rubric must match."""
    from grader.resources import schema_path

    return json.loads(schema_path("rubric").read_text())


def schema_errors(data: Any, *, source: str) -> None:
    """Raise :class:`RubricError` naming the first field of ``data`` the rubric schema rejects."""
    import jsonschema  # only here: commands that read no user rubric never pay for its import

    validator = jsonschema.Draft202012Validator(rubric_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise RubricError(f"{source}: invalid rubric at {where}: {err.message}")


def find_rubric(name_or_path: str | Path) -> Path:
    """A bundled rubric name (``failure-simulation``) or a file path -> the rubric file."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    for suffix in (".json", ".toml"):
        bundled = rubrics_dir() / f"{name_or_path}{suffix}"
        if bundled.is_file():
            return bundled
    shipped = catalog.RUBRICS.get(str(name_or_path))
    if shipped is not None and shipped.is_file():
        return shipped
    names = sorted({p.stem for p in rubrics_dir().glob("*.*") if p.stem != "schema"} | set(catalog.RUBRICS))
    raise RubricError(f"no rubric {str(name_or_path)!r}: pass a rubric file path or one of: "
                      f"{', '.join(names) or 'none found'}")


def load_rubric(name_or_path: str | Path = DEFAULT_RUBRIC) -> Rubric:
    """Find, parse and validate a rubric; raise :class:`RubricError` naming the file and field.

    ``A+B`` (names or paths joined by ``+``) grades several packs at once: see :func:`combine_rubrics`.
    """
    if isinstance(name_or_path, str) and "+" in name_or_path and not Path(name_or_path).is_file():
        return combine_rubrics([load_rubric(part) for part in name_or_path.split("+") if part],
                               name=name_or_path)
    path = find_rubric(name_or_path)
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError) as err:  # TOMLDecodeError is a ValueError
        raise RubricError(f"{path}: cannot read the rubric ({err})") from None
    # A bundled rubric ships in the same package as the schema and is validated
    # against it by the test suite before release (tests/test_project.py).
    # Importing jsonschema to check it again would be a fifth of every
    # `grader check --history` (benchmarks/bench_startup.py); a rubric the user
    # names by path is always checked.
    from grader.resources import package_root

    # The built-in packs' rubrics ship inside the package and are checked the same way.
    bundled = (path.resolve().parent == rubrics_dir().resolve()
               or path.resolve().is_relative_to(package_root() / "packs"))
    return rubric_from_data(data, source=str(path), check_schema=not bundled)


def _non_finite(data: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], float] | None:
    """The path and value of the first NaN or infinity in ``data``, else None.

    Python's json reads ``NaN`` and ``Infinity`` and TOML has ``nan`` and
    ``inf``, but the schema's ``minimum`` cannot catch them (every comparison
    with NaN is false): a rubric worth "nan/nan" points must not load.
    """
    if isinstance(data, float) and not math.isfinite(data):
        return path, data
    children = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in children:
        found = _non_finite(value, (*path, key))
        if found:
            return found
    return None


def rubric_from_data(data: Any, *, source: str = "<rubric>", check_schema: bool = True) -> Rubric:
    """Validate decoded rubric data against the schema (unless told not to) and the known checks."""
    bad_number = _non_finite(data)
    if bad_number:
        where = "/".join(str(p) for p in bad_number[0]) or "(top level)"
        raise RubricError(f"{source}: invalid rubric at {where}: {bad_number[1]} is not a finite number")
    if check_schema:
        schema_errors(data, source=source)
    experiments = []
    seen: set[str] = set()
    for index, exp in enumerate(data["experiments"]):
        if exp["id"] not in EXPERIMENTS:
            raise RubricError(f"{source}: invalid rubric at experiments/{index}/id: no experiment {exp['id']!r} "
                              f"in any pack (known: {', '.join(EXPERIMENTS)})")
        if exp["id"] in seen:
            raise RubricError(f"{source}: invalid rubric at experiments/{index}/id: "
                              f"{exp['id']!r} appears twice")
        seen.add(exp["id"])
        checks = []
        listed: set[str] = set()
        for cindex, chk in enumerate(exp["checks"]):
            if chk["id"] in listed:  # it would count its points twice
                raise RubricError(f"{source}: invalid rubric at experiments/{index}/checks/{cindex}/id: "
                                  f"{chk['id']!r} appears twice in {exp['id']}")
            listed.add(chk["id"])
            known = CHECKS.get(chk["id"])
            if known is None or known.experiment != exp["id"]:
                choices = ", ".join(c for c, k in CHECKS.items() if k.experiment == exp["id"])
                raise RubricError(f"{source}: invalid rubric at experiments/{index}/checks/{cindex}/id: "
                                  f"no check {chk['id']!r} in {exp['id']} (known: {choices})")
            checks.append(RubricCheck(chk["id"], float(chk["points"]), chk.get("required", True),
                                      visibility=chk.get("visibility", "visible"),
                                      hint_visibility=chk.get("hint_visibility", "after_due_date"),
                                      check=known))
        experiments.append(RubricExperiment(
            id=exp["id"],
            title=exp.get("title") or EXPERIMENTS[exp["id"]],
            required=exp.get("required", True),
            params={**DEFAULT_PARAMS, **exp.get("params", {})},
            checks=tuple(checks),
        ))
    order = list(EXPERIMENTS)
    experiments.sort(key=lambda e: order.index(e.id))
    return Rubric(id=data["id"], version=str(data["version"]), title=data.get("title", data["id"]),
                  experiments=tuple(experiments), path=source)


def combine_rubrics(rubrics: list[Rubric], *, name: str = "") -> Rubric:
    """One rubric grading the experiments of several (each pack's runs on its own experiments).

    Its id and version join theirs with ``+``; ``name`` is what :func:`load_rubric` reads it back from.
    """
    seen: set[str] = set()
    for rubric in rubrics:
        clash = seen & {e.id for e in rubric.experiments}
        if clash:
            raise RubricError(f"{rubric.path}: experiment {sorted(clash)[0]!r} is in two of the rubrics joined")
        seen |= {e.id for e in rubric.experiments}
    if len(rubrics) == 1:
        return rubrics[0]
    return Rubric(id="+".join(r.id for r in rubrics), version="+".join(r.version for r in rubrics),
                  title="; ".join(r.title for r in rubrics),
                  experiments=tuple(e for r in rubrics for e in r.experiments),
                  path=name or "+".join(r.path for r in rubrics))
