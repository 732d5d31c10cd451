"""Linear in what is handed in, bounded in what is written: copies, manifests, bad files, long messages.

The costs themselves are measured by benchmarks/bench_hostile.py; these tests
hold the behaviour that makes them linear (copies compared once, a repeated
manifest entry read once, problem lines capped, messages cut with a marker).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from grader.sources.bundles import read_bundle, sha256_hex
from grader.classroom import batch_files
from grader.engine.evidence import MAX_MESSAGE
from grader.engine.history import load_json_text
from grader.engine.integrity import PAIRWISE_VERSIONS, compare_runs

GOLDENS = Path(__file__).parent / "goldens"
RUN = (GOLDENS / "no-failure.json").read_bytes()


def _copies(n: int, *, edited: set[int] = frozenset()) -> list:
    histories = []
    for i in range(n):
        doc = json.loads(RUN)
        if i in edited:  # one version that says something else about the same run
            doc["events"][5]["activityTaskStartedEventAttributes"]["identity"] = f"{i}@elsewhere"
        histories.append(load_json_text(json.dumps(doc), source=f"copy{i}.json"))
    return histories


def test_identical_copies_of_one_run_are_one_version_and_agree():
    assert compare_runs(_copies(500)) == {}


def test_a_second_version_flags_every_copy_of_both():
    found = compare_runs(_copies(40, edited={7}))
    assert sorted(found) == list(range(40))
    assert "copy0.json (and 38 identical copies) holds the same run" in found[7][0].message
    assert "copy7.json holds the same run" in found[0][0].message


def test_past_the_pairwise_limit_every_version_is_still_flagged():
    n = PAIRWISE_VERSIONS + 20
    found = compare_runs(_copies(n, edited=set(range(1, n))))
    assert sorted(found) == list(range(n))
    assert max(len(f) for f in found.values()) <= n - 1


def test_a_manifest_listing_one_file_many_times_reads_it_once(tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "run.json").write_bytes(RUN)
    start = json.loads(RUN)["events"][0]["workflowExecutionStartedEventAttributes"]
    entry = {"file": "run.json", "workflow_id": start["workflowId"], "run_id": start["originalExecutionRunId"],
             "sha256": sha256_hex(RUN)}
    (bundle / "manifest.json").write_text(json.dumps({
        "format": "failure-lab-bundle/1", "grader_version": "0.1.0", "server_address": "localhost:7233",
        "namespace": "default", "learner": "ada", "exported_at": "2026-12-01T00:00:00Z",
        "histories": [entry] * 3000}))
    loaded = read_bundle(bundle)
    assert len(loaded.histories) == 1 and loaded.errors == []
    [finding] = loaded.findings[str(bundle / "run.json")]
    assert finding.code == "manifest-mismatch" and "lists run.json 3000 times" in finding.message


def test_a_learners_many_bad_files_make_a_bounded_row(tmp_path: Path):
    subs = tmp_path / "subs"
    subs.mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3000):
            archive.writestr(f"bad{i}.json", b"{")
    (subs / "ada.zip").write_bytes(buffer.getvalue())
    result = batch_files(subs, tmp_path / "out", jobs=1)
    [row] = result.learners
    assert row.status == "unreadable-files"
    assert len(row.problems) <= 52
    # The limit that stopped the reading comes first, so the cap on problem lines never hides it.
    assert row.problems[0] == ("ada.zip: 2000 more .json files were not read (at most 1000 are): hand in only "
                               "the exported histories")
    assert row.problems[-1].startswith("... and ")
    assert (tmp_path / "out" / "feedback" / "ada.md").stat().st_size < 64 * 1024


def test_a_long_failure_message_is_cut_with_a_marker(tmp_path: Path):
    doc = json.loads((GOLDENS / "live-fix.json").read_text())
    for event in doc["events"]:
        for key, attrs in event.items():
            failure = attrs.get("lastFailure") if key.endswith("EventAttributes") and isinstance(attrs, dict) else None
            if isinstance(failure, dict) and "message" in failure:
                failure["message"] = "x" * 3_000_000
    path = tmp_path / "long.json"
    path.write_text(json.dumps(doc))
    from click.testing import CliRunner

    from grader.cli import cli

    outcome = CliRunner().invoke(cli, ["check", "--history", str(path), "--format", "json"])
    assert outcome.exit_code in (0, 1), outcome.output
    assert len(outcome.stdout) < 200_000  # was ten copies of the message
    assert f"… [{3_000_000 - MAX_MESSAGE} more characters cut]" in outcome.stdout


def test_learners_sharing_a_run_each_name_ten_others(tmp_path: Path):
    subs = tmp_path / "subs"
    for i in range(25):
        (subs / f"l{i:02d}").mkdir(parents=True)
        (subs / f"l{i:02d}" / "run.json").write_bytes(RUN)
    result = batch_files(subs, tmp_path / "out", jobs=1)
    document = json.loads((tmp_path / "out" / "gradebook.json").read_text())
    for entry in document["learners"]:
        [dup] = entry["duplicates"]
        assert dup["others"] == 24 and len(dup["also_under"]) == 10
        assert entry["learner"] not in dup["also_under"]
    assert all(row.duplicates for row in result.learners)
