"""The package's rooms and the direction of their imports (issue 15 part 5, "The house").

Reads the source with ``ast`` only (nothing is imported), so it is fast and
sees imports inside functions too. Two rules: no import circle among the
modules, and the engine never reaches up into the rooms built on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grader

ROOT = Path(grader.__file__).resolve().parent

#: The rooms built on the engine; the engine imports none of them, not even inside a function.
ABOVE_THE_ENGINE = ("grader.sources", "grader.formats", "grader.lab", "grader.classroom", "grader.cli",
                    "grader.packs", "grader.api", "grader.watch")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "data" not in p.relative_to(ROOT).parts}


def _imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """``(imported grader module, line, at module level)`` for every grader import in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top) for a in child.names if a.name.split(".")[0] == "grader")
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # a relative import: resolve it against this module's package
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] == "grader":
                    for alias in child.names:
                        # `from grader.x import y` names the module grader.x.y when there is one.
                        sub = f"{base}.{alias.name}"
                        found.append((sub if sub in MODULES else base, child.lineno, top))
            visit(child, inner)

    visit(tree, True)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_rooms_exist_and_the_old_modules_are_gone():
    for room in ("grader.engine", "grader.sources", "grader.lab", "grader.classroom", "grader.formats", "grader.cli"):
        assert room in MODULES, f"{room} is missing"
    moved = ["history", "evidence", "integrity", "checks", "rubric", "report", "runview", "timeline", "learner",
             "sources", "bundles", "connect", "server", "app", "processes", "simulate", "simulate_options",
             "workspace", "replay", "gradescope"]
    left = [m for m in moved if (ROOT / f"{m}.py").exists()] + (["formats/safe"] if (ROOT / "formats" / "safe.py").exists() else [])
    assert left == [], f"modules still at their old place: {left}"


def test_every_grader_import_names_a_module_that_exists():
    unknown = [f"{name} line {line} imports {target}" for name, found in IMPORTS.items()
               for target, line, _ in found if target not in MODULES]
    assert unknown == [], "\n".join(unknown)


def _circle(module_level_only: bool) -> list[str] | None:
    """One import circle among grader's modules, as the path that closes it, or None."""
    edges = {name: sorted({t for t, _, top in found if (top or not module_level_only) and t != name and t in MODULES})
             for name, found in IMPORTS.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (circle := walk(nxt)):
                return circle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (circle := walk(start)):
            return circle
    return None


def test_no_import_circle():
    """Module-level imports form no cycle: one would fail at import time, in whichever order modules load."""
    circle = _circle(module_level_only=True)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_no_import_circle_through_imports_inside_functions():
    """Nor do imports inside functions: the four circles the house broke all hid there.

    A lazy import that closes a circle works, but it means two modules each
    need the other, so neither can be read (or moved) alone; put the shared
    part in the lower room instead.
    """
    circle = _circle(module_level_only=False)
    assert circle is None, "import circle (counting imports inside functions): " + " -> ".join(circle)


def test_the_engine_imports_nothing_above_it():
    """grader.engine reads histories and grades; where they come from and how they look are not its business."""
    wrong = [f"{name} line {line} imports {target}" for name, found in IMPORTS.items()
             if name == "grader.engine" or name.startswith("grader.engine.")
             for target, line, _ in found
             if any(target == room or target.startswith(room + ".") for room in ABOVE_THE_ENGINE)]
    assert wrong == [], "the engine must not import these (move the code to the right room):\n" + "\n".join(wrong)
