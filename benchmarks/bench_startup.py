"""How long ``grader check --history FILE`` takes as a whole process, next to a bare JSON read.

Run from the checkout, with the package installed the way users install it::

    .venv/bin/python benchmarks/bench_startup.py                 # 21 rounds
    .venv/bin/python benchmarks/bench_startup.py --repeat 41 --file some-history.json

Each repeat starts, one right after the other and in turn,

    (a) ``python -c 'import json; json.load(open(F))'``,
    (b) ``grader check --history F`` (the console script next to this Python), and
    (c) ``grader check --history F --replay`` (integrity replay through the SDK, opt-in),

on the same history file, from a scratch folder outside the checkout. (b)
is what a learner runs: the grading alone, with no Temporal SDK loaded; (c)
also replays the history through the reference workflow (grader.lab.replay),
which loads temporalio. Both are timed from spawn to exit (wall clock) and by the CPU time the child used.
The figures are the medians of (b)/(a) and (c)/(a) over the repeats: timing both in the same
run keeps a slow or busy machine from moving the ratio much.

Target: the median wall ratio of (b) is at most 4x. Nearly all of (b) beyond (a) is
import time, so ``python -X importtime`` says where it goes; ``--importtime``
prints the slowest imports of one run of (b) and of (c).

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
    parser.add_argument("--repeat", type=int, default=21, help="rounds of the three runs (default 21)")
    parser.add_argument("--importtime", action="store_true", help="also print the slowest imports of (b) and (c)")
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"{args.file} does not exist: pass --file HISTORY.json")

    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        history = scratch / "history.json"
        shutil.copyfile(args.file, history)
        bare = [sys.executable, "-c", f"import json; json.load(open({str(history)!r}))"]
        grader = [*_grader_command(), "check", "--history", str(history)]
        runs = {"bare": bare, "grader": grader, "replay": [*grader, "--replay"]}
        # One untimed run of each, so all start with a warm page cache.
        codes = {name: _timed(argv, scratch)[2] for name, argv in runs.items()}
        walls: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        order = list(runs.items())
        for i in range(args.repeat):
            for name, argv in order[i % 3:] + order[:i % 3]:
                wall, cpu, _ = _timed(argv, scratch)
                walls[name].append(wall)
                cpus[name].append(cpu)
        print(f"history: {args.file.name} ({args.file.stat().st_size / 1024:.1f} KiB); "
              f"{args.repeat} repeats; Python {sys.version.split()[0]}; grader exit codes "
              f"{codes['grader']} and {codes['replay']}")
        labels = {"bare": "(a) python -c 'import json; json.load(...)'",
                  "grader": "(b) grader check --history FILE",
                  "replay": "(c) grader check --history FILE --replay"}
        for name, label in labels.items():
            print(f"  {label:46s} median {statistics.median(walls[name]) * 1000:6.1f} ms wall"
                  f"  {statistics.median(cpus[name]) * 1000:6.1f} ms CPU")
        for name, label in (("grader", "(b)/(a)"), ("replay", "(c)/(a)")):
            wall_ratio = statistics.median(g / b for g, b in zip(walls[name], walls["bare"]))
            cpu_ratio = statistics.median(g / b for g, b in zip(cpus[name], cpus["bare"]) if b > 0)
            verdict = "met" if wall_ratio <= TARGET else "MISSED"
            print(f"  {label}: {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (median of repeats; "
                  f"target <= {TARGET:g}x wall: {verdict})")
        if args.importtime:
            for name in ("grader", "replay"):
                print(f"slowest imports of {labels[name][:3]}, cumulative:")
                print(_slowest_imports(runs[name], scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
