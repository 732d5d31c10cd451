"""Print which golden histories pass the network-partition experiment, and how strongly.

    .venv/bin/python scripts/partition_verdicts.py             # tests/goldens
    .venv/bin/python scripts/partition_verdicts.py DIR_OR_FILES

Two columns of verdicts per history: with the default rubric (a silence of
at least 10 s), and with the threshold set just below the history's own
longest silence, which shows whether anything but the threshold keeps it from
passing. Only a paused server should pass either. It reads the grader it
imports, so running it with an older checkout first in PYTHONPATH gives the
"before" table.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from grader.engine.evidence import build_evidence
from grader.engine.history import iter_history_paths, load_history_file
from grader.engine.report import grade
from grader.engine.rubric import load_rubric

REPO = Path(__file__).resolve().parent.parent


def verdict(run, rubric, spec, minimum: float | None) -> str:
    """``pass``/``fail``/``pending`` of network-partition on ``run``, with the outage-gap's strength."""
    if minimum is not None:
        spec = replace(spec, params={**spec.params, "min_outage_seconds": minimum})
    (experiment,) = grade([run], replace(rubric, experiments=(spec,)),
                          experiments=["network-partition"]).experiments
    gap = next(c for c in experiment.checks if c.id.endswith("outage-gap"))
    strength = getattr(gap, "strength", None)
    return experiment.status + (f" ({strength})" if strength else "")


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [REPO / "tests" / "goldens"]
    rubric = load_rubric()
    spec = rubric.experiment("network-partition")
    rows = []
    for path in iter_history_paths(paths):
        run = build_evidence(load_history_file(path))
        longest = run.longest_gap[0] if run.longest_gap else 0.0
        rows.append((path.stem, f"{longest:.1f}", verdict(run, rubric, spec, None),
                     verdict(run, rubric, spec, max(longest - 0.05, 0.0))))
    header = ("history", "longest silence s", "default rubric (10 s)", "threshold just below it")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
