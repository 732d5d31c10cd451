"""Renderers: one module per output format, each turning a finished report into text.

Every module here exposes ``render(report) -> str`` and reads nothing but the
:class:`grader.report.Report` it is given (a format never reads a history).
``FORMATS`` is the one list the shared ``--format`` option offers; modules are
imported only when their format is asked for, so ``grader --help`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from grader.report import Report

#: Format name -> module that renders it. The first is the default. Names are
#: public interface (``--format NAME``); add a format with one line here.
FORMATS: dict[str, str] = {
    "table": "grader.formats.table",
    "json": "grader.formats.json",
    "markdown": "grader.formats.markdown",
    "gradescope": "grader.formats.gradescope",
    "junit": "grader.formats.junit",
    "github": "grader.formats.github",
    "classroom": "grader.formats.classroom",
}


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
