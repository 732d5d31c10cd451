"""Course packs: each exercise the grader knows is one folder, found here.

A pack is a folder holding ``pack.json`` (what the exercise is: id, title,
the course and exercise it follows, the workflow and activity type names it
recognises, its experiments and their parameters), its rubric, its checks
(composed from the engine's evidence primitives in ``pack.json``, or written
in the pack's own ``checks.py`` where data cannot say it), its exercise and
solution apps and its golden histories. ``docs/writing-a-pack.md`` shows an
instructor how to write one.

Packs are looked for in this package's own folder (the built-in ones), then
in every folder named by the ``FAILURE_LAB_PACK_PATH`` environment variable
(separated like ``PATH``), then in folders added with ``--pack-path``
(:func:`add_pack_path`). A search folder may be a pack itself or hold packs
as subfolders. Loading a pack registers its checks and tells the engine's
catalog (:mod:`grader.engine.catalog`) what it grades; the engine itself
never imports a pack.
"""

from __future__ import annotations

import importlib
import json
import re
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from grader.engine import catalog
from grader.errors import BadInputError

#: The pack graded when none is named and none can be told from a history.
DEFAULT_PACK = "money-transfer"
#: Environment variable naming extra folders to look for packs in (os.pathsep separated).
PACK_PATH_ENV = "FAILURE_LAB_PACK_PATH"

_BUILTIN = Path(__file__).resolve().parent
_extra_paths: list[Path] = []
_loaded: dict[str, "Pack"] | None = None


class PackError(BadInputError):
    """A pack folder that cannot be loaded: a bad pack.json, rubric or checks module."""


@dataclass(frozen=True)
class Pack:
    """One course pack, loaded."""

    #: Its id, e.g. ``sagas``: what ``--pack`` names.
    id: str
    title: str
    #: The course and exercise it follows, in words.
    course: str
    exercise: str
    #: The folder it was loaded from.
    folder: Path
    #: Workflow type names it grades, every SDK spelling (compared case-insensitively).
    workflow_types: tuple[str, ...]
    #: Experiment id -> title, in the exercise's order.
    experiments: dict[str, str]
    #: Its rubric file.
    rubric_path: Path
    #: The app learners edit, and the reference; None when the pack ships none.
    exercise_dir: Path | None
    solution_dir: Path | None
    #: True for the packs shipped inside the grader.
    builtin: bool
    #: pack.json as read, for what only the pack's own code or the lab reads (task queue, simulate).
    data: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def workflow_label(self) -> str:
        """The workflow type as messages name it."""
        return self.workflow_types[0]

    @property
    def rubric_id(self) -> str:
        """The rubric's file name without its suffix: what ``--rubric`` may name."""
        return self.rubric_path.stem


def add_pack_path(*paths: str | Path) -> None:
    """Look for packs in ``paths`` too (``--pack-path``); packs load again on next use."""
    global _loaded
    for path in paths:
        folder = Path(path)
        if not folder.is_dir():
            raise PackError(f"--pack-path {path}: no such folder: name a pack folder or a folder of packs")
        if folder.resolve() not in [p.resolve() for p in _extra_paths]:
            _extra_paths.append(folder)
            # Processes the grader starts (batch's pool) find the same packs.
            os.environ[PACK_PATH_ENV] = os.pathsep.join(
                [p for p in os.environ.get(PACK_PATH_ENV, "").split(os.pathsep) if p] + [str(folder.resolve())])
    _loaded = None


def search_path() -> list[Path]:
    """Where packs are looked for, in order: built-in, FAILURE_LAB_PACK_PATH, then --pack-path."""
    from_env = [Path(p) for p in os.environ.get(PACK_PATH_ENV, "").split(os.pathsep) if p.strip()]
    seen: set[Path] = set()
    path = []
    for folder in [_BUILTIN, *from_env, *_extra_paths]:
        if folder.resolve() not in seen:
            seen.add(folder.resolve())
            path.append(folder)
    return path


def _pack_folders(root: Path) -> list[Path]:
    if (root / "pack.json").is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "pack.json").is_file())


def all_packs() -> dict[str, Pack]:
    """Every pack found, by id: the default pack first, then the others in folder order."""
    global _loaded
    if _loaded is None:
        found: dict[str, Pack] = {}
        for root in search_path():
            for folder in _pack_folders(root):
                pack = load_pack(folder, builtin=root == _BUILTIN)
                if pack.id in found and found[pack.id].folder.resolve() != folder.resolve():
                    raise PackError(f"two packs are called {pack.id!r}: {found[pack.id].folder} and {folder}; "
                                    "rename one (its pack.json id)")
                found[pack.id] = pack
        ordered = sorted(found.values(), key=lambda p: (p.id != DEFAULT_PACK, not p.builtin))
        _loaded = {p.id: p for p in ordered}
    return _loaded


def get_pack(pack_id: str) -> Pack:
    """The pack called ``pack_id``; a :class:`PackError` listing the known ones otherwise."""
    packs = all_packs()
    if pack_id not in packs:
        raise PackError(f"no pack {pack_id!r}: choose one of {', '.join(packs)} (`grader packs` lists them), "
                        f"or add a folder with --pack-path or {PACK_PATH_ENV}")
    return packs[pack_id]


def pack_for_workflow_type(name: Any) -> Pack | None:
    """The pack that grades workflow type ``name`` (case ignored), or None."""
    if not isinstance(name, str):
        return None
    wanted = name.lower()
    return next((p for p in all_packs().values() if wanted in (t.lower() for t in p.workflow_types)), None)


def pack_for_rubric(rubric: Any) -> Pack | None:
    """The pack whose experiments a loaded rubric grades, or None."""
    ids = {e.id for e in getattr(rubric, "experiments", ())}
    return next((p for p in all_packs().values() if ids and ids <= set(p.experiments)), None)


def _resolve(folder: Path, value: Any, what: str, *, pack_file: Path) -> Path | None:
    """A path pack.json names: relative to the pack, or ``@NAME`` for a folder the grader bundles."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise PackError(f"{pack_file}: {what} must be a path relative to the pack folder")
    if value.startswith("@"):
        from grader.resources import data_dir

        first, _, rest = value[1:].partition("/")
        return data_dir(first) / rest if rest else data_dir(first)
    return folder / value


def load_pack(folder: Path, *, builtin: bool = False) -> Pack:
    """Read one pack folder, register its checks and tell the engine's catalog what it grades."""
    pack_file = folder / "pack.json"
    try:
        data = json.loads(pack_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PackError(f"{pack_file}: cannot read the pack ({err})") from None
    if not builtin:  # the built-in ones are validated by the test suite (tests/test_packs.py)
        _validate(data, pack_file)
    experiments = {e["id"]: e["title"] for e in data["experiments"]}
    kind = catalog.ExerciseKind(
        pack_id=data["id"], title=data["title"], workflow_types=tuple(data["workflow_types"]),
        experiments=experiments, params=dict(data.get("params", {})),
        compensations={k.lower(): v.lower() for k, v in data.get("compensations", {}).items()},
        fixable=tuple(a.lower() for a in data.get("fixable", ())),
        defined_by={e["id"]: e["defined_by"] for e in data["experiments"] if e.get("defined_by")},
        colours={k.lower(): v for k, v in data.get("colours", {}).items()})
    try:
        catalog.register(kind)
    except ValueError as err:
        raise PackError(f"{pack_file}: {err}") from None
    _load_checks(folder, data, builtin=builtin, pack_file=pack_file)
    rubric_path = _resolve(folder, data.get("rubric", "rubric.json"), "rubric", pack_file=pack_file)
    assert rubric_path is not None
    catalog.RUBRICS[rubric_path.stem] = rubric_path
    return Pack(id=data["id"], title=data["title"], course=data.get("course", ""), exercise=data.get("exercise", ""),
                folder=folder, workflow_types=kind.workflow_types, experiments=experiments, rubric_path=rubric_path,
                exercise_dir=_resolve(folder, data.get("exercise_app"), "exercise_app", pack_file=pack_file),
                solution_dir=_resolve(folder, data.get("solution_app"), "solution_app", pack_file=pack_file),
                builtin=builtin, data=data)


def _validate(data: Any, pack_file: Path) -> None:
    """Refuse a pack.json the pack schema rejects, naming the first bad field."""
    from grader.resources import schema_path

    import jsonschema  # only when packs load, which grading needs anyway

    schema = json.loads(schema_path("pack").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise PackError(f"{pack_file}: invalid pack at {where}: {errors[0].message}")


def _load_checks(folder: Path, data: dict[str, Any], *, builtin: bool, pack_file: Path) -> None:
    """Register the pack's checks: those composed in pack.json, then its own checks.py if it has one."""
    from grader.engine.primitives import compose_check

    for spec in data.get("checks", ()):
        try:
            compose_check(spec)
        except ValueError as err:
            raise PackError(f"{pack_file}: check {spec.get('id')!r}: {err}") from None
    if not (folder / "checks.py").is_file():
        return
    if builtin:
        importlib.import_module(f"{__name__}.{folder.name}.checks")
        return
    name = f"failure_lab_pack_{data['id'].replace('-', '_')}_checks"
    if name in sys.modules:
        return
    from importlib.util import module_from_spec, spec_from_file_location  # only packs from --pack-path need these

    spec = spec_from_file_location(name, folder / "checks.py")
    if spec is None or spec.loader is None:
        raise PackError(f"{folder / 'checks.py'}: cannot be loaded as a Python module")
    module = module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - an instructor's code: say where, never a traceback
        del sys.modules[name]
        raise PackError(f"{folder / 'checks.py'}: the pack's checks failed to load: {type(err).__name__}: {err}") \
            from None


#: The first event names the workflow type; a history's first few KiB hold it.
_WORKFLOW_TYPE = re.compile(rb'"workflowType"\s*:\s*\{\s*"name"\s*:\s*"([^"\\]{1,200})"')
#: How many files :func:`packs_in` looks at, and how much of each: enough to tell a class's packs apart.
PEEK_FILES, PEEK_BYTES = 2000, 64 * 1024


def packs_in(paths: list[Path]) -> list[Pack]:
    """The packs whose workflows the history files under ``paths`` hold, default pack first.

    Only the start of each ``*.json`` file is read (its first event names the
    workflow type), at most :data:`PEEK_FILES` files; zips and unreadable
    files are left to the real reading, which reports them.
    """
    return packs_of_workflow_types(_workflow_types_in(paths))


def _workflow_types_in(paths: list[Path]) -> Iterator[str]:
    """The workflow type named at the start of each history file under ``paths`` (see :func:`packs_in`).

    This runs before a batch can start grading, with the other cores idle:
    the folders are walked with ``os.walk`` (a ``Path.rglob`` made a path
    object per entry and cost more than the reads), links are passed over
    as the real reading passes them over, and a file's first 4 KiB are read
    first, which hold the start event of every export measured; the rest of
    :data:`PEEK_BYTES` is read only when they do not name the type.
    """
    seen = 0
    for root in paths:
        root = os.fspath(root)
        is_folder = os.path.isdir(root)
        walk: Iterable[tuple[str, list[str], list[str]]] = \
            os.walk(root) if is_folder else [(os.path.dirname(root), [], [os.path.basename(root)])]
        for folder, _, names in walk:
            for name in names:
                if seen >= PEEK_FILES:
                    return
                if is_folder and not name.endswith(".json"):
                    continue
                seen += 1
                head = _head(os.path.join(folder, name))
                match = _WORKFLOW_TYPE.search(head)
                if match:
                    yield match.group(1).decode("utf-8", "replace")


_PEEK_FIRST = 4096


def _head(path: str) -> bytes:
    """The first bytes of the regular file ``path`` (see :func:`_workflow_types_in`); b"" for anything else."""
    try:
        # Regular files only, links not followed: a named pipe would block the read, a device never end.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        head = os.read(fd, _PEEK_FIRST)
        if len(head) == _PEEK_FIRST and not _WORKFLOW_TYPE.search(head):
            head += os.read(fd, PEEK_BYTES - _PEEK_FIRST)
        return head
    except OSError:
        return b""
    finally:
        os.close(fd)


def packs_of_workflow_types(names: Iterable[str]) -> list[Pack]:
    """The packs that grade the workflow types ``names`` (unknown ones left out), in registry order."""
    found: dict[str, Pack] = {}
    for name in names:
        pack = pack_for_workflow_type(name)
        if pack is not None:
            found.setdefault(pack.id, pack)
    order = list(all_packs())
    return sorted(found.values(), key=lambda p: order.index(p.id))


def rubric_for_paths(paths: list[Path]) -> str | None:
    """The rubric that grades the histories under ``paths`` pack by pack, or None for the default pack's.

    One pack: its rubric. Several: their rubrics joined with ``+`` (the engine
    grades each run on its own pack's experiments).
    """
    return rubric_for_packs(packs_in(paths))


def rubric_for_workflow_types(names: Iterable[str]) -> str | None:
    """The rubric that grades runs of the workflow types ``names`` pack by pack, or None for the default pack's.

    What a live read without ``--pack`` grades with: the packs are told from
    the runs the server returned, as :func:`rubric_for_paths` tells them from files.
    """
    return rubric_for_packs(packs_of_workflow_types(names))


def rubric_for_packs(packs: list[Pack]) -> str | None:
    """One pack: its rubric; several: their rubrics joined with ``+``; none or only the default pack: None."""
    if not packs or [p.id for p in packs] == [DEFAULT_PACK]:
        return None
    return "+".join(p.rubric_id if p.builtin else str(p.rubric_path) for p in packs)


def pack_scenarios(pack: Pack) -> Any:
    """The pack's ``scenarios`` module (what ``grader simulate --pack`` runs); PackError when it has none."""
    if not (pack.folder / "scenarios.py").is_file():
        raise PackError(f"pack {pack.id} has no simulate scenarios (no scenarios.py in {pack.folder})")
    if pack.builtin:
        return importlib.import_module(f"{__name__}.{pack.folder.name}.scenarios")
    name = f"failure_lab_pack_{pack.id.replace('-', '_')}_scenarios"
    if name not in sys.modules:
        from importlib.util import module_from_spec, spec_from_file_location  # only packs from --pack-path need these

        spec = spec_from_file_location(name, pack.folder / "scenarios.py")
        if spec is None or spec.loader is None:
            raise PackError(f"{pack.folder / 'scenarios.py'}: cannot be loaded as a Python module")
        module = module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
