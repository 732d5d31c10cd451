"""What each output format costs, next to grading itself.

Run from the checkout::

    .venv/bin/python benchmarks/bench_formats.py            # 2000 renders per format
    .venv/bin/python benchmarks/bench_formats.py --n 500

It grades every golden history in ``tests/goldens/`` once into one report
(all four experiments, every check), then renders that report N times in
each format and prints the microseconds per render, next to the cost of
grading the same histories from memory (evidence + checks + report), so a
format that grows slower than the grading it reports is easy to see.
Escaping (``grader.escape``) is part of every render measured.
Best of ``--repeat`` runs, CPU time of this process.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from grader.api import grade_histories
from grader.formats import FORMATS, renderer
from grader.engine.history import load_history_file

GOLDENS = Path(__file__).resolve().parent.parent / "tests" / "goldens"


def best_of(repeat: int, func) -> float:
    """The smallest CPU time of ``repeat`` calls of ``func``."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    """Print per-format render cost and the grading cost it sits next to."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="renders per format")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    histories = [load_history_file(p) for p in sorted(GOLDENS.glob("*.json"))]
    report = grade_histories(histories)
    grading = best_of(args.repeat, lambda: [grade_histories(histories) for _ in range(20)]) / 20
    print(f"report: {len(report.experiments)} experiments, "
          f"{sum(len(e.checks) for e in report.experiments)} checks, from {len(histories)} histories")
    print(f"grading those histories (from memory): {grading * 1e6:9.0f} us")
    for name in FORMATS:
        render = renderer(name)
        render(report)  # import and warm up outside the clock
        cost = best_of(args.repeat, lambda: [render(report) for _ in range(args.n)]) / args.n
        size = len(render(report).encode())
        print(f"{name:>10}: {cost * 1e6:9.0f} us per render  ({size} bytes)")


if __name__ == "__main__":
    main()
