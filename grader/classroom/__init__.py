"""Grading a whole class: ``grader batch`` as a library.

A class is graded from a live server (every learner's ``MoneyTransfer``
runs, matched exactly by learner id) or from a folder of submissions (one
subfolder or ``.zip`` per learner). Each learner ends with one row and a
status, never a silent zero; the rows become a gradebook (CSV, JSON and one
feedback file per learner) and, against an earlier gradebook, a regrade diff.

- :mod:`.roster`: the roster CSV, a Canvas export or a Moodle worksheet;
- :mod:`.live`, :mod:`.lms` and :mod:`.submissions`: where a learner's histories come from
  (a server, an LMS download's layout, the files of one submission);
- :mod:`.late`: the gradebook's ``late`` column;
- :mod:`.lms_grades`: the scores written back into a copy of the LMS export;
- :mod:`.spreadsheet`: CSV cells no spreadsheet runs as formulas;
- :mod:`.batch`: grading learners as their histories arrive, and the statuses;
- :mod:`.gradebook`: the files in ``--out DIR``, written atomically;
- :mod:`.regrade`: what changed since an earlier gradebook;
- :mod:`.progress` and :mod:`.summary`: what the person running it sees.
"""

from grader.classroom.batch import (
    GRADED,
    MISSING,
    NOT_GRADABLE,
    STATUSES,
    UNREADABLE_FILES,
    BatchResult,
    ClassRow,
    LearnerResult,
    batch_files,
    batch_live,
)

__all__ = [
    "GRADED", "MISSING", "NOT_GRADABLE", "UNREADABLE_FILES", "STATUSES",
    "BatchResult", "ClassRow", "LearnerResult", "batch_files", "batch_live",
]
