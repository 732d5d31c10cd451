"""How fast `grader batch` grades a class, live and from a submissions folder.

Run from the checkout::

    .venv/bin/python benchmarks/bench_batch.py                  # both parts
    .venv/bin/python benchmarks/bench_batch.py --skip-live --classes 1000 10000
    .venv/bin/python benchmarks/bench_batch.py --skip-files --learners 100 --runs 4

Live: an in-memory dev server on a free port, the bundled solution's worker
(a real process, no bank latency) completes ``--learners`` x ``--runs``
transfers with ids ``l0000-transfer-...``; the worker is stopped. Then, in
the same run and alternating, best of ``--repeat``:

    (c) ``handle.fetch_history()`` of every one of those runs, ``--concurrency``
        at a time over one client: the floor for reading them, and
    (d) ``batch_live`` end to end: connect, list the namespace, read every
        learner's runs, grade them and write gradebook.csv, gradebook.json and
        the feedback files.

Targets: (d) under 2 s for 100 learners x 4 runs, and (d) <= 2x (c).

Files: for each size in ``--classes``, a submissions folder is generated in a
temporary folder: one folder per learner holding four goldens (one per
experiment), each copy with a run id of its own, as real submissions would
have. Each size is graded by ``grader batch --submissions`` in a fresh child
process, which reports its wall time and its peak resident memory
(``ru_maxrss``), and that of its largest grading process (one per CPU). Target: under 10 s for 10,000 learners, and a peak memory
that does not grow with the class size.

Wall times on a shared machine are noisy; the script prints the load average
next to the figures. It prints figures and is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOLDENS = REPO / "tests" / "goldens"
#: One golden per experiment, so every learner's four runs pass something.
SUBMISSION = ("sigkill-during-deposit", "live-fix", "retries-exhausted-refund", "server-paused")


# --- live --------------------------------------------------------------------------


async def make_class(client, task_queue: str, learners: int, runs: int) -> list[tuple[str, str]]:
    """Start and finish ``learners * runs`` transfers; their (workflow id, run id)."""
    gate = asyncio.Semaphore(100)

    async def one(learner: int) -> tuple[str, str]:
        async with gate:
            handle = await client.start_workflow(
                "MoneyTransfer", {"source_account": "85-150", "target_account": "43-812", "amount": 1,
                                  "reference_id": uuid.uuid4().hex},
                id=f"l{learner:04d}-transfer-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
            await handle.result()
            return handle.id, handle.result_run_id

    return await asyncio.gather(*(one(i) for i in range(learners) for _ in range(runs)))


async def raw_fetch(client, targets: list[tuple[str, str]], concurrency: int) -> float:
    """Wall seconds to fetch every history, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str, run_id: str) -> None:
        async with gate:
            await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()

    began = time.perf_counter()
    await asyncio.gather(*(one(w, r) for w, r in targets))
    return time.perf_counter() - began


async def live_part(args: argparse.Namespace) -> None:
    """Make the live class on a fresh in-memory server, then time (c) and (d) alternately."""
    from grader.lab.app import AppSettings, bundled_app, start_worker, wait_for_poller
    from grader.classroom import batch_live
    from grader.sources.connect import connect
    from grader.lab.server import free_port, start_dev_server

    server = start_dev_server(port=free_port(), ephemeral=True, headless=True)
    out = Path(tempfile.mkdtemp(prefix="bench-batch-live-"))
    try:
        client = await connect(server.address)
        settings = AppSettings(address=server.address, task_queue=f"bench-{uuid.uuid4().hex[:8]}", latency=0.0)
        worker = start_worker(bundled_app("solution"), settings)
        try:
            await wait_for_poller(client, worker)
            began = time.perf_counter()
            targets = await make_class(client, settings.task_queue, args.learners, args.runs)
            made = time.perf_counter() - began
        finally:
            worker.stop(sig=signal.SIGKILL)
        total = args.learners * args.runs
        for _ in range(100):  # visibility may trail the last close by a moment
            if (await client.count_workflows("WorkflowType = 'MoneyTransfer'")).count >= total:
                break
            await asyncio.sleep(0.1)
        print(f"live: {args.learners} learners x {args.runs} runs = {total} completed transfers made in {made:.1f} s")
        fetch_times, batch_times = [], []
        for attempt in range(args.repeat):
            fetch_times.append(await raw_fetch(client, targets, args.concurrency))
            began = time.perf_counter()
            result = await batch_live(out / f"run{attempt}", server.address,
                                      concurrency=args.concurrency)
            batch_times.append(time.perf_counter() - began)
            assert result.counts["graded"] == args.learners, result.counts
        fetch, batch = min(fetch_times), min(batch_times)
        print(f"  (c) fetch_history only, {args.concurrency} at a time   {fetch:6.3f} s  "
              f"({fetch / total * 1e6:7.1f} us/run)")
        print(f"  (d) batch_live end to end               {batch:6.3f} s  "
              f"({batch / total * 1e6:7.1f} us/run, gradebook and {args.learners} feedback files written)")
        print(f"  end to end: {batch:.2f} s (target < 2 s: {'met' if batch < 2 else 'MISSED'}); "
              f"batch / fetch: {batch / fetch:.2f}x (target <= 2x: {'met' if batch <= 2 * fetch else 'MISSED'})")
        print(f"  all runs, best first: fetch {', '.join(f'{t:.3f}' for t in sorted(fetch_times))}; "
              f"batch {', '.join(f'{t:.3f}' for t in sorted(batch_times))}")
    finally:
        server.stop()
        shutil.rmtree(out, ignore_errors=True)


# --- files -------------------------------------------------------------------------


def make_submissions(root: Path, learners: int) -> None:
    """``learners`` folders of four goldens each, every copy with a fresh run id."""
    goldens = []
    for name in SUBMISSION:
        data = (GOLDENS / f"{name}.json").read_bytes()
        first = json.loads(data)["events"][0]["workflowExecutionStartedEventAttributes"]
        goldens.append((name, data, first["originalExecutionRunId"].encode()))
    for i in range(learners):
        folder = root / f"learner{i:05d}"
        folder.mkdir(parents=True)
        for name, data, run_id in goldens:
            (folder / f"{name}.json").write_bytes(data.replace(run_id, str(uuid.uuid4()).encode()))


#: Runs `grader batch` in this child process and reports its peak memory.
CHILD = """
import resource, sys, time
from grader.cli import main
sys.argv = ["grader", *sys.argv[1:]]
began = time.perf_counter()
try:
    main()
finally:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"BENCH wall={time.perf_counter() - began:.3f} peak_kib={peak} workers_kib={workers}", file=sys.stderr)
"""


def files_part(args: argparse.Namespace) -> None:
    """For each class size, make a submissions folder and time a `grader batch` child process on it."""
    base = Path(tempfile.mkdtemp(prefix="bench-batch-files-"))
    try:
        print(f"files: {len(SUBMISSION)} goldens per learner ({', '.join(SUBMISSION)})")
        figures = []
        for size in args.classes:
            root = base / f"class{size}"
            began = time.perf_counter()
            make_submissions(root / "download", size)
            made = time.perf_counter() - began
            best = None
            for _ in range(args.file_repeat):
                shutil.rmtree(root / "out", ignore_errors=True)
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, "batch", "--submissions", str(root / "download"),
                     "--out", str(root / "out"), "--quiet", "--format", "json"],
                    capture_output=True, text=True)
                line = next(x for x in done.stderr.splitlines() if x.startswith("BENCH"))
                wall = float(line.split("wall=")[1].split()[0])
                peak = int(line.split("peak_kib=")[1].split()[0]) / 1024
                workers = int(line.split("workers_kib=")[1]) / 1024
                counts = json.loads(done.stdout)["counts"]
                assert done.returncode == 0 and counts["graded"] == size, (done.returncode, counts)
                if best is None or wall < best[0]:
                    best = (wall, peak, workers)
            figures.append((size, *best))
            shutil.rmtree(root, ignore_errors=True)
            print(f"  {size:6d} learners: {best[0]:6.2f} s wall ({size / best[0]:7.0f} learners/s), "
                  f"peak RSS {best[1]:6.1f} MiB, largest grading process {best[2]:6.1f} MiB  "
                  f"(folder made in {made:.1f} s)")
        for size, wall, *_ in figures:
            if size >= 10000:
                print(f"  {size} learners in {wall:.2f} s (target < 10 s: {'met' if wall < 10 else 'MISSED'})")
        if len(figures) > 1:
            (s0, _, p0, _), (s1, _, p1, _) = figures[0], figures[-1]
            print(f"  peak memory {p0:.1f} MiB at {s0} learners, {p1:.1f} MiB at {s1}: "
                  f"{p1 / p0:.2f}x for {s1 / s0:.0f}x the class")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    """Parse the options and run the parts asked for."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=100, help="live: learners (default 100)")
    parser.add_argument("--runs", type=int, default=4, help="live: runs per learner (default 4)")
    parser.add_argument("--concurrency", type=int, default=32, help="live: reads in flight (default 32)")
    parser.add_argument("--repeat", type=int, default=5, help="live: runs per measure, best kept (default 5)")
    parser.add_argument("--classes", type=int, nargs="+", default=[1000, 10000],
                        help="files: class sizes (default 1000 10000)")
    parser.add_argument("--file-repeat", type=int, default=1, help="files: runs per size, best kept (default 1)")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-files", action="store_true")
    args = parser.parse_args()
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    if not args.skip_live:
        asyncio.run(live_part(args))
    if not args.skip_files:
        files_part(args)


if __name__ == "__main__":
    main()
