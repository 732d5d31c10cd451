"""How long ``grader check --history FILE`` takes as a whole process, next to a bare JSON read.

Run from the checkout, with the package installed the way users install it::

    .venv/bin/python benchmarks/bench_startup.py                 # 21 pairs
    .venv/bin/python benchmarks/bench_startup.py --repeat 41 --file some-history.json

Each repeat starts, one right after the other and in alternating order,

    (a) ``python -c 'import json; json.load(open(F))'``, and
    (b) ``grader check --history F`` (the console script next to this Python),

on the same history file, from a scratch folder outside the checkout. Both
are timed from spawn to exit (wall clock) and by the CPU time the child used.
The figure is the median of (b)/(a) over the pairs: timing both in the same
run keeps a slow or busy machine from moving the ratio much.

Target: the median wall ratio is at most 4x. Nearly all of (b) beyond (a) is
import time, so ``python -X importtime`` says where it goes; ``--importtime``
prints the slowest imports of one run of (b).

A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "tests" / "goldens" / "sigkill-during-deposit.json"
TARGET = 4.0


def _grader_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m grader``."""
    script = Path(sys.executable).with_name("grader")
    return [str(script)] if script.exists() else [sys.executable, "-m", "grader"]


def _timed(argv: list[str], cwd: Path) -> tuple[float, float, int]:
    """Run ``argv`` to its end: (wall seconds, child CPU seconds, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def _slowest_imports(argv: list[str], cwd: Path, top: int = 12) -> str:
    """The ``top`` imports with the largest cumulative time in one run of ``argv``."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        fields = [f.strip() for f in line.removeprefix("import time:").split("|")]
        if line.startswith("import time:") and len(fields) == 3 and fields[1].isdigit():
            rows.append((int(fields[1]), fields[2]))
    rows.sort(reverse=True)
    return "\n".join(f"  {us / 1000:7.1f} ms  {name}" for us, name in rows[:top])


def main() -> int:
    """Time both commands ``--repeat`` times and print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="history file to grade")
    parser.add_argument("--repeat", type=int, default=21, help="pairs of runs (default 21)")
    parser.add_argument("--importtime", action="store_true", help="also print the slowest imports of (b)")
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"{args.file} does not exist: pass --file HISTORY.json")

    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        history = scratch / "history.json"
        shutil.copyfile(args.file, history)
        bare = [sys.executable, "-c", f"import json; json.load(open({str(history)!r}))"]
        grader = [*_grader_command(), "check", "--history", str(history)]
        # One untimed run of each, so both start with a warm page cache.
        _timed(bare, scratch)
        code = _timed(grader, scratch)[2]
        walls: dict[str, list[float]] = {"bare": [], "grader": []}
        cpus: dict[str, list[float]] = {"bare": [], "grader": []}
        for i in range(args.repeat):
            order = [("bare", bare), ("grader", grader)]
            for name, argv in order if i % 2 == 0 else reversed(order):
                wall, cpu, _ = _timed(argv, scratch)
                walls[name].append(wall)
                cpus[name].append(cpu)
        wall_ratio = statistics.median(g / b for g, b in zip(walls["grader"], walls["bare"]))
        cpu_ratio = statistics.median(g / b for g, b in zip(cpus["grader"], cpus["bare"]) if b > 0)
        print(f"history: {args.file.name} ({args.file.stat().st_size / 1024:.1f} KiB); "
              f"{args.repeat} pairs; Python {sys.version.split()[0]}; grader exit code {code}")
        print(f"  (a) python -c 'import json; json.load(...)'   median {statistics.median(walls['bare']) * 1000:6.1f} ms wall"
              f"  {statistics.median(cpus['bare']) * 1000:6.1f} ms CPU")
        print(f"  (b) {' '.join(Path(grader[0]).name if j == 0 else a for j, a in enumerate(grader[:3]))} FILE"
              f"        median {statistics.median(walls['grader']) * 1000:6.1f} ms wall"
              f"  {statistics.median(cpus['grader']) * 1000:6.1f} ms CPU")
        verdict = "met" if wall_ratio <= TARGET else "MISSED"
        print(f"  (b)/(a): {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (median of pairs; "
              f"target <= {TARGET:g}x wall: {verdict})")
        if args.importtime:
            print("slowest imports of (b), cumulative:")
            print(_slowest_imports(grader, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
