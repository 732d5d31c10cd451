"""What each class format of ``grader batch --format X`` costs once the class is graded.

Run from the checkout::

    .venv/bin/python benchmarks/bench_class_formats.py                 # 1000 learners
    .venv/bin/python benchmarks/bench_class_formats.py --learners 5000

A submissions folder of ``--learners`` learners (four goldens each, fresh
run ids, as ``bench_batch.py`` makes it) is graded once with
``batch_files``; then each format's ``render_gradebook`` renders the result
``--repeat`` times and the best wall time is printed with the size of the
output and the peak memory the render allocated (tracemalloc). markdown,
html, junit and github draw from the rows the batch kept; gradescope and
classroom read every report back from gradebook.json, so they cost more and
grow with the reports. It prints figures and is not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from importlib import import_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batch import make_submissions  # noqa: E402

from grader.classroom import batch_files  # noqa: E402
from grader.formats import FORMATS  # noqa: E402


def main() -> None:
    """Grade one generated class, then time every class format on it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", type=int, default=1000, help="learners in the class (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="renders per format, best kept (default 3)")
    args = parser.parse_args()
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    base = Path(tempfile.mkdtemp(prefix="bench-class-formats-"))
    try:
        make_submissions(base / "download", args.learners)
        began = time.perf_counter()
        result = batch_files(base / "download", base / "out")
        print(f"graded {result.total} learners in {time.perf_counter() - began:.2f} s")
        for name in FORMATS:
            render = getattr(import_module(FORMATS[name]), "render_gradebook", None)
            if render is None:
                continue
            best = None
            for _ in range(args.repeat):
                began = time.perf_counter()
                text = render(result)
                best = min(best or 1e9, time.perf_counter() - began)
            tracemalloc.start()
            render(result)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"  {name:10s} {best * 1000:8.1f} ms  {len(text.encode()) / 1024:9.0f} KiB out  "
                  f"{peak / 2**20:7.1f} MiB peak while rendering  ({best / result.total * 1e6:6.1f} us a learner)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
