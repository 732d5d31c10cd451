"""JUnit and Gradescope polish: names a dashboard can track, an unseen bonus never "passed", whole seconds.

JUnit is read with junitparser after validating against the vendored XSD;
Gradescope's documents against the results.json schema in tests/data/.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import xmlschema
from click.testing import CliRunner
from junitparser import JUnitXml

from grader import api
from grader.cli import cli
from grader.formats import gradescope, junit

GOLDENS = Path(__file__).parent / "goldens"
DATA = Path(__file__).parent / "data"
POINTS_IN_NAME = re.compile(r"\[\d+(\.\d+)?(/\d+(\.\d+)?)?\]")


def cases(text: str, tmp_path: Path, name: str = "report.xml") -> dict[tuple[str, str], object]:
    """Every test case of a JUnit document that validates against the XSD, by (suite, case name)."""
    path = tmp_path / name
    path.write_text(text)
    xmlschema.XMLSchema(str(DATA / "junit-4.xsd")).validate(str(path))
    return {(suite.name, case.name): case for suite in JUnitXml.fromfile(str(path)) for case in suite}


def test_junit_case_names_stay_the_same_whatever_the_score(tmp_path: Path):
    """A passing and a failing run of the same experiment give the same test names: history is kept."""
    passing = api.check_files([GOLDENS / "retries-exhausted-refund.json"], experiments=["compensation"],
                              replay=False)
    failing = api.check_files([GOLDENS / "cancel.json"], experiments=["compensation"], replay=False)
    assert passing.score != failing.score
    good = cases(junit.render(passing), tmp_path, "good.xml")
    bad = cases(junit.render(failing), tmp_path, "bad.xml")
    assert set(good) == set(bad)
    assert not [n for _, n in good if POINTS_IN_NAME.search(n)]
    assert any(case.result for case in bad.values()) and not any(case.result for case in good.values())


def test_junit_bonus_names_do_not_change_when_the_evidence_appears(tmp_path: Path):
    seen = api.check_files([GOLDENS / "sigkill-during-deposit.json"], experiments=["crash-recovery"], replay=False)
    unseen = api.check_files([GOLDENS / "kill-between-activities.json"], experiments=["crash-recovery"],
                             replay=False)
    names = [set(n for _, n in cases(junit.render(r), tmp_path, f"{i}.xml")) for i, r in enumerate((seen, unseen))]
    assert names[0] == names[1]
    assert any(n.endswith(" (bonus evidence)") for n in names[0])


def test_junit_points_are_suite_properties(tmp_path: Path):
    report = api.check_files([GOLDENS / "cancel.json"], experiments=["compensation"], replay=False)
    path = tmp_path / "r.xml"
    path.write_text(junit.render(report))
    suite, = list(JUnitXml.fromfile(str(path)))
    props = {p.name: p.value for p in suite.properties()}
    for chk in report.experiments[0].checks:
        assert props[f"{chk.id}.score"] == f"{chk.score:g}" and props[f"{chk.id}.max_score"] == f"{chk.max_score:g}"


def test_junit_class_case_names_carry_no_points(tmp_path: Path):
    download = tmp_path / "download"
    (download / "ada").mkdir(parents=True)
    shutil.copy(GOLDENS / "retries-exhausted-refund.json", download / "ada")
    (download / "bob").mkdir()
    shutil.copy(GOLDENS / "cancel.json", download / "bob")
    result = CliRunner().invoke(cli, ["batch", "--submissions", str(download), "--out", str(tmp_path / "out"),
                                      "-q", "--no-replay", "--format", "junit"])
    assert result.exit_code == 0, result.output
    found = cases(result.stdout, tmp_path)
    assert {n for s, n in found if s == "ada"} == {n for s, n in found if s == "bob"}
    assert not [n for _, n in found if POINTS_IN_NAME.search(n)]
    path = tmp_path / "report.xml"
    suites = {s.name: {p.name: p.value for p in s.properties()} for s in JUnitXml.fromfile(str(path))}
    assert suites["ada"]["compensation.score"] == "10" and suites["bob"]["compensation.score"] == "0"


def test_gradescope_never_shows_an_unseen_bonus_as_passed():
    schema = json.loads((DATA / "gradescope-results.schema.json").read_text())
    # The crash between activities has no interrupted activity (bonus unseen); the paused server's
    # deposit outlived its deadline (bonus seen).
    report = api.check_files([GOLDENS / "kill-between-activities.json", GOLDENS / "server-paused-long.json"],
                             replay=False)
    document = gradescope.document(report, execution_time=2.2)
    jsonschema.validate(document, schema)
    bonus = {t["name"]: t for t in document["tests"] if "bonus" in t["tags"]}
    seen = [t for t in bonus.values() if "not-seen" not in t["tags"]]
    unseen = [t for t in bonus.values() if "not-seen" in t["tags"]]
    assert seen and unseen
    assert all(t["status"] == "passed" for t in seen)
    assert all(t["status"] == "failed" and t["score"] == 0 and "not seen" in t["name"]
               and "costs nothing" in t["output"] for t in unseen)
    assert document["execution_time"] == 3 and isinstance(document["execution_time"], int)
    assert gradescope.document(report)["execution_time"] == 0
