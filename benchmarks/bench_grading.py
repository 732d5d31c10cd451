"""How fast the grader grades, next to the raw cost of reading histories.

Run from the checkout::

    .venv/bin/python benchmarks/bench_grading.py            # 1000 offline + 1000 live
    .venv/bin/python benchmarks/bench_grading.py --n 200 --skip-live --profile

Offline: N copies of real histories (``tests/goldens/*.json``, or a few
recorded here from the bundled solution app when there are none) are written
to a temporary folder and read into memory; then, in the same run,

    (a) ``json.loads`` of every file's bytes, and
    (b) the whole offline path per history: ``load_json_text`` ->
        ``build_evidence`` -> integrity rules (``grader.engine.integrity.assess``)
        -> ``grade`` with the default rubric, and
    (e) the replay of each history through the reference workflow
        (``grader.lab.replay``), which ``grader check --replay`` and ``grader batch`` add.

Target: (b) costs at most 3x (a).

Live: an in-memory dev server, the solution's worker with no bank latency,
N completed MoneyTransfer workflows; then, in the same run,

    (c) ``handle.fetch_history()`` of all N, concurrently, and
    (d) the same runs read as ``grader check`` reads each one (``sources.live.fetch_one``:
        the history, plus a describe only for runs still open) -> ``build_evidence`` -> ``grade``.

Target: (d) costs less than 2x (c).

Each measure is repeated (``--repeat``) and the best time is kept, the usual
way to keep a busy machine's noise out of a micro-benchmark. Offline times
are CPU time of this process (the path is single-threaded, no I/O); live
times are wall time (the fetches wait on the server). This is a script that
prints figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from grader.lab.app import AppSettings, bundled_app, start_worker, wait_for_poller
from grader.sources.connect import connect
from grader.errors import GraderError
from grader.engine.evidence import build_evidence
from grader.engine.history import load_json_text
from grader.engine.integrity import assess
from grader.lab.replay import replay_histories
from grader.engine.report import grade
from grader.engine.rubric import load_rubric
from grader.lab.server import free_port, start_dev_server
from grader.sources.live import fetch_one

REPO = Path(__file__).resolve().parent.parent
GOLDENS = REPO / "tests" / "goldens"
OFFLINE_TARGET = 3.0
LIVE_TARGET = 2.0
PAYMENT = {"source_account": "85-150", "target_account": "43-812", "amount": 250}
# The solution's pretend bank starts 85-150 with $2000 in each worker process:
# $1 transfers let one worker complete up to 2000 of them.
LIVE_PAYMENT = PAYMENT | {"amount": 1}


# --- offline ---------------------------------------------------------------------


def golden_sources(record_dir: Path) -> tuple[list[Path], str]:
    """The histories to copy: the committed goldens, else a few recorded now."""
    goldens = [p for p in sorted(GOLDENS.glob("*.json")) if GOLDENS.is_dir() and _is_history(p)]
    if goldens:
        return goldens, f"{len(goldens)} goldens from {GOLDENS.relative_to(REPO)}"
    print("no tests/goldens/*.json: recording a few histories from the solution app ...", flush=True)
    recorded = asyncio.run(record_histories(record_dir))
    return recorded, f"{len(recorded)} histories recorded now (no goldens)"


def _is_history(path: Path) -> bool:
    """True for a file the grader reads as a history."""
    try:
        load_json_text(path.read_bytes(), source=str(path))
    except GraderError:
        return False
    return True


async def record_histories(directory: Path) -> list[Path]:
    """Run the solution app on a throwaway server: plain transfers and closed-account ones."""
    directory.mkdir(parents=True, exist_ok=True)
    server = start_dev_server(port=free_port(), ephemeral=True, headless=True)
    workers = []
    try:
        client = await connect(server.address, server.namespace)
        paths = []
        for fault, count in (("", 3), ("closed-account", 2)):
            queue = f"bench-record-{uuid.uuid4().hex[:8]}"
            settings = AppSettings(address=server.address, namespace=server.namespace,
                                   task_queue=queue, latency=0.05, fault=fault)
            worker = start_worker(bundled_app("solution"), settings)
            workers.append(worker)
            await wait_for_poller(client, worker)
            for index in range(count):
                workflow_id = f"bench-{fault or 'ok'}-{index}-{uuid.uuid4().hex[:6]}"
                handle = await client.start_workflow("MoneyTransfer", PAYMENT | {"reference_id": workflow_id},
                                                     id=workflow_id, task_queue=queue)
                try:
                    await handle.result()
                except Exception:  # the closed-account transfers end FAILED on purpose
                    pass
                path = directory / f"{workflow_id}.json"
                path.write_text((await handle.fetch_history()).to_json())
                paths.append(path)
        return paths
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


def bench_offline(n: int, repeat: int, profile: bool) -> dict[str, float]:
    """Time (a) json.loads and (b) the full offline grade of N history files."""
    work = Path(tempfile.mkdtemp(prefix="failure-lab-bench-"))
    try:
        sources, origin = golden_sources(work / "recorded")
        copies = work / "copies"
        copies.mkdir()
        for index in range(n):
            shutil.copyfile(sources[index % len(sources)], copies / f"h{index:05d}.json")
        files = sorted(copies.glob("*.json"))
        # Read once, outside every timing: both measures start from the same bytes.
        blobs = [(str(p), p.read_bytes()) for p in files]
        from grader.packs import all_packs

        all_packs()  # the packs' checks, before the rubric naming them is read
        rubric = load_rubric()
        size = sum(len(b) for _, b in blobs) / len(blobs)
        print(f"offline: {n} histories ({origin}), {size / 1024:.1f} KiB on average")

        def parse_only() -> None:
            for _, blob in blobs:
                json.loads(blob)

        def grade_all() -> None:
            for source, blob in blobs:
                history = load_json_text(blob, source=source)
                grade([build_evidence(history)], rubric, integrity=assess([history]))

        parse = full = float("inf")
        for _ in range(repeat):  # interleaved, so a busy moment hits both measures alike
            parse = min(parse, best_of(1, parse_only))
            full = min(full, best_of(1, grade_all))

        # The same path cut into its stages, each timed on the previous stage's
        # output. Those inputs stay alive, so they are frozen out of the garbage
        # collector's sight: otherwise every collection would walk them and
        # charge the stage for garbage it did not make.
        histories = [load_json_text(blob, source=source) for source, blob in blobs]
        runs = [build_evidence(h) for h in histories]
        gc.collect()
        gc.freeze()
        try:
            stages = {
                "load": best_of(repeat, each(lambda item: load_json_text(item[1], source=item[0]), blobs)),
                "evidence": best_of(repeat, each(build_evidence, histories)),
                "grade": best_of(repeat, each(lambda run: grade([run], rubric), runs)),
                "integrity": best_of(repeat, each(lambda history: assess([history]), histories)),
            }
            # Replay costs milliseconds a history: timed on one copy of each distinct history.
            distinct = histories[:len(sources)]
            replay_histories(distinct)  # the first call imports the reference app and the SDK's worker
            stages["replay"] = best_of(repeat, lambda: replay_histories(distinct)) * len(histories) / len(distinct)
        finally:
            gc.unfreeze()
        del histories, runs
        if profile:
            show_profile("offline grade path", grade_all)
        return {"parse": parse, "grade": full, **{f"stage_{k}": v for k, v in stages.items()}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def each(func: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
    """A loop calling ``func`` on every item and dropping the results."""
    def run() -> None:
        for item in items:
            func(item)
    return run


def best_of(repeat: int, func: Callable[[], None]) -> float:
    """The fastest of ``repeat`` runs of ``func``, in seconds of this process's CPU time.

    The offline path is single-threaded and does no I/O, so CPU time is its
    cost; unlike wall time it does not grow when other programs share the CPUs.
    """
    times = []
    for _ in range(repeat):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return min(times)


# --- live ----------------------------------------------------------------------------


async def bench_live(n: int, repeat: int, concurrency: int, profile: bool) -> dict[str, float]:
    """Time (c) concurrent fetch_history and (d) fetch + parse + evidence + grade of N runs."""
    server = start_dev_server(port=free_port(), ephemeral=True, headless=True)
    worker = None
    try:
        client = await connect(server.address, server.namespace)
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        settings = AppSettings(address=server.address, namespace=server.namespace,
                               task_queue=queue, latency=0.0)
        worker = start_worker(bundled_app("solution"), settings)
        await wait_for_poller(client, worker)

        started = time.perf_counter()
        gate = asyncio.Semaphore(50)

        async def transfer(index: int) -> str:
            workflow_id = f"bench-{queue}-{index:05d}"
            async with gate:
                handle = await client.start_workflow("MoneyTransfer",
                                                     LIVE_PAYMENT | {"reference_id": workflow_id},
                                                     id=workflow_id, task_queue=queue)
                await handle.result()
            return workflow_id

        ids = await asyncio.gather(*(transfer(i) for i in range(n)))
        print(f"live: {n} completed transfers made in {time.perf_counter() - started:.1f} s "
              f"(dev server at {server.address})", flush=True)
        worker.stop()  # nothing else to run: keep the worker off the CPU while timing
        worker = None

        handles = [client.get_workflow_handle(w) for w in ids]
        rubric = load_rubric()
        ui_url = f"http://{server.address}"

        async def fetch_all() -> None:
            fetch_gate = asyncio.Semaphore(concurrency)

            async def one(handle: Any) -> None:
                async with fetch_gate:
                    await handle.fetch_history()

            await asyncio.gather(*(one(h) for h in handles))

        async def grade_all() -> None:
            fetch_gate = asyncio.Semaphore(concurrency)

            async def one(handle: Any) -> None:
                # The per-run work of `grader check` read live: fetch_one fetches the
                # history (and describes the run only if it is still open).
                async with fetch_gate:
                    history = await fetch_one(client, handle.id, None, address=server.address,
                                              ui_url=ui_url)
                grade([build_evidence(history)], rubric)

            await asyncio.gather(*(one(h) for h in handles))

        await fetch_all()  # warm the connection and the server's caches once
        fetch = grade_t = float("inf")
        for _ in range(repeat):  # interleaved, so drift hits both measures alike
            fetch = min(fetch, await timed(fetch_all))
            grade_t = min(grade_t, await timed(grade_all))
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await grade_all()
            profiler.disable()
            print_stats("live grade path", profiler)
        return {"fetch": fetch, "grade": grade_t}
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


async def timed(func: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await func()
    return time.perf_counter() - start


# --- output ---------------------------------------------------------------------------


def show_profile(title: str, func: Callable[[], None]) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(func)
    print_stats(title, profiler)


def print_stats(title: str, profiler: cProfile.Profile, top: int = 15) -> None:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    body = out.getvalue()
    start = body.find("   ncalls")
    print(f"\n--- cProfile, {title} (by own time) ---")
    print(body[start:].rstrip() if start >= 0 else body.rstrip())


def line(label: str, seconds: float, n: int) -> str:
    return f"  {label:<46} {seconds * 1e6 / n:9.1f} us/history {n / seconds:10.0f} histories/s"


def verdict(ratio: float, target: float, strict: bool) -> str:
    ok = ratio < target if strict else ratio <= target
    bound = "<" if strict else "<="
    return f"{ratio:.2f}x (target {bound} {target:g}x: {'met' if ok else 'MISSED'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000,
                        help="histories per part (default 1000; live at most 2000: the bank holds $2000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measure, best kept (default 5)")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent fetches (default 100)")
    parser.add_argument("--skip-offline", action="store_true", help="only the live part")
    parser.add_argument("--skip-live", action="store_true", help="only the offline part")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of each grade path")
    args = parser.parse_args(argv)
    n = args.n

    print(f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M')}, best of {args.repeat}")
    if not args.skip_offline:
        off = bench_offline(n, args.repeat, args.profile)
        print(line("(a) json.loads only", off["parse"], n))
        print(line("(b) load_json_text + build_evidence + integrity + grade", off["grade"], n))
        print(line("    of which load_json_text (loads + event walk)", off["stage_load"], n))
        print(line("    of which build_evidence", off["stage_evidence"], n))
        print(line("    of which grade (default rubric)", off["stage_grade"], n))
        print(line("    of which integrity rules", off["stage_integrity"], n))
        print(line("(e) replay through the reference workflow (grader check --replay, batch's default)",
                   off["stage_replay"], n))
        print(f"  offline grading / json.loads: {verdict(off['grade'] / off['parse'], OFFLINE_TARGET, False)}")
    if not args.skip_live:
        live = asyncio.run(bench_live(n, args.repeat, args.concurrency, args.profile))
        print(line(f"(c) fetch_history only, {args.concurrency} at a time", live["fetch"], n))
        print(line("(d) fetch_one + evidence + grade", live["grade"], n))
        print(f"  live grading / fetch: {verdict(live['grade'] / live['fetch'], LIVE_TARGET, True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
