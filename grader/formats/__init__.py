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

#: Format name -> module that renders it. The first is the default.
FORMATS: dict[str, str] = {
    "table": "grader.formats.table",
    "json": "grader.formats.json",
    "html": "grader.formats.html",
}


def renderer(name: str) -> Callable[["Report"], str]:
    """The ``render`` function of the format called ``name``."""
    return import_module(FORMATS[name]).render


def render(report: "Report", name: str) -> str:
    """``report`` rendered in the format called ``name``."""
    return renderer(name)(report)
