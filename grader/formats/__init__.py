"""Renderers: one module per output format, each turning a finished report into text.

Every module here exposes ``render(report) -> str`` and reads nothing but the
:class:`grader.engine.report.Report` it is given (a format never reads a history).
``FORMATS`` is the one list the shared ``--format`` option offers; modules are
imported only when their format is asked for, so ``grader --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from grader.engine.report import Report

#: Format name -> module that renders it. The first is the default. Names are
#: public interface (``--format NAME``); add a format with one line here.
FORMATS: dict[str, str] = {
    "table": "grader.formats.table",
    "json": "grader.formats.json",
    "markdown": "grader.formats.markdown",
    "html": "grader.formats.html",
    "gradescope": "grader.formats.gradescope",
    "junit": "grader.formats.junit",
    "github": "grader.formats.github",
    "classroom": "grader.formats.classroom",
    "classroom50": "grader.formats.classroom50",
}


#: The formats a program reads (an LMS, a CI step): they always get a whole document, even when
#: nothing could be graded, with the reasons inside it, never an empty output.
MACHINE_FORMATS = frozenset({"json", "gradescope", "junit", "github", "classroom", "classroom50"})


def renderer(name: str) -> Callable[["Report"], str]:
    """The ``render`` function of the format called ``name``."""
    return import_module(FORMATS[name]).render


def render(report: "Report", name: str) -> str:
    """``report`` rendered in the format called ``name``."""
    return renderer(name)(report)


def after_render(report: "Report", name: str) -> None:
    """Run a format's optional ``after_render(report)`` hook, once the report is out.

    A format whose platform also reads something besides the rendered text
    uses it: ``github`` appends the job summary to ``$GITHUB_STEP_SUMMARY``.
    """
    hook = getattr(import_module(FORMATS[name]), "after_render", None)
    if hook is not None:
        hook(report)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader (an LMS, a CI step, a later batch) sees the old file or the whole
    new one, never half a report, even if the grader is killed mid-write.
    """
    import contextlib
    import os
    import tempfile  # here, not at the top: every command imports this module, few write files

    from grader.errors import BadInputError

    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise BadInputError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise BadInputError(f"cannot write {path}: {err.strerror or err}") from None
