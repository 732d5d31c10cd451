"""What hostile uploads cost: the issue's large probes through the real commands, with their defaults.

Each probe is built in a temporary folder, then graded by the installed
`grader` in a fresh process, so the figures are what an instructor meets:
wall time, the process's peak memory (max RSS of the grader and its grading
processes) and the size of what it wrote.

- members:     one learner's zip of N tiny .json members (default 100,000)
- copies:      one learner's zip holding N copies of one real run (default 50,000)
- shared:      N learners handing in the same run (the class-wide copy check; default 2,000)
- manifest:    a bundle whose manifest lists one file N times (default 3,000)
- activities:  one history with N activities, through `check --format json` and `--format html` (default 40,000;
               about 100 MB, so --max-history-bytes is raised past its 64 MiB default)
- message:     one history whose failure message is N MB (default 60), through `check --format json`

Run: python benchmarks/bench_hostile.py [--only NAME] [--scale 0.1]
(--scale shrinks every N, to see that the cost grows linearly).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

GOLDENS = Path(__file__).resolve().parent.parent / "tests" / "goldens"
GOLDEN = GOLDENS / "no-failure.json"


def _grader(*args: str) -> tuple[float, float, int]:
    """Run the grader in a fresh process: seconds, its peak MiB (grading processes included), exit code."""
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "grader", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    # wait4 gives this child's own figures (with the children it waited for), not a maximum over every run.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - began, usage.ru_maxrss / 1024, process.returncode


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _report(name: str, n: int, elapsed: float, peak: float, code: int, wrote: int, note: str = "") -> None:
    print(f"{name:<12} n={n:<8} {elapsed:7.2f} s  peak {peak:7.1f} MiB  exit {code}  wrote {wrote / 1e6:8.2f} MB"
          + (f"  {note}" if note else ""), flush=True)


def members(tmp: Path, n: int) -> None:
    subs = tmp / "subs"
    subs.mkdir()
    with zipfile.ZipFile(subs / "ada.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(n):
            archive.writestr(f"m/{i}.json", b"{}")
    (subs / "bob").mkdir()
    (subs / "bob" / "run.json").write_bytes(GOLDEN.read_bytes())
    elapsed, peak, code = _grader("batch", "-q", "--submissions", str(subs), "--out", str(tmp / "out"))
    _report("members", n, elapsed, peak, code, _size(tmp / "out"), f"zip {(subs / 'ada.zip').stat().st_size / 1e6:.1f} MB")


def copies(tmp: Path, n: int) -> None:
    subs = tmp / "subs"
    subs.mkdir()
    data = GOLDEN.read_bytes()
    with zipfile.ZipFile(subs / "ada.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(n):
            archive.writestr(f"copy{i}.json", data)
    elapsed, peak, code = _grader("batch", "-q", "--submissions", str(subs), "--out", str(tmp / "out"))
    _report("copies", n, elapsed, peak, code, _size(tmp / "out"), f"zip {(subs / 'ada.zip').stat().st_size / 1e6:.1f} MB")


def shared(tmp: Path, n: int) -> None:
    subs = tmp / "subs"
    subs.mkdir()
    data = GOLDEN.read_bytes()
    for i in range(n):
        (subs / f"l{i:06d}").mkdir()
        (subs / f"l{i:06d}" / "run.json").write_bytes(data)
    elapsed, peak, code = _grader("batch", "-q", "--submissions", str(subs), "--out", str(tmp / "out"))
    _report("shared", n, elapsed, peak, code, _size(tmp / "out"))


def manifest(tmp: Path, n: int) -> None:
    from grader.sources.bundles import sha256_hex

    bundle = tmp / "ada-bundle"
    bundle.mkdir()
    data = GOLDEN.read_bytes()
    (bundle / "run.json").write_bytes(data)
    doc = json.loads(data)
    start = doc["events"][0]["workflowExecutionStartedEventAttributes"]
    entry = {"file": "run.json", "workflow_id": start.get("workflowId", "sim-no-failure"),
             "run_id": start.get("originalExecutionRunId", ""), "sha256": sha256_hex(data)}
    (bundle / "manifest.json").write_text(json.dumps({
        "format": "failure-lab-bundle/1", "grader_version": "0.1.0", "server_address": "localhost:7233",
        "namespace": "default", "learner": "ada", "exported_at": "2026-12-01T00:00:00Z",
        "histories": [entry] * n}))
    elapsed, peak, code = _grader("check", "--history", str(bundle), "--format", "json",
                                     "--output", str(tmp / "report.json"))
    _report("manifest", n, elapsed, peak, code, _size(tmp / "report.json"),
            f"manifest {(bundle / 'manifest.json').stat().st_size / 1e3:.1f} KB")


def _many_activities(n: int) -> dict:
    """The no-failure golden with its withdraw repeated until the run holds ``n`` activities."""
    doc = json.loads(GOLDEN.read_text())
    events = doc["events"]
    head, block, tail = events[:4], events[4:10], events[10:]  # block: activity + the workflow task after it
    out = list(head)

    def put(event: dict, shift: int, lean: bool = True) -> None:
        event = copy.deepcopy(event)
        for key, attrs in event.items():
            if lean and key.endswith("EventAttributes"):
                for bulky in ("input", "result", "header"):  # keep it under check's 64 MiB default
                    attrs.pop(bulky, None)
        event["eventId"] = str(int(event["eventId"]) + shift)
        for key, attrs in event.items():
            if key.endswith("EventAttributes"):
                for ref in ("scheduledEventId", "startedEventId", "workflowTaskCompletedEventId"):
                    if ref in attrs:
                        attrs[ref] = str(int(attrs[ref]) + shift)
                if "activityId" in attrs:
                    attrs["activityId"] = str(int(event["eventId"]))
        out.append(event)

    for i in range(n - 1):
        for event in block:
            put(event, 6 * i)
    for event in tail:
        put(event, 6 * (n - 2), lean=False)
    doc["events"] = out
    return doc


def activities(tmp: Path, n: int) -> None:
    path = tmp / "long.json"
    path.write_text(json.dumps(_many_activities(n)))
    for fmt in ("json", "html"):
        out = tmp / f"report.{fmt}"
        # 40,000 activities in `temporal workflow show` JSON are about 100 MB, over check's 64 MiB default.
        elapsed, peak, code = _grader("check", "--history", str(path), "--format", fmt, "--output", str(out),
                                      "--max-history-bytes", str(256 * 1024 * 1024))
        _report(f"act/{fmt}", n, elapsed, peak, code, _size(out) if out.exists() else 0,
                f"history {path.stat().st_size / 1e6:.1f} MB")


def message(tmp: Path, megabytes: int) -> None:
    doc = json.loads((GOLDENS / "live-fix.json").read_text())
    for event in doc["events"]:
        for key, attrs in event.items():
            failure = attrs.get("lastFailure") if key.endswith("EventAttributes") and isinstance(attrs, dict) else None
            if isinstance(failure, dict) and "message" in failure:
                failure["message"] = "x" * (megabytes * 1_000_000)
    path = tmp / "message.json"
    path.write_text(json.dumps(doc))
    for fmt in ("json", "html", "markdown"):
        out = tmp / f"report.{fmt}"
        elapsed, peak, code = _grader("check", "--history", str(path), "--format", fmt, "--output", str(out))
        _report(f"msg/{fmt}", megabytes, elapsed, peak, code, _size(out) if out.exists() else 0,
                f"history {path.stat().st_size / 1e6:.1f} MB")


PROBES = {"members": (members, 100_000), "copies": (copies, 50_000), "shared": (shared, 2_000),
          "manifest": (manifest, 3_000), "activities": (activities, 40_000), "message": (message, 60)}


def main() -> None:
    """Build and grade each probe; one line of figures per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PROBES), action="append")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every N (0.1: a tenth)")
    args = parser.parse_args()
    print(f"grader in fresh processes, command defaults; {os.cpu_count()} CPUs", flush=True)
    for name in args.only or PROBES:
        run, n = PROBES[name]
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            run(Path(tmp), max(1, int(n * args.scale)))


if __name__ == "__main__":
    main()
