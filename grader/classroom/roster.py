"""The roster: a CSV naming the class, as a person writes it or as an LMS exports it.

Three shapes are recognised by their header alone, so an instructor hands
the file over as it was downloaded:

- **plain**: any CSV with a ``learner`` column (any case); its other columns
  are copied into the gradebook.
- **canvas**: a Canvas gradebook export (``Student, ID, SIS User ID, SIS
  Login ID, Section, <assignment> (<id>), ...``, then a ``Points Possible``
  row). LEARNER_ID comes from ``SIS Login ID`` (an email's local part), and
  the Canvas ``ID`` matches the learner's files in a Canvas download.
- **moodle**: a Moodle grading worksheet (``Identifier, Full name, Email
  address, Status, Grade, ...``). LEARNER_ID comes from ``Email address``
  (its local part), and ``Participant N`` in ``Identifier`` matches the
  learner's folder in a Moodle download.

The delimiter (``,``, ``;`` or tab) is taken from the header line, header
names are matched ignoring case and surrounding spaces, and ``id_column``
(``--id-column``) picks another column for LEARNER_ID. A row repeated
exactly is merged with a warning; the same learner on two different rows is
an error naming both lines. An LMS export is kept whole (header, every row,
its delimiter) so the grades can be written back into a copy of it
(:mod:`grader.classroom.lms_grades`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grader.errors import BadInputError
from grader.engine.learner import learner_key

#: The plain roster's column holding learner ids (matched ignoring case).
LEARNER_COLUMN = "learner"
PLAIN, CANVAS, MOODLE = "plain", "canvas", "moodle"
#: The column each kind takes LEARNER_ID from when ``--id-column`` is not given.
DEFAULT_ID_COLUMN = {PLAIN: LEARNER_COLUMN, CANVAS: "SIS Login ID", MOODLE: "Email address"}
#: The column of an LMS export that matches a learner to their files in that LMS's download.
LMS_KEY_COLUMN = {CANVAS: "ID", MOODLE: "Identifier"}
DELIMITERS = (",", ";", "\t")
#: The first cell of Canvas's row of maximum points (Canvas indents it with four spaces).
CANVAS_POINTS_POSSIBLE = "Points Possible"
_EMAIL = re.compile(r"^([^@\s]+)@[^@\s]+\.[^@\s]+$")
_PARTICIPANT = re.compile(r"^\s*participant\s*(\d+)\s*$", re.IGNORECASE)


@dataclass
class LmsExport:
    """An LMS export read as a roster, kept whole so grades can go back into a copy of it."""

    #: ``canvas`` or ``moodle``.
    kind: str
    #: The header exactly as the file has it.
    header: list[str]
    #: Every row after the header, cells as read (Canvas's Points Possible row included).
    rows: list[list[str]]
    delimiter: str
    #: Whether the file began with a UTF-8 byte-order mark.
    bom: bool
    #: The file's line ending (``\r\n`` or ``\n``), kept for the import file.
    line_ending: str = "\r\n"
    #: learner id -> index in :attr:`rows` of that learner's row.
    row_of: dict[str, int] = field(default_factory=dict)

    def column(self, name: str) -> int | None:
        """The index of header column ``name``, ignoring case and surrounding spaces, or None."""
        return _find(self.header, name)


@dataclass
class Roster:
    """The learners of a class, in the roster's order, with their other columns."""

    #: The roster's columns copied into the gradebook, in file order.
    columns: list[str] = field(default_factory=list)
    #: learner id -> that learner's copied cells (column -> value), in roster order.
    learners: dict[str, dict[str, str]] = field(default_factory=dict)
    #: ``plain``, ``canvas`` or ``moodle``.
    kind: str = PLAIN
    #: learner id -> the LMS's own id for them: Canvas's ``ID``, Moodle's participant number.
    lms_ids: dict[str, str] = field(default_factory=dict)
    #: learner id -> True when the export itself says the work came in late (Moodle's Status).
    late: dict[str, bool] = field(default_factory=dict)
    #: The whole export when the roster is an LMS's (for the import file), else None.
    export: LmsExport | None = None
    #: Things the instructor should know that did not stop the batch (merged rows, skipped rows).
    warnings: list[str] = field(default_factory=list)


def _norm(name: str) -> str:
    return name.strip().casefold()


def _find(header: list[str], name: str) -> int | None:
    wanted = _norm(name)
    return next((i for i, h in enumerate(header) if _norm(h) == wanted), None)


def sniff_delimiter(first_line: str) -> str:
    """The delimiter of a CSV from its header line: whichever of ``,`` ``;`` tab splits it into the most cells.

    Counting cells (quotes respected) rather than characters keeps a header
    such as ``"Name, full";Email`` right. A tie goes to the comma.
    """
    best, cells = ",", 0
    for delimiter in DELIMITERS:
        count = len(next(csv.reader([first_line], delimiter=delimiter), []))
        if count > cells:
            best, cells = delimiter, count
    return best


def detect_kind(header: list[str]) -> str:
    """``canvas``, ``moodle`` or ``plain``, from the header names alone."""
    names = {_norm(h) for h in header}
    first = _norm(header[0]) if header else ""
    if first in ("student", "lastname") and {"id", "section"} <= names:
        return CANVAS
    if {"identifier", "full name", "grade"} <= names:
        return MOODLE
    return PLAIN


def learner_id_from_cell(value: str) -> str:
    """A cell of the id column as a LEARNER_ID: an email address means its local part."""
    value = value.strip()
    match = _EMAIL.match(value)
    return match.group(1) if match else value


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}): save the roster "
                            "as CSV UTF-8 (Excel: File > Save As > CSV UTF-8)") from None


def _carried(kind: str, header: list[str], id_index: int) -> list[int]:
    """Which columns the gradebook copies: all but ``learner`` for a plain roster, the identity columns of an export.

    A Canvas export's identity columns run up to ``Section`` (assignment and
    total columns follow), a Moodle worksheet's up to ``Status`` (grades and
    dates follow): copying every assignment of a course would bury the grade.
    """
    if kind == CANVAS:
        end = _find(header, "Section")
        return list(range(end + 1))
    if kind == MOODLE:
        end = _find(header, "Status")
        return list(range(end if end is not None else len(header)))
    return [i for i in range(len(header)) if not (i == id_index and _norm(header[i]) == LEARNER_COLUMN)]


def read_roster(path: Path, *, validate: Callable[[str, str], str], reserved: set[str] = frozenset(),
                id_column: str | None = None) -> Roster:
    """Read and check a roster CSV; raise :class:`BadInputError` naming the file and line.

    ``validate(value, what)`` checks one learner id (live and file batches
    accept different ids). ``reserved`` are the gradebook's own column names,
    which a copied roster column may not take (ignoring case). ``id_column``
    names the column holding LEARNER_ID (default: see :data:`DEFAULT_ID_COLUMN`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadInputError(f"{path}: cannot read the roster ({err.strerror or err})") from None
    bom = data.startswith(b"\xef\xbb\xbf")
    text = _decode(path, data[3:] if bom else data)
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = sniff_delimiter(first_line)
    try:
        records = _records(text, delimiter)
    except csv.Error as err:
        raise BadInputError(f"{path}: not a readable CSV file ({err}): save the roster as CSV") from None
    if not records:
        raise BadInputError(f"{path}: the roster is empty: add a header row and one row per learner")
    header_line, header = records[0]
    kind = detect_kind(header)
    wanted = id_column or DEFAULT_ID_COLUMN[kind]
    id_index = _find(header, wanted)
    if id_index is None:
        found = ", ".join(h.strip() for h in header) or "nothing"
        hint = ("pass --id-column with the column that holds each learner's LEARNER_ID" if id_column is None
                else "pass --id-column with one of those")
        raise BadInputError(f"{path}: the roster has no {wanted!r} column (found: {found}): {hint}")
    carried = _carried(kind, header, id_index)
    columns = [header[i].strip() for i in carried]
    lowered = [c.casefold() for c in columns]
    clash = sorted({c for c in columns if c.casefold() in {r.casefold() for r in reserved}} | {c for c in columns if not c})
    if clash:
        raise BadInputError(f"{path}: roster column {clash[0]!r} is empty or a gradebook column: rename it")
    if len(set(lowered)) != len(lowered):
        twice = next(c for c in columns if lowered.count(c.casefold()) > 1)
        raise BadInputError(f"{path}: roster column {twice!r} appears twice: rename one")
    roster = Roster(columns=columns, kind=kind)
    line_ending = "\r\n" if "\r\n" in text[:65536] else "\n"
    export = LmsExport(kind, header, [], delimiter, bom, line_ending) if kind != PLAIN else None
    roster.export = export
    key_index = _find(header, LMS_KEY_COLUMN[kind]) if kind != PLAIN else None
    status_index = _find(header, "Status") if kind == MOODLE else None
    first_seen: dict[str, tuple[int, list[str]]] = {}
    for line, row in records[1:]:
        if export is not None:
            export.rows.append(row)
        where = f"{path} line {line}"
        if len(row) > len(header):
            raise BadInputError(f"{where}: more cells than the header has columns: quote cells that "
                                f"hold {delimiter!r}")
        cells = row + [""] * (len(header) - len(row))
        if not any(c.strip() for c in cells):
            continue  # a blank line at the end of a spreadsheet export
        if kind == CANVAS and _not_a_student(cells, header):
            continue  # Canvas's Points Possible row, or its row saying which assignments are not posted
        raw_id = cells[id_index]
        if not raw_id.strip() and kind != PLAIN:
            name = cells[0].strip() or "(no name)"
            roster.warnings.append(f"{where}: {name!r} has no {header[id_index].strip()!r}: skipped "
                                   "(Canvas's test student has none; --id-column picks another column)")
            continue
        learner = validate(learner_id_from_cell(raw_id) if _norm(header[id_index]) != LEARNER_COLUMN
                           else raw_id.strip(), f"the learner id on {where}")
        key = learner_key(learner)  # ids match in any case: Ada and ada are one learner
        if key in first_seen:
            earlier, earlier_cells = first_seen[key]
            if earlier_cells == cells:
                roster.warnings.append(f"{where} repeats line {earlier} exactly (learner {learner!r}): merged")
                continue
            raise BadInputError(f"{path} lines {earlier} and {line}: learner {learner!r} appears on both "
                                "with different cells: keep one")
        first_seen[key] = (line, cells)
        roster.learners[learner] = {header[i].strip(): cells[i] for i in carried}
        if export is not None:
            export.row_of[learner] = len(export.rows) - 1
        if key_index is not None:
            key = cells[key_index].strip()
            if kind == MOODLE:
                match = _PARTICIPANT.match(key)
                key = match.group(1) if match else key
            if key:
                roster.lms_ids[learner] = key
        if status_index is not None and re.search(r"\blate\b", cells[status_index], re.IGNORECASE):
            roster.late[learner] = True
    if not roster.learners:
        raise BadInputError(f"{path}: the roster lists no learners")
    return roster


def _not_a_student(cells: list[str], header: list[str]) -> bool:
    first = cells[0].strip()
    if first.casefold() == CANVAS_POINTS_POSSIBLE.casefold():
        return True
    id_index = _find(header, "ID")
    # The optional row Canvas writes above Points Possible (assignments under manual posting) has no name and no id.
    return not first and id_index is not None and not cells[id_index].strip()


def _records(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """``(line number, cells)`` of every record, the header first; blank lines before the header skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = []
    start = 1
    for row in reader:
        if not records and not any(c.strip() for c in row):
            start = reader.line_num + 1
            continue
        records.append((start, row))
        start = reader.line_num + 1
    return records
