"""Fuzzed histories never crash the grader: they are graded or refused as bad input.

The cases come from ``scripts/fuzz_histories.py``, a seeded mutation fuzzer
over the goldens. In process, thousands of them go through the whole
offline path (read, evidence, checks, report, JSON and table, timeline);
a sample goes through the real ``grader`` command as subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.fuzz_histories import Fuzzer, check_case, report_validator, strict_json_loads  # noqa: E402

from grader.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, GraderError  # noqa: E402
from grader.engine.history import load_json_text  # noqa: E402

GOLDENS = REPO / "tests" / "goldens"
GRADER = Path(sys.executable).parent / "grader"


def _run_cases(seed: int, count: int) -> tuple[list[str], int, int]:
    """Judge ``count`` cases; return the failures and how many were graded and refused."""
    fuzzer = Fuzzer.from_goldens(seed=seed)
    failures, graded, refused = [], 0, 0
    for case in fuzzer.cases(count):
        problem = check_case(case.data, source=case.name)
        if problem:
            failures.append(f"case {case.index} ({', '.join(case.operators)}): {problem}")
            continue
        try:
            load_json_text(case.data, source=case.name)
            graded += 1
        except GraderError:
            refused += 1
    return failures, graded, refused


def test_fuzz_quick():
    """A few hundred cases: only bad input or a valid strict-JSON report, never another exception."""
    failures, graded, refused = _run_cases(seed=11, count=300)
    assert not failures, "\n".join(failures[:10])
    # The mix must hold both kinds, or the fuzzer has stopped testing one side.
    assert graded > 30 and refused > 30


@pytest.mark.slow
def test_fuzz_thousands_in_process():
    """3,000 cases over every golden (about 5 s)."""
    failures, graded, refused = _run_cases(seed=20261125, count=3000)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:10])
    assert graded > 300 and refused > 300


def test_fuzzer_is_reproducible():
    """Case i depends only on the seed and i: a failure found at scale can be replayed."""
    a, b = Fuzzer.from_goldens(seed=5), Fuzzer.from_goldens(seed=5)
    assert [c.data for c in a.cases(20)] == [b.case(i).data for i in range(20)]
    assert a.case(3).data != Fuzzer.from_goldens(seed=6).case(3).data


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(GRADER), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def _assert_clean(result: subprocess.CompletedProcess, what: str) -> dict:
    assert result.returncode in (EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT), (what, result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, (what, result.stderr)
    for line in result.stderr.splitlines():
        assert line.startswith("grader: error: "), (what, line)
    report = strict_json_loads(result.stdout)
    errors = list(report_validator().iter_errors(report))
    assert not errors, (what, errors[0].message)
    if result.returncode == EXIT_BAD_INPUT:
        assert report["errors"] and result.stderr.count("\n") == len(report["errors"])
    return report


@pytest.mark.slow
def test_fuzz_sample_through_the_real_cli(tmp_path: Path):
    """40 fuzzed files, each graded by the installed ``grader`` in its own process."""
    fuzzer = Fuzzer.from_goldens(seed=77)
    paths = []
    for case in fuzzer.cases(40):
        path = tmp_path / case.name
        path.write_bytes(case.data)
        paths.append(path)

    def one(path: Path) -> tuple[Path, subprocess.CompletedProcess]:
        return path, _cli("check", "--history", str(path), "--format", "json")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, paths))
    codes = set()
    for path, result in results:
        _assert_clean(result, path.name)
        codes.add(result.returncode)
    assert EXIT_BAD_INPUT in codes and codes & {EXIT_OK, EXIT_FAILED}


@pytest.mark.slow
def test_mixed_folder_still_grades_the_good_files(tmp_path: Path):
    """Good goldens next to fuzzed files, a FIFO and a symlink loop: the good ones are graded."""
    folder = tmp_path / "histories"
    folder.mkdir()
    good = ["sigkill-during-deposit.json", "live-fix.json", "retries-exhausted-refund.json"]
    for name in good:
        shutil.copy(GOLDENS / name, folder / name)
    fuzzer = Fuzzer.from_goldens(seed=3)
    bad = 0
    for case in fuzzer.cases(200):
        try:
            load_json_text(case.data, source=case.name)
        except GraderError:
            (folder / case.name).write_bytes(case.data)
            bad += 1
            if bad == 15:
                break
    os.mkfifo(folder / "pipe.json")
    (folder / "loop.json").symlink_to(folder / "loop.json")
    result = _cli("check", "--history", str(folder), "--format", "json")
    report = _assert_clean(result, "mixed folder")
    assert result.returncode == EXIT_BAD_INPUT
    assert len(report["errors"]) == bad + 2
    assert any("pipe.json: a named pipe (FIFO)" in e for e in report["errors"])
    assert any("loop.json: cannot read it (a symbolic link loop)" in e for e in report["errors"])
    assert len(report["sources"]) == len(good) + bad + 2
    # Every required experiment passed, on one of the good histories.
    for experiment in report["experiments"]:
        if experiment["required"]:
            assert experiment["status"] == "pass", experiment
            assert experiment["workflow"]["source"] in {str(folder / name) for name in good}
    assert report["status"] == "pass"
