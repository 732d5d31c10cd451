"""Rewrite references to grader modules from the old flat layout to the house's rooms (issue 15 part 5).

The house commits were made with it. A branch started before the house
landed can run it on its own files after merging main, e.g.

    python scripts/house_rewrite.py $(git diff --name-only main... -- '*.py' '*.md')

It edits the given files in place and prints each one it changed. It knows
every moved module, the names that moved out of a split module (``Loaded``
to ``grader.sources.loaded``, ``recorded_ui_url`` to
``grader.sources.server_note``, ``BatchResult`` to
``grader.engine.classreport``, ...), dotted names in prose and ``grader/X.py``
paths. It is idempotent: new paths are left alone.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ONE_TO_ONE = {
    **{f"grader.{m}": f"grader.engine.{m}" for m in
       "history evidence integrity checks rubric report runview timeline learner".split()},
    "grader.bundles": "grader.sources.bundles",
    "grader.connect": "grader.sources.connect",
    **{f"grader.{m}": f"grader.lab.{m}" for m in
       "server app processes simulate simulate_options workspace replay".split()},
    "grader.gradescope": "grader.classroom.autograder",
    "grader.formats.safe": "grader.escape",
}

CLASSREPORT = "grader.engine.classreport"
#: Modules some of whose names moved elsewhere: old module -> (name -> new module, module for the rest).
SPLIT = {
    "grader.sources": ({"Loaded": "grader.sources.loaded", "read_files": "grader.sources.files"},
                       "grader.sources.live"),
    "grader.server": ({n: "grader.sources.server_note" for n in
                       ("state_dir", "record_server", "forget_server", "recorded_ui_url", "_same_host")},
                      "grader.lab.server"),
    "grader.classroom.batch": ({n: CLASSREPORT for n in
                                ("STATUSES", "GRADED", "MISSING", "NOT_GRADABLE", "UNREADABLE_FILES", "SUSPECT",
                                 "Attention", "ClassRow", "BatchResult")}, "grader.classroom.batch"),
    "grader.classroom.regrade": ({"Cell": CLASSREPORT, "Change": CLASSREPORT}, "grader.classroom.regrade"),
    "grader.classroom.gradebook": ({"read_learners": CLASSREPORT, "_loads": CLASSREPORT,
                                    "FEEDBACK_TITLE": "grader.classroom.feedback"}, "grader.classroom.gradebook"),
}

PATHS = {
    **{f"grader/{old[7:].replace('.', '/')}.py": f"grader/{new[7:].replace('.', '/')}.py"
       for old, new in ONE_TO_ONE.items()},
    "grader/sources.py": "grader/sources/",
}

_MODS = sorted(list(ONE_TO_ONE) + list(SPLIT), key=len, reverse=True)
_FROM = re.compile(r"^(?P<indent>[ \t]*)from (?P<mod>" + "|".join(map(re.escape, _MODS)) +
                   r") import (?P<names>\([^)]*\)|[^\n]*(?:\\\n[^\n]*)*)", re.M)
_DOTTED = re.compile(r"(?<![\w.])(?P<mod>" + "|".join(map(re.escape, _MODS)) + r")(?![\w])(?P<attr>\.\w+)?")
_PATH = re.compile(r"(?<![\w/.])(" + "|".join(map(re.escape, sorted(PATHS, key=len, reverse=True))) + r")")


def _target(mod: str, name: str | None) -> str:
    if mod in SPLIT:
        names, rest = SPLIT[mod]
        return names.get(name, rest) if name else (rest if mod != "grader.sources" else mod)
    return ONE_TO_ONE[mod]


def _rewrite_from(m: re.Match) -> str:
    indent, mod, raw = m["indent"], m["mod"], m["names"]
    comment = ""
    body = raw
    if not raw.startswith("(") and "#" in raw:
        body, comment = raw.split("#", 1)
        comment = "  #" + comment
    items = [i.strip() for i in re.sub(r"#[^\n]*", "", body.strip("()")).replace("\\\n", " ").split(",")]
    items = [i for i in items if i]
    groups: dict[str, list[str]] = {}
    for item in items:
        name = item.split(" as ")[0].strip()
        groups.setdefault(_target(mod, name), []).append(item)
    if len(groups) == 1 and mod not in SPLIT:
        return m.group(0).replace(f"from {mod} import", f"from {_target(mod, None)} import", 1)
    if len(groups) == 1:
        (new,) = groups
        return m.group(0).replace(f"from {mod} import", f"from {new} import", 1)
    lines = []
    for new, names in sorted(groups.items()):
        lines.append(f"{indent}from {new} import {', '.join(names)}")
    return "\n".join(lines) + comment


def _rewrite_dotted(m: re.Match) -> str:
    mod, attr = m["mod"], m["attr"] or ""
    if mod in SPLIT:
        names, rest = SPLIT[mod]
        name = attr[1:]
        if name in names:
            return names[name] + attr
        if mod == "grader.sources" and name in ("loaded", "files", "live", "bundles", "connect", "server_note"):
            return mod + attr
        if mod in ("grader.sources", "grader.server"):
            return (rest if attr else (mod if mod == "grader.sources" else rest)) + attr
        return mod + attr
    return ONE_TO_ONE[mod] + attr


_FROM_PACKAGE = re.compile(r"^(?P<indent>[ \t]*)from grader import (?P<names>[\w ,]+?)(?P<rest>[ \t]*(?:#[^\n]*)?)$", re.M)


def _rewrite_from_package(m: re.Match) -> str:
    """``from grader import replay`` -> ``from grader.lab import replay`` (names that stayed stay)."""
    groups: dict[str, list[str]] = {}
    for item in (i.strip() for i in m["names"].split(",") if i.strip()):
        new = ONE_TO_ONE.get("grader." + item.split(" as ")[0].strip())
        groups.setdefault(new.rpartition(".")[0] if new else "grader", []).append(
            item if not new or new.rpartition(".")[2] == item.split(" as ")[0].strip()
            else f"{new.rpartition('.')[2]} as {item.split(' as ')[-1].strip()}")
    if list(groups) == ["grader"]:
        return m.group(0)
    return "\n".join(f"{m['indent']}from {pkg} import {', '.join(names)}" for pkg, names in sorted(groups.items())) + m["rest"]


def rewrite(text: str) -> str:
    """``text`` with every old module path, import and file path replaced by its new one."""
    text = _FROM_PACKAGE.sub(_rewrite_from_package, text)
    text = _FROM.sub(_rewrite_from, text)
    # Lines already rewritten by _FROM name new modules, which _DOTTED leaves alone (they are not old names).
    text = _DOTTED.sub(_rewrite_dotted, text)
    return _PATH.sub(lambda m: PATHS[m.group(1)], text)


def main(paths: list[str]) -> None:
    """Rewrite each file in place; print the ones that changed."""
    for p in map(Path, paths):
        old = p.read_text()
        new = rewrite(old)
        if new != old:
            p.write_text(new)
            print(p)


if __name__ == "__main__":
    if not sys.argv[1:] or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if sys.argv[1:] else 2)
    main(sys.argv[1:])
