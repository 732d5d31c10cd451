"""Course packs (issue 15): the registry, the pack data, and an engine that names no exercise."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import jsonschema
import pytest

import grader
from grader.engine import catalog
from grader.engine.checks import CHECKS
from grader.engine.rubric import load_rubric, rubric_schema
from grader.packs import DEFAULT_PACK, PackError, all_packs, get_pack, pack_for_workflow_type
from grader.resources import schema_path

ROOT = Path(grader.__file__).resolve().parent
#: The rooms that must grade any exercise without naming one (issue 15 item 1).
NEUTRAL_ROOMS = ("engine", "formats", "classroom")
#: The picture calls every compensation mark "refund" (the HTML legend and its tests name the kind); it is
#: a word of the drawing's vocabulary, drawn for any pack's compensation, not a test of an activity's name.
ALLOWED = {("engine/runview.py", "refund")}


def _pack_names() -> tuple[set[str], set[str]]:
    """Every workflow type and activity name a pack recognises, lowercased."""
    workflows, activities = set(), set()
    for pack in all_packs().values():
        workflows |= {w.lower() for w in pack.workflow_types}
        for spellings in pack.data.get("activities", {}).values():
            activities |= {a.lower() for a in spellings}
    return workflows, activities


def test_every_built_in_pack_validates_and_loads():
    schema = json.loads(schema_path("pack").read_text())
    for pack in all_packs().values():
        if not pack.builtin:
            continue
        jsonschema.Draft202012Validator(schema).validate(pack.data)
        jsonschema.Draft202012Validator(rubric_schema()).validate(json.loads(pack.rubric_path.read_text()))
        rubric = load_rubric(pack.rubric_path)
        assert {e.id for e in rubric.experiments} <= set(pack.experiments)
        assert all(CHECKS[c.id].experiment in pack.experiments for e in rubric.experiments for c in e.checks)
    assert next(iter(all_packs())) == DEFAULT_PACK


def test_the_default_pack_is_found_by_its_workflow_type_in_every_spelling():
    for name in ("MoneyTransfer", "moneyTransfer", "MONEYTRANSFER"):
        assert pack_for_workflow_type(name).id == DEFAULT_PACK
    assert pack_for_workflow_type("PayInvoice") is None
    assert catalog.kind_of_workflow_type("moneytransfer").pack_id == DEFAULT_PACK


def test_an_unknown_pack_is_one_line_naming_the_known_ones():
    with pytest.raises(PackError, match="no pack 'nope': choose one of money-transfer"):
        get_pack("nope")


def test_the_engine_formats_and_classroom_name_no_pack():
    """No workflow type a pack grades appears in their source, and no activity name as a string of code.

    Prose may use an activity as an example ("e.g. a deposit"); code that
    compares against ``"deposit"`` belongs in the pack.
    """
    workflows, activities = _pack_names()
    assert workflows and activities
    found = []
    for room in NEUTRAL_ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            lowered = text.lower()
            found += [f"{path.relative_to(ROOT)}: {w}" for w in workflows if w in lowered]
            if room != "engine":
                continue
            for node in ast.walk(ast.parse(text)):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and node.value.lower() in activities
                        and (str(path.relative_to(ROOT)), node.value) not in ALLOWED):
                    found.append(f"{path.relative_to(ROOT)} line {node.lineno}: {node.value!r}")
    assert found == [], "move these into their pack:\n" + "\n".join(found)
