"""Snapshot of every grade the offline path gives, to prove a speed-up changed no result.

Grades, each on its own and in memory the way ``grader check FILE`` does
without replay (``load_json_text`` -> ``build_evidence`` ->
``integrity.assess`` -> ``report.grade``):

* every history under ``tests/goldens/`` and ``grader/packs/sagas/goldens/``
  with the default rubric, and the sagas goldens with the sagas rubric too;
* a few hundred fuzzed histories (``scripts/fuzz_histories.py``'s
  :class:`Fuzzer`, fixed seeds) made from each of those folders; a case that
  does not load is recorded by its load error.

It writes one JSON document holding, per case, ``Report.to_dict()`` (the
timelines included) minus what changes between runs of the same code (the
grader's version), or the error raised. Take a snapshot before a change
and one after, and compare::

    .venv/bin/python scripts/grade_snapshot.py --out /tmp/before.json
    ... change the code ...
    .venv/bin/python scripts/grade_snapshot.py --out /tmp/after.json --compare /tmp/before.json

``--compare`` exits 1 and names the first cases that differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.fuzz_histories import Fuzzer  # noqa: E402

from grader.engine.evidence import build_evidence  # noqa: E402
from grader.engine.history import load_json_text  # noqa: E402
from grader.engine.integrity import assess  # noqa: E402
from grader.engine.report import grade  # noqa: E402
from grader.engine.rubric import load_rubric  # noqa: E402
from grader.errors import GraderError  # noqa: E402
from grader.packs import all_packs, get_pack  # noqa: E402

GOLDENS = REPO / "tests" / "goldens"
SAGAS_GOLDENS = REPO / "grader" / "packs" / "sagas" / "goldens"
#: Report fields that differ between runs of the same code, left out of the snapshot.
VOLATILE = ("grader_version",)


def grade_one(data: bytes, source: str, rubric: Any) -> dict[str, Any]:
    """The report of one history, as plain data, or the error loading or grading it raised."""
    try:
        history = load_json_text(data, source=source)
    except GraderError as err:
        return {"load_error": f"{type(err).__name__}: {err}"}
    try:
        report = grade([build_evidence(history)], rubric, integrity=assess([history]))
        doc = report.to_dict()
    except GraderError as err:
        return {"grade_error": f"{type(err).__name__}: {err}"}
    for key in VOLATILE:
        doc.pop(key, None)
    return doc


def cases(fuzzed: int) -> list[tuple[str, bytes, str]]:
    """(name, bytes, rubric name) of every case graded: goldens, then fuzzed copies of them."""
    found: list[tuple[str, bytes, str]] = []
    for folder, rubrics in ((GOLDENS, ["default"]), (SAGAS_GOLDENS, ["default", "sagas"])):
        for path in sorted(folder.glob("*.json")):
            found += [(f"{folder.name}/{path.name}", path.read_bytes(), r) for r in rubrics]
    fuzzers = [("fuzz18", Fuzzer.from_goldens(seed=18), ["default"]),
               ("fuzz19", Fuzzer.from_goldens(seed=19, operators=["op_well_typed", "op_payload"]), ["default"]),
               ("sagas-fuzz7", Fuzzer.from_goldens(seed=7, folder=SAGAS_GOLDENS), ["default", "sagas"]),
               ("sagas-fuzz8", Fuzzer.from_goldens(seed=8, folder=SAGAS_GOLDENS,
                                                   operators=["op_well_typed", "op_payload"]), ["default", "sagas"])]
    for label, fuzzer, rubrics in fuzzers:
        for case in fuzzer.cases(fuzzed):
            found += [(f"{label}/{case.name}", case.data, r) for r in rubrics]
    return found


def snapshot(fuzzed: int) -> dict[str, Any]:
    """Case name (with its rubric) -> its graded report as plain data."""
    all_packs()  # the packs' checks, before a rubric naming them is read
    rubrics = {"default": load_rubric(), "sagas": load_rubric(get_pack("sagas").rubric_path)}
    return {f"{name} [{rubric}]": grade_one(data, name, rubrics[rubric]) for name, data, rubric in cases(fuzzed)}


def main(argv: list[str] | None = None) -> int:
    """Write the snapshot; with ``--compare``, say whether it equals an earlier one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the snapshot (JSON)")
    parser.add_argument("--fuzzed", type=int, default=300, help="cases per fuzzer (default 300)")
    parser.add_argument("--compare", type=Path, help="an earlier snapshot this one must equal")
    args = parser.parse_args(argv)
    snap = snapshot(args.fuzzed)
    text = json.dumps(snap, indent=1, sort_keys=True, ensure_ascii=False)
    args.out.write_text(text)
    loaded = sum("load_error" not in v for v in snap.values())
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(f"{len(snap)} cases ({loaded} graded, {len(snap) - loaded} not loadable), sha256 {digest}: {args.out}")
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())
    differ = [k for k in sorted(set(before) | set(snap)) if before.get(k) != snap.get(k)]
    if differ:
        print(f"DIFFERENT from {args.compare}: {len(differ)} cases, e.g. {', '.join(differ[:5])}")
        return 1
    print(f"identical to {args.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
