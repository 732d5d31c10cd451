"""Rosters as people and LMSs write them: delimiters, header case, id columns, duplicates, Canvas and Moodle exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.classroom.roster import CANVAS, MOODLE, PLAIN, read_roster, sniff_delimiter
from grader.cli import cli
from grader.errors import BadInputError
from grader.engine.learner import validate_learner_id

LMS = Path(__file__).parent / "data" / "lms"


def _any(value: str, what: str) -> str:
    if not value:
        raise BadInputError(f"{what} is empty")
    return value


def _live(value: str, what: str) -> str:
    return validate_learner_id(value, what=what)


def _write(tmp_path: Path, text: str, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize("text", [
    "learner,name\nada,Ada\nbob,Bob\n",
    "learner;name\nada;Ada\nbob;Bob\n",
    "learner\tname\nada\tAda\nbob\tBob\n",
    "Learner;Name\r\nada;Ada\r\nbob;Bob\r\n",
    " LEARNER ,name\nada,Ada\nbob,Bob\n",
])
def test_delimiter_and_header_case_do_not_matter(tmp_path: Path, text: str):
    roster = read_roster(_write(tmp_path, text), validate=_any)
    assert list(roster.learners) == ["ada", "bob"] and roster.kind == PLAIN
    assert [c.casefold() for c in roster.columns] == ["name"]
    assert roster.learners["ada"][roster.columns[0]] == "Ada"


def test_the_delimiter_is_what_splits_the_header_into_most_cells():
    assert sniff_delimiter('"Name, full";Email;learner') == ";"
    assert sniff_delimiter("learner") == ","


def test_id_column_takes_the_local_part_of_an_email(tmp_path: Path):
    path = _write(tmp_path, "Name;E-mail\nAda;ada@uni.example\nBob;bob.b@uni.example\n")
    roster = read_roster(path, validate=_live, id_column="e-mail")
    assert list(roster.learners) == ["ada", "bob.b"]
    assert roster.learners["ada"] == {"Name": "Ada", "E-mail": "ada@uni.example"}


def test_an_exact_duplicate_is_merged_with_a_warning(tmp_path: Path):
    roster = read_roster(_write(tmp_path, "learner,name\nada,Ada\nbob,Bob\nada,Ada\n"), validate=_any)
    assert list(roster.learners) == ["ada", "bob"]
    assert roster.warnings == [f"{tmp_path / 'roster.csv'} line 4 repeats line 2 exactly (learner 'ada'): merged"]


def test_conflicting_duplicates_name_both_lines(tmp_path: Path):
    with pytest.raises(BadInputError) as err:
        read_roster(_write(tmp_path, "learner,name\nada,Ada\nbob,Bob\nada,Ada L.\n"), validate=_any)
    assert "lines 2 and 4: learner 'ada' appears on both with different cells" in str(err.value)
    assert "\n" not in str(err.value)


def test_canvas_export_is_recognised_and_needs_no_editing():
    roster = read_roster(LMS / "canvas-gradebook-export.csv", validate=_live)
    assert roster.kind == CANVAS
    # SIS Login ID gives LEARNER_ID (an email's local part); the test student has none and is skipped.
    assert list(roster.learners) == ["ada", "bob", "carol", "zoe", "eve"]
    assert roster.columns == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert roster.learners["zoe"]["Student"] == "Müller, Zoë"
    assert roster.lms_ids == {"ada": "1001", "bob": "1002", "carol": "1003", "zoe": "1004", "eve": "1005"}
    assert len(roster.warnings) == 1 and "'Student, Test' has no 'SIS Login ID': skipped" in roster.warnings[0]
    export = roster.export
    assert export.bom and export.delimiter == "," and export.rows[0][0] == "    Points Possible"
    assert export.row_of["ada"] == 1


def test_canvas_export_with_integration_id_spaces_and_semicolons(tmp_path: Path):
    text = ("Student; ID; SIS User ID; SIS Login ID; Integration ID; Section; Lab (12)\n"
            "    Points Possible;;;;;;30,00\n"
            "Lovelace, Ada;1001;S1;ada;I1;A;\n")
    roster = read_roster(_write(tmp_path, text), validate=_live)
    assert roster.kind == CANVAS and list(roster.learners) == ["ada"] and roster.lms_ids == {"ada": "1001"}
    assert roster.export.delimiter == ";"
    assert roster.columns == ["Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section"]


def test_canvas_export_by_canvas_user_id(tmp_path: Path):
    roster = read_roster(LMS / "canvas-gradebook-export.csv", validate=_any, id_column="ID")
    assert list(roster.learners) == ["1001", "1002", "1003", "1004", "1005", "9999"]


def test_moodle_worksheet_is_recognised_and_needs_no_editing():
    roster = read_roster(LMS / "moodle-grading-worksheet.csv", validate=_live)
    assert roster.kind == MOODLE
    assert list(roster.learners) == ["ada", "bob", "carol", "zoe"]
    assert roster.columns == ["Identifier", "Full name", "Email address"]
    assert roster.lms_ids["zoe"] == "204814"
    assert roster.late == {"zoe": True}


def test_roster_problems_reach_the_cli_as_one_line_and_exit_2(tmp_path: Path):
    (tmp_path / "download").mkdir()
    roster = _write(tmp_path, "learner,name\nada,Ada\nada,Ann\n")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(tmp_path / "download"), "--roster",
                                      str(roster), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "lines 2 and 3" in result.stderr and "Traceback" not in result.output


def test_merged_duplicates_are_a_warning_on_stderr(tmp_path: Path):
    (tmp_path / "download" / "ada").mkdir(parents=True)
    roster = _write(tmp_path, "Learner;Name\nada;Ada\nada;Ada\n")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(tmp_path / "download"), "--roster",
                                      str(roster), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "grader: warning: " in result.stderr and "repeats line 2 exactly" in result.stderr


def test_an_unknown_id_column_lists_the_headers(tmp_path: Path):
    with pytest.raises(BadInputError) as err:
        read_roster(_write(tmp_path, "name,email\nAda,a@x.org\n"), validate=_any, id_column="login")
    assert "no 'login' column (found: name, email)" in str(err.value)
