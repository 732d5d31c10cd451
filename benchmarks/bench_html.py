"""How big and how fast the HTML report is, and how long a real Chromium takes to show it.

Run from the checkout::

    .venv/bin/python benchmarks/bench_html.py            # every golden, 200 renders each
    .venv/bin/python benchmarks/bench_html.py --n 50 --skip-browser

For each golden history (``tests/goldens/*.json``) and for the whole folder
on one page, it prints the page size, the time to grade (history -> report,
timelines included) and the time to render the report as HTML (best of
``--n``, CPU time). With a ``chromium`` on PATH it then loads each page in
one headless Chromium (the test suite's DevTools client) and prints the time
from navigation to a finished screenshot. A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the DevTools client the tests use

from grader import api  # noqa: E402
from grader.formats import render  # noqa: E402


def best(func, n: int) -> float:
    """Best CPU time of ``n`` calls, in milliseconds."""
    times = []
    for _ in range(n):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="renders per golden (the best is kept)")
    parser.add_argument("--skip-browser", action="store_true", help="leave Chromium out")
    args = parser.parse_args()

    goldens = sorted((REPO / "tests" / "goldens").glob("*.json"))
    cases = [(p.stem, [p]) for p in goldens] + [("(all goldens on one page)", [REPO / "tests" / "goldens"])]
    pages = []
    print(f"{'history':<28} {'HTML bytes':>10} {'grade ms':>9} {'render ms':>10}")
    for name, paths in cases:
        report = api.check_files(paths)
        html = render(report, "html")
        grade_ms = best(lambda: api.check_files(paths), max(5, args.n // 10))
        render_ms = best(lambda: render(report, "html"), args.n)
        pages.append((name, html))
        print(f"{name:<28} {len(html.encode()):>10} {grade_ms:>9.2f} {render_ms:>10.2f}")

    if args.skip_browser:
        return
    from headless_chromium import Chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        print("no chromium on PATH: browser figures skipped")
        return
    start = time.perf_counter()
    browser = Chromium(binary)
    print(f"\nchromium start: {time.perf_counter() - start:.2f} s (wall)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{'history':<28} {'load+screenshot s':>18}")
            for name, html in pages:
                page = Path(tmp) / "page.html"
                page.write_text(html, encoding="utf-8")
                start = time.perf_counter()
                browser.load(page)
                browser.screenshot()
                print(f"{name:<28} {time.perf_counter() - start:>18.3f}")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
