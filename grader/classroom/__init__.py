"""Grading a whole class: ``grader batch`` as a library.

A class is graded from a live server (every learner's workflows of the pack's type
runs, matched exactly by learner id) or from a folder of submissions (one
subfolder or ``.zip`` per learner). Each learner ends with one row and a
status, never a silent zero; the rows become a gradebook (CSV, JSON and one
feedback file per learner) and, against an earlier gradebook, a regrade diff.

- :mod:`.roster`: the roster CSV, a Canvas export or a Moodle worksheet;
- :mod:`.live`, :mod:`.lms` and :mod:`.submissions`: where a learner's histories come from
  (a server, an LMS download's layout, the files of one submission);
- :mod:`.uploads`: one learner's folders and zips read under per-learner limits (no upload can
  exhaust the grader or make it follow a link, open a FIFO or trust a name);
- :mod:`.late`: the gradebook's ``late`` column;
- :mod:`.lms_grades`: the scores written back into a copy of the LMS export;
- :mod:`.spreadsheet`: CSV cells no spreadsheet runs as formulas;
- :mod:`.batch`: grading learners as their histories arrive;
- :mod:`.gradebook`: the files in ``--out DIR``, staged and swapped in together, under a lock;
- :mod:`.regrade`: what changed since an earlier gradebook;
- :mod:`.progress` and :mod:`.summary`: what the person running it sees;
- :mod:`.feedback`: each learner's feedback file;
- :mod:`.autograder`: the Gradescope autograder zip and its run.

The class result types live in :mod:`grader.engine.classreport`. The names
below are re-exported lazily, so importing one module of this package (the
gradebook, the roster) does not import the batch and the SDK with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Re-exported name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(("GRADED", "MISSING", "NOT_GRADABLE", "UNREADABLE_FILES", "STATUSES", "BatchResult", "ClassRow"),
                    "grader.engine.classreport"),
    **dict.fromkeys(("LearnerResult", "batch_files", "batch_live"), "grader.classroom.batch"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Load a re-exported name from its module on first use."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
