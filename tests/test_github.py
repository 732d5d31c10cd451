"""The shipped GitHub workflows, run as far as they can be off GitHub.

Each test reads a workflow file from docs/ci/ with a YAML parser, and runs its
``run:`` steps the way the Actions runner does: with bash, ``-e`` and
``pipefail``, in a workspace that holds the learner's app (a copy of the
solution), with the job's ``env``, ``GITHUB_ACTIONS``, ``GITHUB_STEP_SUMMARY``
and ``GITHUB_OUTPUT`` set. Steps that ``uses:`` an action (checkout,
setup-python, upload-artifact, the Classroom reporter) cannot run here; the
test checks what they would be given instead. The install step is skipped:
the grader is already installed in the test environment, whose ``bin`` comes
first on PATH. ``SIMULATE_OPTIONS``, the workflows' own knob, makes the
simulation short (one experiment, fast bank calls).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
CI = ROOT / "docs" / "ci"

# compensation with a retry limit the rubric does not allow (it asks for 2): the retry-limit check
# fails, so the run shows an error annotation, a failing exit code and partial credit (9 of 10).
FAST_FAILING = "--experiment compensation --latency 0.3 --max-attempts 3"


def workflow(name: str) -> dict:
    document = yaml.safe_load((CI / name).read_text())
    job, = document["jobs"].values()
    return job


def unescape_data(text: str) -> str:
    """Undo workflow-command escaping the way the runner does."""
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    return unescape_data(text.replace("%3A", ":").replace("%2C", ","))


COMMAND = re.compile(r"^::(?P<kind>[a-z-]+)(?: (?P<props>[^:]*))?::(?P<data>.*)$")


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """One workflow command line -> kind, properties, message (runner rules)."""
    match = COMMAND.match(line)
    assert match, line
    props = {}
    for pair in (match["props"] or "").split(","):
        if pair:
            key, _, value = pair.partition("=")
            props[key] = unescape_property(value)
    return match["kind"], props, unescape_data(match["data"])


def run_step(script: str, *, workspace: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A ``run:`` step as the runner executes it on Linux: bash -e -o pipefail."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=workspace, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def workspace(tmp_path: Path, solution_dir: Path) -> Path:
    """A learner's repository after actions/checkout: the app at its root."""
    repo = tmp_path / "repo"
    shutil.copytree(solution_dir, repo, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


#: The one expression shape the workflows' env uses: an input with a fallback.
INPUT_OR_DEFAULT = re.compile(r"\$\{\{ inputs\.([\w-]+) \|\| '([^']*)' \}\}")


def resolve(value: str, inputs: dict[str, str]) -> str:
    """An env value with its ``${{ inputs.X || 'default' }}`` resolved as Actions does (empty input: default)."""
    return INPUT_OR_DEFAULT.sub(lambda m: inputs.get(m[1]) or m[2], value)


def step_env(job: dict, tmp_path: Path, inputs: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: resolve(str(v), inputs or {}) for k, v in (job.get("env") or {}).items()})
    assert not [v for v in env.values() if "${{" in v], "an expression this test cannot resolve"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["GITHUB_ACTIONS"] = "true"
    env["CI"] = "true"
    env["SIMULATE_OPTIONS"] = FAST_FAILING
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier steps wrote this\n")
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    output = tmp_path / "github_output"
    output.write_text("")
    env["GITHUB_OUTPUT"] = str(output)
    return env


def grader_steps(job: dict) -> list[dict]:
    """The steps this machine can run: every ``run:`` step but the package install."""
    steps = [s for s in job["steps"] if "run" in s and "pip install" not in s["run"]]
    assert steps and all("grader " in s["run"] for s in steps)
    return steps


def test_both_workflows_have_permissions_an_app_dir_input_and_keep_the_histories():
    for name in ("github-actions.yml", "github-classroom.yml"):
        document = yaml.safe_load((CI / name).read_text())
        triggers = document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true
        assert document["permissions"]["contents"] == "read", name
        assert triggers["workflow_dispatch"]["inputs"]["app-dir"]["default"] == ".", name
        job = workflow(name)
        assert resolve(job["env"]["APP_DIR"], {}) == "." and resolve(job["env"]["APP_DIR"], {"app-dir": "a"}) == "a"
        step, = grader_steps(job)
        assert 'grader simulate "$APP_DIR"' in step["run"] and "--save-histories failure-lab-histories" in step["run"]
        upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
        assert upload["if"] == "always()" and upload["with"]["path"] == "failure-lab-histories/", name
    actions = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert actions.get("on", actions.get(True))["workflow_call"]["inputs"]["app-dir"]["type"] == "string"


def test_the_workflow_files_are_valid_yaml_with_the_steps_the_readme_promises():
    actions = workflow("github-actions.yml")
    uses = [s.get("uses", "").split("@")[0] for s in actions["steps"]]
    assert uses[:2] == ["actions/checkout", "actions/setup-python"]
    assert "actions/upload-artifact" in uses
    install = next(s for s in actions["steps"] if "pip install" in s.get("run", ""))
    assert "$GRADER_PACKAGE" in install["run"] and actions["env"]["GRADER_PACKAGE"]
    simulate, = grader_steps(actions)
    assert 'grader simulate "$APP_DIR" --format github --save-histories' in simulate["run"]
    upload = next(s for s in actions["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"  # the histories are kept when the grade fails too
    classroom = workflow("github-classroom.yml")
    step, = grader_steps(classroom)
    assert "--format classroom" in step["run"] and '>> "$GITHUB_OUTPUT"' in step["run"]
    assert step.get("continue-on-error") is True


@pytest.mark.slow
def test_the_actions_workflow_annotates_summarises_and_keeps_histories(workspace: Path, tmp_path: Path):
    job = workflow("github-actions.yml")
    env = step_env(job, tmp_path)
    step, = grader_steps(job)
    done = run_step(step["run"], workspace=workspace, env=env)
    assert done.returncode == 1, done.stderr  # a failed required check fails the job
    assert "Traceback" not in done.stderr

    lines = done.stdout.splitlines()
    commands = [parse_command(line) for line in lines if line.startswith("::")]
    assert len(commands) == len(lines) - 1 and lines[-1].startswith("Failure Lab: FAIL 9/10")
    errors = [c for c in commands if c[0] == "error"]
    assert len(errors) == 1
    kind, props, message = errors[0]
    assert props["title"] == "Compensation: The retry policy was limited as the challenge asks"
    assert "maximum_attempts 3" in message and "Hint:" in message
    assert not [c for c in commands if c[0] == "warning"]

    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("# earlier steps wrote this\n")  # appended, never overwritten
    assert "## Failure Lab: FAIL 9/10" in summary
    assert "Compensation: FAIL 9/10" in summary
    assert "| ❌ | The retry policy was limited as the challenge asks | 0/1 |" in summary

    # What upload-artifact would upload: the saved histories, which grade the same offline.
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    saved = workspace / upload["with"]["path"]
    assert sorted(p.name for p in saved.iterdir()) == ["compensation.json"]
    regrade = subprocess.run([sys.executable, "-m", "grader", "check", "--history", str(saved),
                              "--experiment", "compensation", "--format", "json"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert regrade.returncode == 1
    assert json.loads(regrade.stdout)["score"] == 9


@pytest.mark.slow
def test_the_classroom_workflow_hands_partial_credit_to_the_reporter(workspace: Path, tmp_path: Path):
    job = workflow("github-classroom.yml")
    env = step_env(job, tmp_path)
    step, = grader_steps(job)
    done = run_step(step["run"], workspace=workspace, env=env)
    assert done.returncode == 1, done.stderr  # continue-on-error lets the job go on to the reporter
    assert done.stdout == ""  # everything went to $GITHUB_OUTPUT; the summary table to stderr

    # The runner turns GITHUB_OUTPUT's key=value lines into the step's outputs.
    outputs = dict(line.split("=", 1) for line in Path(env["GITHUB_OUTPUT"]).read_text().splitlines())
    assert set(outputs) == {"result"}
    steps_outputs = {step["id"]: outputs}

    # The reporter step: its env expressions resolved from the step outputs, then read as the
    # reporter reads it: for each runner id, env[<ID>_RESULTS], base64, JSON.
    reporter = next(s for s in job["steps"] if "autograding-grading-reporter" in s.get("uses", ""))
    reporter_env = {}
    for key, value in reporter["env"].items():
        ref = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.(\w+) \}\}", value)
        reporter_env[key] = steps_outputs[ref[1]][ref[2]]
    total = max_total = 0
    for runner in reporter["with"]["runners"].split(","):
        results = json.loads(base64.b64decode(reporter_env[f"{runner.strip().upper()}_RESULTS"]))
        assert results["version"] == 1 and results["status"] == "fail"
        if results["max_score"]:
            max_total += results["max_score"]
            total += sum(t["score"] for t in results["tests"])
    assert (total, max_total) == (9, 10)  # partial credit, not 0


def test_check_appends_a_summary_with_web_ui_links_only_under_actions(tmp_path: Path):
    """The step summary (with a Web UI link for a run read from a server) and annotations from `check`."""
    from click.testing import CliRunner
    from markdown_it import MarkdownIt

    from grader import api
    from grader.cli import cli
    from grader.formats import github

    report = api.check_files([ROOT / "tests" / "goldens" / "retries-exhausted-refund.json"],
                             experiments=["compensation"])
    report.experiments[0].workflow.ui_link = "http://localhost:8233/namespaces/default/workflows/a b/r/history"
    summary = tmp_path / "summary.md"
    github.after_render(report, {"GITHUB_STEP_SUMMARY": str(summary)})
    html = MarkdownIt("commonmark").enable("table").render(summary.read_text())
    assert 'href="http://localhost:8233/namespaces/default/workflows/a%20b/r/history"' in html
    assert "<table>" in html

    github.after_render(report, {})  # no GITHUB_STEP_SUMMARY: nothing to write, nothing fails
    github.after_render(report, {"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "such.md")})  # warns only

    outside = CliRunner().invoke(cli, ["check", "--history", str(ROOT / "tests" / "goldens" / "cancel.json"),
                                       "--experiment", "compensation", "--format", "table"],
                                 env={"GITHUB_STEP_SUMMARY": str(tmp_path / "table.md")})
    assert outside.exit_code == 1 and not (tmp_path / "table.md").exists()  # only the github format writes it
    inside = CliRunner().invoke(cli, ["check", "--history", str(ROOT / "tests" / "goldens" / "cancel.json"),
                                      "--experiment", "compensation", "--format", "github"],
                                env={"GITHUB_STEP_SUMMARY": str(tmp_path / "github.md")})
    assert inside.exit_code == 1
    kinds = [parse_command(line)[0] for line in inside.stdout.splitlines() if line.startswith("::")]
    assert kinds == ["error"] * 4  # a cancel is no compensation: the required experiment is not attempted
    assert "## ➖ Compensation: NOT ATTEMPTED 0/10" in (tmp_path / "github.md").read_text()


@pytest.mark.slow
def test_an_app_that_cannot_start_still_annotates_and_summarises(tmp_path: Path, solution_dir: Path):
    """The app's folder from the `app-dir` input; it has no run_worker.py: an annotation and a summary say so."""
    repo = tmp_path / "repo"
    shutil.copytree(solution_dir, repo / "my-app", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "my-app" / "run_worker.py").unlink()
    job = workflow("github-actions.yml")
    env = step_env(job, tmp_path, inputs={"app-dir": "my-app"})
    step, = grader_steps(job)
    done = run_step(step["run"], workspace=repo, env=env)
    assert done.returncode == 2, done.stderr  # not 0, and not 1 (a failed grade): the app is broken
    assert "Traceback" not in done.stderr
    kind, props, message = parse_command(done.stdout.splitlines()[0])
    assert (kind, props["title"]) == ("error", "Input could not be graded")
    assert "my-app is not a transfer app (missing run_worker.py)" in message
    assert done.stdout.splitlines()[-1].startswith("Failure Lab: ERROR 0/")
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "## Failure Lab: ERROR 0/" in summary and "missing run_worker.py" in summary

    legacy = workflow("github-classroom.yml")
    env = step_env(legacy, tmp_path, inputs={"app-dir": "my-app"})
    step, = grader_steps(legacy)
    done = run_step(step["run"], workspace=repo, env=env)
    assert done.returncode == 2
    outputs = dict(line.split("=", 1) for line in Path(env["GITHUB_OUTPUT"]).read_text().splitlines())
    result = json.loads(base64.b64decode(outputs["result"]))
    assert result["status"] == "error" and sum(t["score"] for t in result["tests"]) == 0
