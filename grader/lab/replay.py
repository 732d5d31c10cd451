"""Replay histories through the reference workflow: would this project's code have written them?

Temporal's SDK can replay a recorded history through workflow code and
report when the code would have issued different commands (a
nondeterminism error). For a history of this project's Python
``MoneyTransfer`` that is a strong integrity test: a refund scheduled after a
deposit that succeeded, a deposit with no withdraw before it, a run that
completes without its activities, none of these replays.

Replay applies only to histories of the same shape as the reference app
(workflow type ``MoneyTransfer``, activities ``withdraw``, ``deposit``,
``refund``; payloads in the HTTP API's shorthand are put back in full form
first). Other SDKs' apps (TypeScript's
``moneyTransfer``, Go's ``Withdraw``...) are not replayed, and the reason is
given as a note, never as a finding.

The reference is ``solution/workflows.py``. Its one setting that changes the
commands it issues (``TRANSFER_PAUSE_SECONDS``, a timer between the
activities) is taken from the history itself, so a run recorded with the
pause replays with it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from grader import defaults
from grader.engine.history import History
from grader.engine.integrity import Finding, inspect_history

_ACTIVITIES = {defaults.ACTIVITY_WITHDRAW, defaults.ACTIVITY_DEPOSIT, defaults.ACTIVITY_REFUND}
#: Modules of the reference app the workflow imports by these plain names.
_APP_MODULES = ("shared", "activities", "banking_service", "workflows")
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass
class ReplayOutcome:
    """What replaying a list of histories found, one item per history in the same order.

    (By position, not by source: every history read live from one server has
    the same source.)
    """

    #: Findings per history: a nondeterminism error, or nothing.
    findings: list[list[Finding]] = field(default_factory=list)
    #: Notes per history: replayed, or why not.
    notes: list[list[str]] = field(default_factory=list)


#: Integrity findings that mean the event sequence itself is malformed.
_MALFORMED = frozenset({"event-ids", "bad-reference", "twice", "mismatched-pair", "second-start"})


def not_replayable(history: History, inspected: Sequence[Finding] | None = None) -> str | None:
    """Why ``history`` is not of the reference app's shape (a note for the report), or None when it is.

    ``inspected`` is :func:`inspect_history` of it, when the caller has it already.
    """
    if history.workflow_type != defaults.WORKFLOW_TYPE:
        return (f"not replayed: workflow type {history.workflow_type!r} is another app's "
                f"(replay applies to this project's Python {defaults.WORKFLOW_TYPE})")
    # The SDK's replayer panics (in its Rust core) on a malformed event sequence
    # (a gap in the ids, a reference to the wrong kind of event) and then never
    # answers. Such a history is already suspect by the rules, so it is not fed
    # to it; other suspect histories are (a forgery's nondeterminism is worth
    # saying). _run's timeout is the backstop for what these rules miss.
    if any(event.id != number for number, event in enumerate(history.events, 1)):
        return "not replayed: its event ids are not 1..N in order, which the SDK's replayer requires"
    own = inspected if inspected is not None else inspect_history(history)
    broken = sorted({f.code for f in own} & _MALFORMED)
    if broken:
        return f"not replayed: its event sequence is malformed ({', '.join(broken)}), which the SDK's replayer cannot take"
    names = [_name(e.attrs.get("activityType")) for e in history.events if e.type == "ActivityTaskScheduled"]
    if not names:
        return "not replayed: the run scheduled no activity, so it is not the reference app's shape"
    for name in names:
        if name not in _ACTIVITIES:
            return f"not replayed: activity {name!r} is not one of the reference app's"
    return None


def _name(value: Any) -> Any:
    return value.get("name") if isinstance(value, dict) else None


#: What a clean replay notes on a history.
DETERMINISTIC = "replayed through the reference MoneyTransfer: deterministic"


def replay_histories(histories: Sequence[History], *, app_dir: Path | None = None,
                     remember: bool = True, inspected: Sequence[list[Finding]] | None = None) -> ReplayOutcome:
    """Replay every history of the reference app's shape; the others get a note saying why not.

    With ``remember`` (the default), a history whose :func:`replay_key`
    equals that of a history this process already replayed cleanly gets the
    same verdict without a replay: in a class, thousands of honest runs share
    a handful of shapes, and the replay of a shape is what costs milliseconds.
    Only clean verdicts are remembered, so a history that is not replayed
    clean is always replayed for itself. ``inspected`` is
    :func:`~grader.engine.integrity.inspect_history` of each history, when the caller has it.
    """
    outcome = ReplayOutcome([[] for _ in histories], [[] for _ in histories])
    keys: dict[int, Any] = {}
    todo: list[int] = []
    # Within one call, a shape is replayed once: the copies of a shape wait for its first history's
    # verdict (2,000 copies of one run handed in cost one replay, not 2,000).
    waiting: dict[Any, list[int]] = {}
    for index, history in enumerate(histories):
        why_not = not_replayable(history, inspected[index] if inspected is not None else None)
        if why_not:
            outcome.notes[index].append(why_not)
            continue
        if remember:
            key = keys[index] = replay_key(history)
            if key in _clean_shapes:
                outcome.notes[index].append(DETERMINISTIC)
                continue
            if _deferred is not None and type(key) is tuple and _deferred.rely(key, history):
                # A batch's grading process: the shape is confirmed elsewhere (see Deferred).
                outcome.notes[index].append(DETERMINISTIC)
                continue
            if key in waiting:
                waiting[key].append(index)
                continue
            waiting[key] = []
        todo.append(index)
    if not todo:
        return outcome
    app_dir = app_dir or defaults.repo_root() / "solution"
    if not (app_dir / "workflows.py").is_file():
        for index in todo + [i for copies in waiting.values() for i in copies]:
            outcome.notes[index].append(f"not replayed: the reference workflow is not at {app_dir}")
        return outcome
    with _reference_app(app_dir) as (workflow_class, module):
        _replay_all(histories, todo, workflow_class, module, outcome, keys)
        # Copies whose shape did not replay clean are replayed for themselves, as without remembering.
        again = []
        for key, copies in waiting.items():
            (again if key not in _clean_shapes else []).extend(copies)
            if key in _clean_shapes:
                for index in copies:
                    outcome.notes[index].append(DETERMINISTIC)
        if again:
            _replay_all(histories, again, workflow_class, module, outcome, keys)
    return outcome


def _replay_all(histories: Sequence[History], indexes: list[int], workflow_class: Any, module: Any,
                outcome: ReplayOutcome, keys: dict[int, Any]) -> None:
    """Replay ``histories[i]`` for each of ``indexes``, grouped by the pause each expects, into ``outcome``."""
    groups: dict[float, list[int]] = {}
    for index in indexes:
        groups.setdefault(_pause_of(histories[index]), []).append(index)
    for pause, members in groups.items():
        # The workflow module read the setting when it was imported; it runs unsandboxed
        # here (below), so its own global is the one the code sees.
        module.TRANSFER_PAUSE_SECONDS = pause
        try:
            with _quiet_sdk_logs():
                replayed = _run(_replay(workflow_class, [histories[i] for i in members]),
                                timeout=REPLAY_TIMEOUT_SECONDS + REPLAY_SECONDS_PER_HISTORY * len(members))
        except Exception as err:  # noqa: BLE001 - replay is a second opinion; its failure must not stop grading
            replayed = [(None, f"not replayed: the SDK's replayer failed ({_first_line(err)})")] * len(members)
        for index, (finding, note) in zip(members, replayed):
            if finding is not None:
                outcome.findings[index].append(finding)
            if note is not None:
                outcome.notes[index].append(note)
            if note == DETERMINISTIC and index in keys:
                _remember(keys[index])


# --- remembering clean shapes ----------------------------------------------------

#: Shapes (see replay_key) this process replayed cleanly, oldest first.
_clean_shapes: dict[Any, None] = {}
#: How many shapes are remembered; a class has a handful, a fuzzer many.
MAX_REMEMBERED = 4096


def _remember(key: Any) -> None:
    _clean_shapes[key] = None
    if len(_clean_shapes) > MAX_REMEMBERED:
        del _clean_shapes[next(iter(_clean_shapes))]


def forget_replays() -> None:
    """Forget every remembered clean shape (for measurements and tests)."""
    _clean_shapes.clear()


# --- shapes confirmed by another process -------------------------------------------


class Deferred:
    """The shapes a grading process took as clean without replaying them, for one replayer to confirm.

    A batch of files grades in several processes, and a class has a handful
    of shapes. Rather than have every grading process import the SDK and
    replay each shape again, a process given a ``Deferred`` (see
    :func:`defer_replays`) notes a new shape's history as replayed clean
    and records it here. The batch hands each shape to one replayer
    (:func:`confirm_shape`) and keeps a learner's grade only once every
    shape it relied on is confirmed; a learner who relied on a shape that
    did not replay clean is graded again with a real replay.

    A history with no shareable shape is replayed where it is graded, as
    before, and so is every new shape past the first ``most``: a class whose
    every learner has a shape of their own (apps edited far from the
    exercise) then replays in every grading process at once rather than
    queue behind one replayer.
    """

    def __init__(self, most: int = 32) -> None:
        #: How many shapes this process defers; past them, it replays new shapes itself.
        self.most = most
        #: Shape -> its number in this process.
        self.numbers: dict[Any, int] = {}
        #: Shapes first relied on since the last :meth:`take_new`: number -> (shape, a history of it).
        self.new: dict[int, tuple[Any, History]] = {}
        #: Numbers of the shapes relied on since the last :meth:`take_used`.
        self.used: list[int] = []

    def rely(self, key: Any, history: History) -> bool:
        """Take a history of shape ``key`` as replaying clean; False (nothing noted) when this process has
        deferred ``most`` other shapes already and is to replay this one itself."""
        number = self.numbers.get(key)
        if number is None:
            if len(self.numbers) >= self.most:
                return False
            number = self.numbers[key] = len(self.numbers)
            self.new[number] = (key, history)
        self.used.append(number)
        return True

    def take_used(self) -> list[int]:
        """The numbers of the shapes relied on since the last call (one learner's, in a batch)."""
        used, self.used = sorted(set(self.used)), []
        return used

    def take_new(self) -> dict[int, tuple[Any, History]]:
        """The shapes first relied on since the last call, each with one history of it to replay."""
        new, self.new = self.new, {}
        return new


#: In a batch's grading process: where new shapes go instead of the replayer (None: replay here).
_deferred: Deferred | None = None


def defer_replays(deferred: Deferred | None) -> None:
    """From now on, in this process, note new shapes in ``deferred`` rather than replay them (None: replay)."""
    global _deferred
    _deferred = deferred


def confirm_shape(history: History) -> bool:
    """Replay one history of a shape a grading process deferred: True when it replays clean.

    Run in the batch's replayer process. Any other verdict (a finding, a
    replay that stopped early or failed) is False, and the learners who
    relied on the shape are graded again, each history replayed for itself.
    """
    outcome = replay_histories([history], remember=False)
    return not outcome.findings[0] and outcome.notes[0] == [DETERMINISTIC]


def replay_key(history: History) -> Any:
    """The shape of a history as far as a replay through the reference workflow can tell.

    Two histories with one shape replay alike: the same event types in the
    same order, the same references between events, activity types and ids,
    timers (the pause setting is the timer's duration), SDK flags, failure
    kinds, and payloads of the same JSON structure (keys and value types).
    What differs between honest runs of one scenario (times, worker
    identities, task queues, attempt numbers, amounts, messages) is left
    out: neither the reference code's commands nor the replayer's comparison
    depend on it (a payload's values reach only the result text).
    """
    try:
        return _shape(history)
    except RecursionError:
        # A value nested deeper than repr and hash can walk (a hand-made chain of failure causes):
        # such a history has no shape to share, and is replayed on its own.
        return object()


def _shape(history: History) -> Any:
    """The work of :func:`replay_key`, which may recurse as deep as a value nests."""
    shorthand = any(note.startswith("payloads in shorthand") for note in history.notes)
    shape: list[Any] = [shorthand]
    get = dict.get
    for event in history.events:
        a = event.attrs
        # Plain values go in as they are; an odd one (a list where an id goes, in a hand-edited file)
        # makes the shape unhashable, and the careful spelling below takes over.
        refs = (get(a, "scheduledEventId"), get(a, "startedEventId"), get(a, "workflowTaskCompletedEventId"),
                get(a, "initiatedEventId"))
        kind = event.type
        if kind in _PLAIN_EVENTS:
            shape.append((kind, refs))
            continue
        shape.append((kind, refs, _detail(kind, a)))
    key = tuple(shape)
    try:
        hash(key)
    except TypeError:
        key = tuple([shorthand, *((e.type, _atoms(get(e.attrs, "scheduledEventId"), get(e.attrs, "startedEventId"),
                                                     get(e.attrs, "workflowTaskCompletedEventId"),
                                                     get(e.attrs, "initiatedEventId")), _detail(e.type, e.attrs, True))
                                   for e in history.events)])
    return key


#: Event types whose attributes a replay does not read beyond their references.
_PLAIN_EVENTS = frozenset({"WorkflowTaskScheduled", "WorkflowTaskStarted", "ActivityTaskStarted",
                           "WorkflowTaskTimedOut"})


def _detail(kind: str, a: dict, careful: bool = False) -> Any:
    """What of one event's attributes a replay depends on (``careful``: odd values turned into text)."""
    atoms = _atoms if careful else _plain
    if kind == "ActivityTaskScheduled":
        return (*atoms(a.get("activityId"), _name(a.get("activityType"))), _payloads_shape(a.get("input")))
    if kind in ("TimerStarted", "TimerFired", "TimerCanceled"):
        return atoms(a.get("timerId"), a.get("startToFireTimeout"))
    if kind == "WorkflowTaskCompleted":
        meta = a.get("sdkMetadata")
        return repr(meta) if meta else None
    if kind in ("ActivityTaskCompleted", "WorkflowExecutionCompleted"):
        return _payloads_shape(a.get("result"))
    if kind == "WorkflowExecutionStarted":
        return (*atoms(_name(a.get("workflowType"))), _payloads_shape(a.get("input")))
    if kind in ("ActivityTaskFailed", "WorkflowExecutionFailed", "WorkflowTaskFailed"):
        return (*atoms(a.get("retryState"), a.get("cause")), _failure_shape(a.get("failure")))
    if kind == "ActivityTaskTimedOut":
        return (*atoms(a.get("retryState")), _failure_shape(a.get("failure")))
    return None


def _plain(*values: Any) -> tuple:
    return values


def _atoms(*values: Any) -> tuple:
    """The values as they are when plain, else their text (a fuzzed history puts a list where an id goes)."""
    return tuple(v if v is None or isinstance(v, (str, int, float)) else repr(v) for v in values)


def _failure_shape(failure: Any) -> Any:
    """The kind of a failure (its info fields, type, non-retryable) and its causes', without the text."""
    if not isinstance(failure, dict):
        return repr(failure)
    info = tuple(sorted(k for k in failure if k.endswith("Info")))
    app = failure.get("applicationFailureInfo")
    app_kind = _atoms(app.get("type"), app.get("nonRetryable")) if isinstance(app, dict) else repr(app)
    # The cause by its kind too: its text, stack trace and the worker identity in its
    # activityFailureInfo differ from learner to learner and no replay reads them.
    return (info, app_kind, _failure_shape(failure["cause"]) if "cause" in failure else None)


def _payloads_shape(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("payloads"), list):
        return tuple(_payload_shape(p) if isinstance(p, dict) else repr(p) for p in value["payloads"])
    if value is None:
        return None
    try:
        return ("plain", _value_shape(value))
    except ValueError:
        return repr(value)


def _payload_shape(payload: dict) -> Any:
    """A payload's encoding and, for JSON, the structure of its value; other encodings whole."""
    metadata = payload.get("metadata")
    encoding = metadata.get("encoding") if isinstance(metadata, dict) else None
    if encoding != _JSON_PLAIN or len(metadata) != 1:
        return repr(payload)
    data = payload.get("data", "")
    if not isinstance(data, str):
        return repr(payload)
    shape = _json_shapes.get(data)
    if shape is None:
        try:
            shape = ("json", _value_shape(_parse_json(binascii.a2b_base64(data, strict_mode=True))))
        except (ValueError, TypeError):
            return repr(payload)
        # The same text recurs within a run (its input is copied into each activity); across a class
        # the texts differ, so the memory is emptied rather than left full of other learners' inputs.
        if len(_json_shapes) >= 10_000:
            _json_shapes.clear()
        _json_shapes[data] = shape
    return shape


_json_shapes: dict[str, Any] = {}


def _parse_json(raw: bytes) -> Any:
    try:
        import orjson
    except ImportError:
        return json.loads(raw)
    return orjson.loads(raw)


def _value_shape(value: Any, depth: int = 0) -> Any:
    if depth > 16:  # not a PaymentDetails: such a payload is its own shape (the caller keeps it whole)
        raise ValueError("nested too deep for a shape")
    if isinstance(value, dict):
        return tuple((k, _value_shape(v, depth + 1)) for k, v in sorted(value.items()))
    if isinstance(value, list):
        return tuple(_value_shape(v, depth + 1) for v in value)
    return type(value).__name__


def _pause_of(history: History) -> float:
    """The timer between withdraw and deposit the run was recorded with (0 when none)."""
    for event in history.events:
        if event.type == "TimerStarted":
            value = event.attrs.get("startToFireTimeout")
            try:
                seconds = float(value[:-1]) if isinstance(value, str) and value.endswith("s") else 0.0
            except ValueError:
                seconds = 0.0
            return seconds if 0 < seconds < 10 * 365 * 86400 else 0.0
    return 0.0


#: Longest a replay pass may take. The SDK's replayer panics in its Rust core
#: on some malformed histories (the fuzzer found shuffled and retyped events)
#: and then never answers; a learner's check must not hang on it.
REPLAY_TIMEOUT_SECONDS = 10.0
#: ... plus this much per history in the pass (a replay takes about 4 ms).
REPLAY_SECONDS_PER_HISTORY = 0.1


def _run(coro: Any, *, timeout: float | None = None) -> Any:
    """Run ``coro`` to its end on a daemon thread of its own, or raise TimeoutError after ``timeout``.

    A daemon thread works whether or not the caller is inside an event loop (a
    test, simulate), and can be abandoned when the replayer hangs without
    keeping the process alive.
    """
    from grader.background import run_sync

    limit = REPLAY_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        return run_sync(coro, limit)
    except TimeoutError:
        raise TimeoutError(f"no answer within {limit:.0f} s") from None


async def _replay(workflow_class: type, histories: list[History]) -> list[tuple[Finding | None, str | None]]:
    """(finding, note) per history: a finding for a history the code would not have written."""
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
    from temporalio.workflow import NondeterminismError

    # Unsandboxed: the sandbox re-imports the workflow's modules for every run, which
    # costs most of a replay; the reference code is ours and known to be deterministic.
    replayer = Replayer(workflows=[workflow_class], runtime=_quiet_runtime(),
                        workflow_runner=UnsandboxedWorkflowRunner())
    results: list[tuple[Finding | None, str | None]] = [(None, None)] * len(histories)
    readable: list[tuple[int, Any]] = []
    for index, history in enumerate(histories):
        try:
            readable.append((index, WorkflowHistory.from_json(history.workflow_id,
                                                              {"events": _raw_events(history)})))
        except Exception as err:  # noqa: BLE001 - what the SDK cannot read is not replayed, and says so
            results[index] = (None, f"not replayed: the SDK cannot read this history ({_first_line(err)})")
    # One worker replays many histories; run ids must be unique within one pass.
    while readable:
        batch, seen, rest = [], set(), []
        for item in readable:
            (rest if item[1].run_id in seen else batch).append(item)
            seen.add(item[1].run_id)
        readable = rest

        async def feed(items=batch):
            for _, sdk_history in items:
                yield sdk_history

        async with replayer.workflow_replay_iterator(feed()) as replayed:
            position = 0
            async for result in replayed:
                index = batch[position][0]
                position += 1
                failure = result.replay_failure
                if failure is None:
                    results[index] = (None, DETERMINISTIC)
                elif isinstance(failure, NondeterminismError) or "Nondeterminism" in str(failure):
                    results[index] = (Finding(
                        "replay-nondeterminism", "replayed through the reference MoneyTransfer, the history "
                        f"does not match what the code does: {_first_line(failure)}", _event_ids(failure)), None)
                else:
                    # Only a nondeterminism error says the history and the code disagree; anything
                    # else (a payload the converter cannot decode, an export the SDK reads
                    # differently) says replay could not judge, which is not evidence of an edit.
                    results[index] = (None, f"not judged by replay: it stopped early ({_first_line(failure)})")
    return results


_runtime: Any = None


def _quiet_runtime() -> Any:
    """An SDK runtime that logs nothing: a failed replay is a finding in the report, not a warning on stderr."""
    global _runtime
    if _runtime is None:
        from temporalio.runtime import Runtime, TelemetryConfig

        _runtime = Runtime(telemetry=TelemetryConfig(logging=None, metrics=None))
    return _runtime


_EVENT_ID = re.compile(r"(?:HistoryEvent\(id: |event_id: )(\d+)")


def _event_ids(err: BaseException) -> list[int]:
    """The event the SDK names in its error, if any."""
    return sorted({int(m) for m in _EVENT_ID.findall(str(err))})


_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def _first_line(err: BaseException) -> str:
    """The useful sentence of an SDK error (the core wraps it in a debug dump of its failure)."""
    text = str(err)
    inner = _CORE_MESSAGE.search(text)
    if inner:
        text = inner.group(1).replace('\\"', '"')
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else type(err).__name__


def _raw_events(history: History) -> list[dict[str, Any]]:
    """The events back in proto JSON form (full enum names, full payloads), as the SDK's reader expects."""
    shorthand = any(note.startswith("payloads in shorthand") for note in history.notes)
    events = []
    for event in history.events:
        enum = "EVENT_TYPE_" + _SNAKE.sub("_", event.type).upper()
        key = event.type[0].lower() + event.type[1:] + "EventAttributes"
        attrs = _full_payloads(event.attrs) if shorthand else event.attrs
        events.append({"eventId": str(event.id), "eventTime": event.time, "eventType": enum, key: attrs})
    return events


_PAYLOAD_KEYS = frozenset({"input", "result", "details", "heartbeatDetails", "lastHeartbeatDetails"})
_JSON_PLAIN = base64.b64encode(b"json/plain").decode()


def _full_payloads(node: Any, key: str = "") -> Any:
    """The HTTP API's shorthand payloads (plain JSON values) turned back into ``{"payloads": [...]}``."""
    if key in _PAYLOAD_KEYS and isinstance(node, list):
        return {"payloads": [{"metadata": {"encoding": _JSON_PLAIN},
                              "data": base64.b64encode(json.dumps(value).encode()).decode()} for value in node]}
    if isinstance(node, dict):
        return {k: _full_payloads(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_full_payloads(v) for v in node]
    return node


@contextlib.contextmanager
def _quiet_sdk_logs() -> Iterator[None]:
    """Keep the SDK's Python-side warnings about failed replays off stderr while replaying."""
    import logging

    logger = logging.getLogger("temporalio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


_loaded_apps: dict[Path, tuple[type, Any]] = {}


@contextlib.contextmanager
def _reference_app(app_dir: Path) -> Iterator[tuple[type, Any]]:
    """The reference app's workflow class and its module, imported once per process.

    The app imports its own modules by plain names (``shared``, ``activities``);
    they are imported with the app folder on ``sys.path`` and then taken out of
    ``sys.modules`` again, so nothing else in the process sees them. The class
    keeps working: it holds its module's globals. The caller sets the module's
    ``TRANSFER_PAUSE_SECONDS``.
    """
    key = Path(app_dir).resolve()
    if key not in _loaded_apps:
        saved = {name: sys.modules.pop(name) for name in _APP_MODULES if name in sys.modules}
        sys.path.insert(0, str(key))
        try:
            import importlib

            workflows = importlib.import_module("workflows")
            _loaded_apps[key] = (workflows.MoneyTransfer, workflows)
        finally:
            sys.path.remove(str(key))
            for name in _APP_MODULES:
                sys.modules.pop(name, None)
            sys.modules.update(saved)
    yield _loaded_apps[key]
