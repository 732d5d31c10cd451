"""Where the files that ship with the grader live: the apps, rubrics, schemas and docs.

The checkout keeps ``exercise/``, ``solution/``, ``rubrics/`` and ``docs/`` at
its top level, where a learner browsing the repository finds them. Building a
wheel (directly, or from the sdist) packs those folders into ``grader/data/``
(see ``[tool.setuptools.package-dir]`` in pyproject.toml). An editable install
or a bare checkout has no ``grader/data/``: there the folders sit next to the
package. This module is the only place that knows both layouts; everything
else asks it.
"""

from __future__ import annotations

from pathlib import Path

#: The folders the build packs into ``grader/data/``.
DATA_FOLDERS = ("exercise", "solution", "rubrics", "docs")


def package_root() -> Path:
    """The installed ``grader`` package folder.

    For a package installed as files (pip always installs wheels that way),
    this is the very folder ``importlib.resources.files("grader")`` returns;
    tests/test_package.py checks that they agree in every install mode. It
    is computed here without importing importlib.resources, which (with the
    zipfile and tempfile modules it pulls in) cost about 8 ms, an eighth of a
    whole `grader check --history` run (benchmarks/bench_startup.py). A zipped
    install, the one case where the two would differ, could not run the apps
    as processes anyway.
    """
    return Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """One bundled folder (``exercise``, ``solution``, ``rubrics`` or ``docs``).

    In a wheel or sdist install that is ``grader/data/NAME``; in an editable
    install or a checkout, ``NAME/`` next to the package. The folder may be
    missing (a broken install); callers say so in their own words.
    """
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown bundled folder {name!r}; one of {', '.join(DATA_FOLDERS)}")
    return data_root() / name


def data_root() -> Path:
    """The folder that holds the bundled folders: ``grader/data/``, or the checkout.

    The checkout is recognised by its ``pyproject.toml`` next to the package,
    so an installed package never picks up some other project's top-level
    ``docs/`` lying in site-packages.
    """
    packaged = package_root() / "data"
    if packaged.is_dir():
        return packaged
    checkout = package_root().parent
    return checkout if (checkout / "pyproject.toml").is_file() else packaged


def schema_path(name: str) -> Path:
    """A JSON Schema: ``report`` (grader/schemas/) or ``rubric`` (the rubrics folder's schema.json)."""
    if name == "rubric":
        return data_dir("rubrics") / "schema.json"
    return package_root() / "schemas" / f"{name}.schema.json"


def is_installed_copy() -> bool:
    """True when the package data comes from ``grader/data/`` (a wheel or sdist install)."""
    return (package_root() / "data").is_dir()
