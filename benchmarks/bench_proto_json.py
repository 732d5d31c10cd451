"""The protobuf-to-JSON step of a live read alone: the SDK's ``to_json_dict()`` against grader.engine.proto_json.

Run from the checkout::

    .venv/bin/python benchmarks/bench_proto_json.py                   # 100 learners x 4 runs, 21 rounds
    .venv/bin/python benchmarks/bench_proto_json.py --learners 10 --rounds 7

An in-memory dev server on a free port; each learner's worker (the bundled
solution, a real process, no bank latency) completes their transfers, as in
``bench_batch.py``. Every history is fetched once, then the fetched
``WorkflowHistory`` objects are converted, alternating in each round,

    (a) by ``history.to_json_dict()`` (protobuf's ``MessageToDict``), and
    (b) by ``grader.engine.proto_json.history_to_dict(history)``,

and the two dicts of every history are checked equal. It prints the median
round of each, per history, and the median of the per-round ratios. CPU time
of this process (the conversion is single-threaded and does no I/O). It prints
figures and is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batch import make_class  # noqa: E402  (the same class as the batch benchmark)


def _timed(convert, histories) -> float:
    began = time.process_time()
    for history in histories:
        convert(history)
    return time.process_time() - began


async def main_async(args: argparse.Namespace) -> None:
    """Make the runs, fetch them, then time both conversions alternately."""
    from grader.engine.proto_json import history_to_dict
    from grader.lab.server import free_port, start_dev_server
    from grader.sources.connect import connect

    server = start_dev_server(port=free_port(), ephemeral=True, headless=True)
    try:
        client = await connect(server.address)
        targets = await make_class(client, server.address, args.learners, args.runs)
        histories = [await client.get_workflow_handle(w, run_id=r).fetch_history() for w, r in targets]
    finally:
        server.stop()
    events = sum(len(h.events) for h in histories)
    for history in histories:
        assert history_to_dict(history) == history.to_json_dict(), history.workflow_id
    sdk_times, ours_times = [], []
    for _ in range(args.rounds):
        sdk_times.append(_timed(lambda h: h.to_json_dict(), histories))
        ours_times.append(_timed(history_to_dict, histories))
    n = len(histories)
    sdk, ours = statistics.median(sdk_times), statistics.median(ours_times)
    ratios = sorted(s / o for s, o in zip(sdk_times, ours_times))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load} on {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print(f"{n} fetched histories, {events / n:.1f} events each; all {n} dicts equal; {args.rounds} rounds, CPU time")
    print(f"  (a) WorkflowHistory.to_json_dict()     median {sdk / n * 1e6:7.1f} us/history "
          f"(range {min(sdk_times) / n * 1e6:.1f}-{max(sdk_times) / n * 1e6:.1f})")
    print(f"  (b) proto_json.history_to_dict()       median {ours / n * 1e6:7.1f} us/history "
          f"(range {min(ours_times) / n * 1e6:.1f}-{max(ours_times) / n * 1e6:.1f})")
    print(f"  (a)/(b): median {statistics.median(ratios):.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x")


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=100, help="learners (default 100)")
    parser.add_argument("--runs", type=int, default=4, help="runs per learner (default 4)")
    parser.add_argument("--rounds", type=int, default=21, help="rounds of each conversion (default 21)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
