"""Tests about the project itself: docs, CI wiring, rubrics, goldens."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.engine.rubric import load_rubric, rubric_schema

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _commands() -> list[str]:
    return cli.list_commands(None)


def test_readme_starts_with_the_two_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert "grader simulate" in blocks[0] and "pip install" in blocks[0]
    assert "pytest" in blocks[1] and "[test]" in blocks[1]


def test_ci_runs_exactly_the_readme_test_command():
    test_command = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)[1].strip()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_and_a_readme_line(name: str):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0 and len(result.output.splitlines()) > 3
    assert f"`grader {name}" in README


@pytest.mark.parametrize("path", sorted(p for p in (REPO / "rubrics").iterdir() if p.name != "schema.json"),
                         ids=lambda p: p.name)
def test_every_rubric_validates(path: Path):
    data = json.loads(path.read_text()) if path.suffix == ".json" else None
    if data is not None:
        jsonschema.validate(data, rubric_schema())
    rubric = load_rubric(path)
    assert rubric.experiments


def test_default_rubric_lists_experiments_in_tutorial_order():
    rubric = load_rubric()
    assert [e.id for e in rubric.experiments] == ["crash-recovery", "live-fix", "compensation",
                                                  "network-partition"]
    assert not rubric.experiment("network-partition").required
    assert rubric.experiment("compensation").params["allowed_maximum_attempts"] == [2]


def test_committed_files_hold_no_path_or_host_of_this_machine():
    host = socket.gethostname()
    offenders = []
    for path in REPO.rglob("*"):
        if not path.is_file() or any(p in path.parts for p in (".venv", ".git", "__pycache__")) \
                or ".egg-info" in str(path) or path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if str(REPO) in text or "/root/" in text or f"@{host}" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def _code_only(path: Path) -> str:
    """The program in a file without comments or docstrings (ast drops comments)."""
    import ast

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "solution").glob("*.py")))
def test_exercise_and_solution_run_the_same_code(name: str):
    """The two copies differ only in their teaching comments; behaviour must not drift apart."""
    assert _code_only(REPO / "exercise" / name) == _code_only(REPO / "solution" / name)


#: Identifiers that look like URLs but are never fetched: the JSON Schema dialect a schema
#: declares, and the XML namespaces an inline SVG must name.
_IDENTIFIERS = {"https://json-schema.org/draft/2020-12/schema", "http://www.w3.org/2000/svg",
                "http://www.w3.org/1999/xlink", "http://www.w3.org/2001/XMLSchema"}
#: Domains reserved for examples and tests (RFC 2606, RFC 6761): they can never lead anywhere.
_RESERVED = (".invalid", ".example", ".test", ".localhost")


def _leaves_the_machine(url: str) -> bool:
    """True for a URL a reader could follow to somewhere outside this repository and machine.

    Not links: a scheme alone (code that checks a prefix), a single-label host
    (`http://lab-ui:8080`, a made-up name in a test), this machine, a private
    network address (a class server in an example), a reserved domain, or one
    of the identifiers above.
    """
    import ipaddress
    from urllib.parse import urlsplit

    if url.rstrip("/") in {i.rstrip("/") for i in _IDENTIFIERS}:
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if "." not in host or host == "localhost" or host.endswith(_RESERVED):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a real domain name
    return not (address.is_private or address.is_loopback)


def _tracked_text_files() -> list[tuple[Path, str]]:
    """Every file git tracks that reads as text, with its text."""
    import subprocess

    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    found = []
    for name in listed.stdout.splitlines():
        path = REPO / name
        try:
            found.append((path, path.read_text()))
        except (UnicodeDecodeError, OSError):
            continue
    return found


def test_no_tracked_file_links_outside_the_repository():
    """A clone of this repository alone must be complete: no link leads anywhere else."""
    offenders = []
    for path, text in _tracked_text_files():
        rel = path.relative_to(REPO)
        for url in re.findall(r"https?://[^\s\"'`<>)\]]*", text):
            if "{" not in url and _leaves_the_machine(url):  # `{`: built from variables at run time
                offenders.append(f"{rel}: {url}")
        if "../" + "shared" in text:
            offenders.append(f"{rel}: a path into ../{'shared'}")
        if path.suffix == ".md":
            for target in re.findall(r"\]\(([^)\s#]+)", text):
                if re.match(r"[a-z]+:", target):
                    continue  # a URL, checked above
                resolved = (path.parent / target).resolve()
                if REPO not in resolved.parents and resolved != REPO:
                    offenders.append(f"{rel}: link {target} leaves the repository")
                elif not resolved.exists():
                    offenders.append(f"{rel}: link {target} points at nothing")
    assert offenders == []
