"""Submission bundles: a learner's runs exported from the server, with a manifest of hashes.

A bundle is a folder (or the same folder zipped) holding one history file per
run, each in the ``temporal workflow show --output json`` form, and a
``manifest.json``::

    {
      "format": "failure-lab-bundle/1",
      "grader_version": "0.1.0",
      "server_address": "localhost:7233",
      "namespace": "default",
      "learner": "ada",
      "exported_at": "2026-11-25T16:45:00Z",
      "histories": [
        {"file": "ada-transfer-1a2b3c4d_01a2....json", "workflow_id": "ada-transfer-1a2b3c4d",
         "run_id": "01a2...", "sha256": "..."}
      ]
    }

(its JSON Schema is ``grader/schemas/bundle-manifest.schema.json``).

What a manifest proves, and what it does not: the hashes show a file was not
changed *after* the export, and the workflow and run ids must agree with the
history's own. A learner can still edit a file and recompute its hash, since
nothing here is secret; that is what the rules of :mod:`grader.engine.integrity`
are for. :func:`read_bundle` turns a bundle into the same
:class:`grader.sources.loaded.Loaded` every other source gives, with a hash
mismatch as an integrity finding on that history.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from grader import __version__
from grader.errors import BadInputError, HistoryError
from grader.engine.history import load_json_text
from grader.engine.integrity import Finding
from grader.engine.learner import validate_learner_id
from grader.sources.loaded import Loaded

# hashlib and zipfile are imported where a bundle is really written or read: every
# `grader check --history` imports this module to recognise bundles, and those two
# were half its import time (benchmarks/bench_startup.py).

MANIFEST = "manifest.json"
FORMAT = "failure-lab-bundle/1"
#: Largest history file (or zip member) read from a bundle.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Most histories read from one bundle, and most bytes in all (the limits of a learner's upload).
MAX_LISTED = 1000
MAX_BUNDLE_BYTES = 128 * 1024 * 1024
#: Largest unpacked/packed ratio of a zipped history bigger than a megabyte (JSON packs about 10:1).
MAX_RATIO = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class BundleFile:
    """One history listed in a manifest."""

    #: Path of the history inside the bundle (forward slashes).
    file: str
    workflow_id: str
    run_id: str
    #: Hex sha256 of the file's bytes as exported.
    sha256: str


@dataclass
class Manifest:
    """What ``manifest.json`` says about the bundle."""

    grader_version: str
    server_address: str
    namespace: str
    learner: str
    #: ISO 8601 UTC time of the export.
    exported_at: str
    histories: list[BundleFile] = field(default_factory=list)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json``."""
        return {"format": self.format, "grader_version": self.grader_version,
                "server_address": self.server_address, "namespace": self.namespace, "learner": self.learner,
                "exported_at": self.exported_at, "histories": [vars(h) for h in self.histories]}


@lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json``."""
    from grader.resources import schema_path

    return json.loads(schema_path("bundle-manifest").read_text())


def history_file_name(workflow_id: str, run_id: str) -> str:
    """A portable file name for one run: ``<workflow id>_<run id>.json`` with odd characters replaced."""
    return f"{_UNSAFE.sub('_', workflow_id)[:150]}_{_UNSAFE.sub('_', run_id)}.json"


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --- writing ----------------------------------------------------------------


def history_bytes(doc: dict[str, Any]) -> bytes:
    """A history document as ``temporal workflow show --output json`` prints it."""
    return (json.dumps(doc, indent=2) + "\n").encode()


def write_bundle(runs: Sequence[tuple[str, str, dict[str, Any]]], destination: Path, *, server_address: str,
                 namespace: str, learner: str, as_zip: bool = False) -> Manifest:
    """Write ``runs`` (workflow id, run id, history document) as a bundle at ``destination``.

    ``destination`` must not exist: a folder is created (or a zip file, with
    ``as_zip``) and every file in it is created fresh, so nothing already
    there, a symlink included, is ever written through.
    """
    destination = Path(destination)
    if destination.exists() or destination.is_symlink():
        raise BadInputError(f"{destination} already exists: name a new folder or zip file for the bundle")
    manifest = Manifest(__version__, server_address, namespace, learner,
                        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    files: list[tuple[str, bytes]] = []
    used: set[str] = set()
    for workflow_id, run_id, doc in runs:
        name = history_file_name(workflow_id, run_id)
        if name in used:  # two ids that differ only in odd characters
            name = f"{name[:-5]}_{len(used)}.json"
        used.add(name)
        data = history_bytes(doc)
        files.append((name, data))
        manifest.histories.append(BundleFile(name, workflow_id, run_id, sha256_hex(data)))
    files.append((MANIFEST, (json.dumps(manifest.to_dict(), indent=2) + "\n").encode()))
    try:
        if as_zip:
            import zipfile

            with zipfile.ZipFile(destination, "x", compression=zipfile.ZIP_DEFLATED) as archive:
                for name, data in files:
                    archive.writestr(name, data)
        else:
            destination.mkdir(parents=True)
            for name, data in files:
                with open(destination / name, "xb") as out:
                    out.write(data)
    except OSError as err:
        raise BadInputError(f"{destination}: cannot write the bundle ({err.strerror or err})") from None
    return manifest


# --- reading ----------------------------------------------------------------


def is_bundle(path: Path) -> bool:
    """True for a folder holding ``manifest.json``, or a ``.zip`` file."""
    path = Path(path)
    if path.is_dir():
        return (path / MANIFEST).is_file()
    return path.suffix.lower() == ".zip"


def read_bundle(path: Path) -> Loaded:
    """Read a bundle (folder or zip) into a :class:`Loaded`: its histories, error lines and integrity findings.

    A manifest that is missing or invalid makes the whole bundle one error
    line. Each history whose bytes do not hash to the manifest's sha256, or
    whose workflow or run id disagrees with the manifest, gets a finding; a
    listed file that is missing is an error line; a history file in a
    folder bundle that the manifest does not list is read and flagged.
    """
    path = Path(path)
    loaded = Loaded(sources=[f"bundle {path}"])
    try:
        members = _Members(path)
    except BadInputError as err:
        loaded.errors.append(str(err))
        return loaded
    try:
        _read_members(members, loaded)
    finally:
        members.close()
    return loaded


def _read_members(members: "_Members", loaded: Loaded) -> None:
    path = members.path
    try:
        manifest = _parse_manifest(members.read(MANIFEST), f"{path}: {MANIFEST}")
    except (BadInputError, HistoryError) as err:
        loaded.errors.append(str(err))
        return
    listed: set[str] = set()
    repeated: dict[str, int] = {}
    for entry in manifest.histories:
        if entry.file in listed:
            # One file listed many times is read once: 3,000 listings of it cost 3,000 reads and a
            # comparison of every pair before.
            repeated[entry.file] = repeated.get(entry.file, 1) + 1
            continue
        listed.add(entry.file)
        if len(listed) > MAX_LISTED:
            loaded.errors.append(f"{path}: the manifest lists more than {MAX_LISTED} histories; the rest were not "
                                 "read: export the learner's runs again")
            break
        source = members.source(entry.file)
        try:
            data = members.read(entry.file)
        except BadInputError as err:
            loaded.errors.append(str(err))
            continue
        try:
            history = load_json_text(data, source=source, workflow_id=None, source_kind="bundle")
        except HistoryError as err:
            loaded.errors.append(str(err))
            continue
        findings = _check_entry(entry, data, history)
        # The manifest names the run as the server listed it: for a reset run that is its
        # own id, while the history's first event carries the parent's.
        if not any(f.code == "manifest-mismatch" for f in findings):
            history.run_id = entry.run_id
        loaded.histories.append(history)
        loaded.claims[source] = manifest.learner
        if findings:
            loaded.findings[source] = findings
    for name, times in repeated.items():
        # `grader export` lists each run once: a repeated listing was written by hand.
        loaded.findings.setdefault(members.source(name), []).append(Finding(
            "manifest-mismatch", f"the manifest lists {name} {times} times (it was read once): "
            "`grader export` lists each run once"))
    for name in members.unlisted_histories(listed)[:MAX_LISTED]:
        source = members.source(name)
        try:
            history = load_json_text(members.read(name), source=source, source_kind="bundle")
        except (BadInputError, HistoryError) as err:
            loaded.errors.append(str(err))
            continue
        loaded.histories.append(history)
        loaded.claims[source] = manifest.learner
        loaded.findings[source] = [Finding("bundle-unlisted", f"{name} is in the bundle but not in its "
                                           "manifest: it was added after the export")]


def _check_entry(entry: BundleFile, data: bytes, history: Any) -> list[Finding]:
    findings = []
    actual = sha256_hex(data)
    if actual != entry.sha256.lower():
        findings.append(Finding("bundle-hash", f"{entry.file} does not match the sha256 its manifest recorded at "
                                f"export ({entry.sha256[:12]}..., now {actual[:12]}...): it was changed since"))
    recorded_wid = history.events[0].attrs.get("workflowId")
    if isinstance(recorded_wid, str) and recorded_wid and recorded_wid != entry.workflow_id:
        findings.append(Finding("manifest-mismatch", f"the manifest lists {entry.file} as workflow "
                                f"{entry.workflow_id!r}, but the history's start event names {recorded_wid!r}", [1]))
    else:
        history.workflow_id = entry.workflow_id
    reset = any(e.type == "WorkflowTaskFailed" and str(e.attrs.get("cause", "")).endswith("RESET_WORKFLOW")
                for e in history.events)
    if history.run_id and history.run_id != entry.run_id and not reset:
        findings.append(Finding("manifest-mismatch", f"the manifest lists {entry.file} as run {entry.run_id}, "
                                f"but the history is run {history.run_id}", [1]))
    return findings


def _parse_manifest(data: bytes, where: str) -> Manifest:
    import jsonschema

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadInputError(f"{where} is not valid JSON ({err}): export the bundle again") from None
    try:
        jsonschema.validate(doc, manifest_schema())
    except jsonschema.ValidationError as err:
        at = "/".join(str(p) for p in err.absolute_path) or "the top level"
        raise BadInputError(f"{where}: {err.message} (at {at}): this is not a bundle manifest "
                            "`grader export` wrote") from None
    return Manifest(
        grader_version=doc["grader_version"], server_address=doc["server_address"], namespace=doc["namespace"],
        learner=doc["learner"], exported_at=doc["exported_at"], format=doc["format"],
        histories=[BundleFile(h["file"], h["workflow_id"], h["run_id"], h["sha256"]) for h in doc["histories"]],
    )


class _Members:
    """The files of a bundle, whether a folder or a zip, read by their path inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive: zipfile.ZipFile | None = None
        self.prefix = ""
        self.total = 0
        if path.is_dir():
            return
        import zipfile

        try:
            self.archive = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as err:
            raise BadInputError(f"{path}: not a readable zip file ({err}): export the bundle again") from None
        # Zipping a folder by hand often adds the folder itself as the top level.
        manifests = sorted((n for n in self.archive.namelist() if PurePosixPath(n).name == MANIFEST),
                           key=lambda n: n.count("/"))
        if not manifests:
            self.archive.close()
            raise BadInputError(f"{path}: the zip holds no {MANIFEST}: it is not a bundle from `grader export`")
        self.prefix = manifests[0][: -len(MANIFEST)]

    def close(self) -> None:
        """Close the zip file, if any."""
        if self.archive is not None:
            self.archive.close()

    def source(self, name: str) -> str:
        """How a member is named in reports: the file's path, or ``ZIP:member``."""
        return f"{self.path}:{self.prefix}{name}" if self.archive else str(self.path / name)

    def read(self, name: str) -> bytes:
        """A member's bytes; :class:`BadInputError` when it is missing, too big or escapes the bundle."""
        if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
            raise BadInputError(f"{self.path}: the manifest names {name!r}, outside the bundle")
        if self.archive is not None:
            try:
                info = self.archive.getinfo(self.prefix + name)
            except KeyError:
                raise BadInputError(f"{self.path}: the manifest lists {name} but the zip lacks it") from None
            if info.file_size > MAX_FILE_BYTES:
                raise BadInputError(f"{self.source(name)}: {info.file_size} bytes, more than a history can be")
            if info.file_size > 1024 * 1024 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise BadInputError(f"{self.source(name)}: packed more than {MAX_RATIO} to 1, which no history "
                                    "is: not read")
            self._take(info.file_size, name)
            with self.archive.open(info) as member:
                return member.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
        target = self.path / name
        if target.is_symlink():
            raise BadInputError(f"{target}: a symbolic link, not followed: export the bundle again")
        if not target.is_file():
            raise BadInputError(f"{self.path}: the manifest lists {name} but the folder lacks it")
        from grader.engine.history import read_history_bytes

        try:
            # Regular files only, opened without blocking: a FIFO named like a history cannot hang the read.
            data = read_history_bytes(target, max_bytes=MAX_FILE_BYTES)
        except HistoryError as err:
            raise BadInputError(str(err)) from None
        self._take(len(data), name)
        return data

    def _take(self, size: int, name: str) -> None:
        """Count ``size`` bytes against the bundle's total; :class:`BadInputError` past it."""
        self.total += size
        if self.total > MAX_BUNDLE_BYTES:
            raise BadInputError(f"{self.source(name)}: the bundle unpacks to more than {MAX_BUNDLE_BYTES} bytes: "
                                "not read")

    def unlisted_histories(self, listed: set[str]) -> list[str]:
        """History files present but not in the manifest."""
        if self.archive is not None:
            names = [n[len(self.prefix):] for n in self.archive.namelist()
                     if n.startswith(self.prefix) and n.lower().endswith(".json") and "/" not in n[len(self.prefix):]]
        else:
            names = [p.name for p in self.path.iterdir() if p.is_file() and p.suffix.lower() == ".json"]
        return sorted(n for n in names if n != MANIFEST and n not in listed)


# --- exporting from a server -------------------------------------------------


async def export_learner(destination: Path, *, learner: str, connection: Any = None, limit: int = 100,
                         as_zip: bool = False, client: Any = None,
                         on_cross_talk: Any = None) -> Manifest:
    """Read every MoneyTransfer run of ``learner`` (workflow ids ``<learner>-...``) and write a bundle.

    ``connection`` is where (settings, a target or a plain address; see
    :func:`grader.sources.connect.as_target`). Every call is bounded by the target's
    RPC timeout. Raises :class:`grader.errors.ServerUnavailableError` when no
    server answers, and :class:`BadInputError` when the learner has no runs.
    ``on_cross_talk(workflow_id, finding)`` hears of each exported run that
    shares a worker process with another learner's run on the same task
    queue (grader.engine.ownership): the learner learns it before handing in.
    """
    from grader.sources.connect import answered, as_target, connect, rpc_deadline
    from grader.sources.live import newest_runs, visibility_query

    query = visibility_query(validate_learner_id(learner, what="--learner"))
    destination = Path(destination)
    if destination.exists() or destination.is_symlink():  # say so before reading anything
        raise BadInputError(f"{destination} already exists: name a new folder or zip file for the bundle")
    target = as_target(connection)
    client = client or await connect(target)
    found = await newest_runs(client, query, limit, target, learner=learner)
    if not found:
        from grader.sources import live

        raise BadInputError(f"no {live.listed_label()} workflow of learner {learner!r} (ids "
                            f"'{learner}-...') in namespace {target.namespace!r} at {target.address}: "
                            "check the learner id")
    runs = []
    for execution in found:
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await answered(handle.fetch_history(rpc_timeout=rpc_deadline(target)), target)
        runs.append((execution.id, execution.run_id, json.loads(history.to_json())))
    manifest = write_bundle(runs, destination, server_address=target.address, namespace=target.namespace,
                            learner=learner, as_zip=as_zip)
    if on_cross_talk is not None:
        await _tell_cross_talk(client, target, runs, learner, on_cross_talk, limit=limit)
    return manifest


async def _tell_cross_talk(client: Any, target: Any, runs: Sequence[tuple[str, str, dict[str, Any]]],
                           learner: str, tell: Any, *, limit: int) -> None:
    """Compare the exported runs' workers with other learners' runs on their task queues; tell each finding."""
    from grader.engine.history import history_from_document
    from grader.engine.learner import learner_of
    from grader.engine.ownership import cross_talk, run_workers
    from grader.sources.live import queue_neighbours

    histories = [history_from_document(doc, source=f"export {wid}", workflow_id=wid) for wid, _, doc in runs]
    for history, (_, run_id, _) in zip(histories, runs):
        history.run_id = run_id
    others = await queue_neighbours(client, target, histories, learner, limit=min(limit, 50))
    if not others:
        return
    workers = [run_workers(h, learner) for h in histories]
    workers += [run_workers(h, learner_of(h.workflow_id) or h.workflow_id) for h in others]
    for history, found in zip(histories, cross_talk(workers)):
        for finding in found:
            tell(history.workflow_id, finding)
