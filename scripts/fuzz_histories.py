"""A seeded mutation fuzzer over the golden histories.

It takes the real histories in ``tests/goldens/``, breaks each copy in a few
random ways (wrong types, extreme numbers, missing keys, shuffled or cut
events, deep nesting, lone surrogates, truncated bytes, ...) and feeds the
result to the grader. The grader must either grade the file or refuse it
with a :class:`grader.errors.GraderError`; any other exception is a bug, and
so is a JSON report that is not strict JSON or breaks the report schema.

As a library (what ``tests/test_fuzz.py`` uses)::

    from scripts.fuzz_histories import Fuzzer, check_case
    fuzzer = Fuzzer.from_goldens(seed=7)
    for case in fuzzer.cases(1000):
        problem = check_case(case.data, source=case.name)   # None when all is well

From the command line (prints a summary by cause, exit 1 when anything failed)::

    .venv/bin/python scripts/fuzz_histories.py --cases 20000 --seed 1
    .venv/bin/python scripts/fuzz_histories.py --cases 500 --save /tmp/fuzz-failures

Every case is reproducible from the seed and its index alone
(``Fuzzer.case(index)``), so a failure found at scale can be replayed.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import random
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parent.parent
GOLDENS = REPO / "tests" / "goldens"

# Values spliced into the JSON text verbatim: things ``json.dumps`` cannot
# write but a hand-edited file can hold.
RAW_VALUES = [
    "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1e308", "-0", "0.5",
    "18446744073709551616", "9223372036854775808", "-9223372036854775809", "4294967296",
    '"\\ud800"', '"x\\udfff"', '"\\u0000"',
]
#: Ordinary JSON values of every type, for replacing a field's value.
PLAIN_VALUES: list[Any] = [
    5, 0, -1, 1, 2**31, 2**63 - 1, -(2**63), 1.5, -0.0, True, False, None, "", "x", "5", "-3",
    "0x10", " 7", "5.0", "1e3", "withdraw", "deposit", "refund", "MoneyTransfer",
    "2026-11-24T21:48:27Z", "2026-11-24T21:48:27", "not a time", "99999-01-01T00:00:00Z",
    "5s", "-5s", "1e999s", "nans", "0.000000001s", "315576000001s",
    [], {}, ["w"], [1, 2], {"name": 5}, {"name": ["x"]}, {"kind": 3}, {"payloads": 7},
    {"payloads": [{"metadata": 5}]}, {"payloads": [{"metadata": {"encoding": 5}, "data": 5}]},
    {"message": 5}, {"cause": "x"}, {"applicationFailureInfo": "x"},
    {"timeoutFailureInfo": {"timeoutType": 3}}, "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
    "EVENT_TYPE_ACTIVITY_TASK_STARTED", "ActivityTaskCompleted", "EVENT_TYPE_UNSPECIFIED",
]
#: Keys the grader reads, so mutations hit them more often than chance would.
HOT_KEYS = [
    "eventTime", "eventId", "eventType", "taskQueue", "identity", "activityType", "attempt",
    "scheduledEventId", "startedEventId", "workflowTaskCompletedEventId", "lastFailure", "failure",
    "message", "cause", "workflowId", "originalExecutionRunId", "workflowType", "retryPolicy",
    "maximumAttempts", "backoffCoefficient", "initialInterval", "maximumInterval",
    "startToCloseTimeout", "scheduleToCloseTimeout", "heartbeatTimeout", "input", "result",
    "payloads", "metadata", "data", "encoding", "name", "kind", "retryState", "timeoutType",
    "applicationFailureInfo", "timeoutFailureInfo", "nonRetryable", "type", "activityId",
    "nonRetryableErrorTypes", "reason",
]


@dataclass
class Case:
    """One fuzzed history: its bytes, a name, and the mutations that made it."""

    #: Index within the fuzzer's sequence; ``Fuzzer.case(index)`` rebuilds it.
    index: int
    #: A file name for it, e.g. ``fuzz-00042-live-fix.json``.
    name: str
    data: bytes
    #: The operators applied, in order.
    operators: list[str]


class _Raw:
    """A value written into the JSON text as is (see :data:`RAW_VALUES`)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(doc: Any) -> bytes:
    """Serialise ``doc``, writing every :class:`_Raw` value verbatim."""
    raws: list[str] = []

    def default(value: Any) -> Any:
        if isinstance(value, _Raw):
            raws.append(value.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        raise TypeError(type(value).__name__)

    text = json.dumps(doc, default=default, separators=(",", ":"))
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{index}\x00"), raw, 1)
    return text.encode("utf-8", "surrogatepass")


# --- walking a document -----------------------------------------------------


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in ``doc``, i.e. every place a value can be replaced."""
    found: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        for key, value in items:
            found.append((node, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return found


def _events(doc: Any) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        return doc["events"]
    return []


def _pick_slot(doc: Any, rng: random.Random, *, hot: bool) -> tuple[Any, Any] | None:
    slots = _slots(doc)
    if hot:
        hot_slots = [s for s in slots if s[1] in HOT_KEYS]
        slots = hot_slots or slots
    return rng.choice(slots) if slots else None


def _odd_value(rng: random.Random) -> Any:
    if rng.random() < 0.3:
        return _Raw(rng.choice(RAW_VALUES))
    return copy.deepcopy(rng.choice(PLAIN_VALUES))  # a fresh copy: later edits stay local


# --- mutation operators: each changes ``doc`` in place (or returns a new one) ----


def op_replace_hot(doc: Any, rng: random.Random) -> Any:
    """A field the grader reads gets a value of another type or an extreme one."""
    slot = _pick_slot(doc, rng, hot=True)
    if slot:
        slot[0][slot[1]] = _odd_value(rng)
    return doc


def op_replace_any(doc: Any, rng: random.Random) -> Any:
    """Any value anywhere gets an odd value."""
    slot = _pick_slot(doc, rng, hot=False)
    if slot:
        slot[0][slot[1]] = _odd_value(rng)
    return doc


def op_delete_key(doc: Any, rng: random.Random) -> Any:
    """A key the grader reads disappears."""
    slot = _pick_slot(doc, rng, hot=True)
    if slot and isinstance(slot[0], dict):
        del slot[0][slot[1]]
    return doc


def op_number_extreme(doc: Any, rng: random.Random) -> Any:
    """An id, attempt or count becomes an extreme or negative number, as a number or a string."""
    ints = [s for s in _slots(doc) if s[1] in ("eventId", "scheduledEventId", "startedEventId", "attempt",
                                               "workflowTaskCompletedEventId", "maximumAttempts")]
    if ints:
        container, key = rng.choice(ints)
        value = rng.choice([0, -1, -7, 2**31, 2**63, 2**64, 10**30, "-4", "0", "99999999999999999999",
                            "abc", 3.7, _Raw("1e999"), _Raw("1e308"), _Raw("-0.0")])
        container[key] = value
    return doc


def op_drop_event(doc: Any, rng: random.Random) -> Any:
    """One event goes missing (later events then refer to nothing)."""
    events = _events(doc)
    if len(events) > 1:
        del events[rng.randrange(len(events))]
    return doc


def op_duplicate_event(doc: Any, rng: random.Random) -> Any:
    """One event appears twice."""
    events = _events(doc)
    if events:
        i = rng.randrange(len(events))
        events.insert(rng.randrange(len(events) + 1), copy.deepcopy(events[i]))
    return doc


def op_shuffle_events(doc: Any, rng: random.Random) -> Any:
    """Events out of order (a few swaps, or all of them)."""
    events = _events(doc)
    if len(events) > 1:
        if rng.random() < 0.3:
            rng.shuffle(events)
        else:
            i, j = rng.randrange(len(events)), rng.randrange(len(events))
            events[i], events[j] = events[j], events[i]
    return doc


def op_cut_events(doc: Any, rng: random.Random) -> Any:
    """The history stops early or starts late."""
    events = _events(doc)
    if len(events) > 1:
        cut = rng.randrange(len(events))
        if rng.random() < 0.5:
            del events[cut:]
        else:
            del events[:cut]
    return doc


def op_retype_event(doc: Any, rng: random.Random) -> Any:
    """An event's type changes, so its attributes key no longer matches."""
    events = _events(doc)
    if events:
        event = rng.choice(events)
        if isinstance(event, dict):
            other = rng.choice(events)
            event["eventType"] = other.get("eventType") if isinstance(other, dict) else "x"
    return doc


def op_swap_attributes(doc: Any, rng: random.Random) -> Any:
    """An event takes the type and attributes of another while keeping its id."""
    events = [e for e in _events(doc) if isinstance(e, dict)]
    if len(events) > 1:
        a, b = rng.sample(events, 2)
        for key in [k for k in a if k.endswith("EventAttributes")]:
            del a[key]
        a.update({k: copy.deepcopy(v) for k, v in b.items() if k.endswith("EventAttributes")})
        a["eventType"] = b.get("eventType")
    return doc


def op_deep_nest(doc: Any, rng: random.Random) -> Any:
    """A value is buried under hundreds or thousands of list levels."""
    slot = _pick_slot(doc, rng, hot=rng.random() < 0.5)
    if slot:
        depth = rng.choice([50, 500, 1000, 1030, 3000])
        slot[0][slot[1]] = _Raw("[" * depth + "1" + "]" * depth)
    return doc


def op_lone_surrogate(doc: Any, rng: random.Random) -> Any:
    """A string (a workflow id, an identity, ...) gains half a UTF-16 pair."""
    strings = [s for s in _slots(doc) if isinstance(s[0][s[1]], str)]
    if strings:
        container, key = rng.choice(strings)
        value = container[key]
        container[key] = _Raw(json.dumps(value)[:-1] + rng.choice(["\\ud800", "\\udc00", "\\udbff"]) + '"')
    return doc


def op_payload(doc: Any, rng: random.Random) -> Any:
    """A payload's metadata or data is broken, or decodes to odd JSON."""
    payloads = [s for s in _slots(doc) if s[1] == "data" and isinstance(s[0], dict)]
    if payloads:
        container, key = rng.choice(payloads)
        choice = rng.randrange(6)
        if choice == 0:
            container[key] = "%%% not base64"
        elif choice == 1:
            inner = rng.choice(["NaN", "1e999", "[" * 1100 + "]" * 1100, '"\\ud800"', "{", "[" * 900 + "]" * 900,
                                '{"amount": 1e999}', '{"source_account": 5, "amount": "x"}', "18446744073709551616"])
            container[key] = base64.b64encode(inner.encode()).decode()
        elif choice == 2:
            container["metadata"] = rng.choice([5, [], {"encoding": 5}, {"encoding": "json/plain"}, None])
        elif choice == 3:
            container[key] = rng.choice([5, [], {"a": 1}, None])
        elif choice == 4:
            container["metadata"] = {"encoding": "json/plain"}
            container[key] = rng.choice([{"amount": 250}, [1, 2], "not json", "[" * 1200 + "]" * 1200])
        else:
            del container[key]
    return doc


def op_reshape(doc: Any, rng: random.Random) -> Any:
    """The document's outer shape changes: HTTP API form, bare list, or something else."""
    events = _events(doc)
    return rng.choice([
        {"history": {"events": events}}, events, {"events": {}}, {"history": []}, {"events": [events]},
        {"events": events, "history": 5}, [doc], 5, "events", None,
    ])


def op_big_string(doc: Any, rng: random.Random) -> Any:
    """A string grows long (a long identity, a long failure message)."""
    slot = _pick_slot(doc, rng, hot=True)
    if slot:
        slot[0][slot[1]] = "x" * rng.choice([1000, 100_000])
    return doc


def _well_typed_value(key: str, current: Any, rng: random.Random, ids: list[str]) -> Any:
    """A value of the right type and in range, but odd: what gets past validation to the checks."""
    if key in ("scheduledEventId", "startedEventId", "workflowTaskCompletedEventId"):
        return rng.choice(ids + ["0", "1", "999999", str(2**63 - 1)])
    if key in ("attempt", "maximumAttempts"):
        return rng.choice([1, 2, 3, 7, 2**31 - 1]) if key == "attempt" else rng.choice([0, 1, 2, 2**31 - 1])
    if key == "eventTime":
        return rng.choice(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2026-11-24T21:48:27+14:00",
                           "2026-11-24T21:48:27.5-12:00", "1970-01-01T00:00:00Z"])
    if key.endswith("Timeout") or key.endswith("Interval"):
        return rng.choice(["0s", "0.000000001s", "999999999999s", "5s", "30s"])
    if key == "data":
        value = rng.choice([[], 5, "text", None, {"amount": -1}, {"amount": 1e308, "source_account": ""},
                            [[[[1]]]], {"source_account": ["x"], "amount": {"a": 1}}, True, "Transfer complete"])
        return base64.b64encode(json.dumps(value).encode()).decode()
    if key == "backoffCoefficient":
        return rng.choice([0, 1, 1.5, 999999.0, "2"])
    if key == "nonRetryable":
        return rng.choice([True, False])
    if isinstance(current, str):
        return rng.choice(["", "x", "worker is shutting down", "WorkerShutdown", "ValueError", "deposit", "refund",
                           "withdraw", "history-service", "temporal-cli:me@here", "1@h-0123456789abcdef",
                           "TASK_QUEUE_KIND_STICKY", "TIMEOUT_TYPE_START_TO_CLOSE", "RETRY_STATE_TIMEOUT",
                           "RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED", "RETRY_STATE_NON_RETRYABLE_FAILURE",
                           "WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW", "\u00e9\u4e2d", "a" * 300])
    return current


def op_well_typed(doc: Any, rng: random.Random) -> Any:
    """Several fields the grader reads get values of the right type but odd meaning (wrong ids, odd times)."""
    slots = [s for s in _slots(doc) if s[1] in HOT_KEYS and s[1] not in ("eventType", "eventId")
             and not isinstance(s[0][s[1]], (dict, list))]
    ids = [e.get("eventId") for e in _events(doc) if isinstance(e, dict) and isinstance(e.get("eventId"), str)]
    for container, key in rng.sample(slots, min(len(slots), rng.randint(1, 6))):
        container[key] = _well_typed_value(key, container[key], rng, ids or ["1"])
    return doc


#: Operators on the decoded document, with their weights.
DOC_OPERATORS: list[tuple[Callable[[Any, random.Random], Any], int]] = [
    (op_replace_hot, 8), (op_replace_any, 3), (op_delete_key, 3), (op_number_extreme, 3),
    (op_drop_event, 2), (op_duplicate_event, 1), (op_shuffle_events, 1), (op_cut_events, 1),
    (op_retype_event, 1), (op_swap_attributes, 1), (op_deep_nest, 1), (op_lone_surrogate, 1),
    (op_payload, 2), (op_reshape, 1), (op_big_string, 1), (op_well_typed, 6),
]


# --- operators on the bytes -------------------------------------------------


def text_truncate(data: bytes, rng: random.Random) -> bytes:
    """The file was cut short."""
    return data[: rng.randrange(len(data) + 1)]


def text_flip(data: bytes, rng: random.Random) -> bytes:
    """A few bytes change, invalid UTF-8 included."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def text_prefix(data: bytes, rng: random.Random) -> bytes:
    """A byte-order mark, whitespace or garbage before the JSON."""
    return rng.choice([b"\xef\xbb\xbf", b"  \n", b"\x00", b"\xff\xfe", b"//"]) + data


#: Operators on the serialised bytes, with their weights.
TEXT_OPERATORS: list[tuple[Callable[[bytes, random.Random], bytes], int]] = [
    (text_truncate, 2), (text_flip, 2), (text_prefix, 1),
]


# --- the fuzzer ---------------------------------------------------------------


class Fuzzer:
    """Seeded mutations of a set of seed histories; case ``i`` depends only on the seed and ``i``."""

    def __init__(self, seeds: dict[str, bytes], *, seed: int = 0, max_operators: int = 3,
                 operators: list[str] | None = None) -> None:
        #: Seed history name -> its bytes.
        self.seeds = seeds
        self.seed = seed
        self.max_operators = max_operators
        self._names = sorted(seeds)
        #: The document operators in use (all of DOC_OPERATORS unless ``operators`` names some).
        self.doc_operators = [(f, w) for f, w in DOC_OPERATORS if not operators or f.__name__ in operators]
        if not self.doc_operators:
            raise ValueError(f"no such operators: {operators}")
        #: Whether byte-level operators (truncation, flipped bytes) are used too.
        self.text_operators = not operators

    @classmethod
    def from_goldens(cls, *, seed: int = 0, folder: Path = GOLDENS, **options: Any) -> "Fuzzer":
        """A fuzzer over every ``*.json`` history in ``folder`` (the goldens by default)."""
        seeds = {p.stem: p.read_bytes() for p in sorted(folder.glob("*.json"))}
        if not seeds:
            raise SystemExit(f"no *.json histories in {folder}")
        return cls(seeds, seed=seed, **options)

    def case(self, index: int) -> Case:
        """The ``index``-th case (the same bytes for the same seed and index, on any machine)."""
        rng = random.Random(f"{self.seed}:{index}")
        name = rng.choice(self._names)
        doc = json.loads(self.seeds[name])
        operators = []
        for _ in range(rng.randint(1, self.max_operators)):
            func = rng.choices([f for f, _ in self.doc_operators], [w for _, w in self.doc_operators])[0]
            doc = func(doc, rng)
            operators.append(func.__name__)
        data = dumps(doc)
        if rng.random() < 0.12 and self.text_operators:
            func = rng.choices([f for f, _ in TEXT_OPERATORS], [w for _, w in TEXT_OPERATORS])[0]
            data = func(data, rng)
            operators.append(func.__name__)
        return Case(index, f"fuzz-{index:05d}-{name}.json", data, operators)

    def cases(self, count: int, *, start: int = 0) -> Iterator[Case]:
        """Cases ``start`` .. ``start + count - 1``."""
        for index in range(start, start + count):
            yield self.case(index)


# --- judging one case -----------------------------------------------------------


def strict_json_loads(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity, as a strict consumer of the report would."""
    def refuse(constant: str) -> Any:
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


_VALIDATOR = None


def report_validator() -> Any:
    """A compiled validator for ``grader/schemas/report.schema.json`` (built once)."""
    global _VALIDATOR
    if _VALIDATOR is None:
        import jsonschema

        from grader.engine.report import report_schema

        schema = report_schema()
        _VALIDATOR = jsonschema.validators.validator_for(schema)(schema)
    return _VALIDATOR


def check_case(data: bytes, *, source: str = "fuzz.json", timeline: bool = True) -> str | None:
    """Grade ``data`` as a history file would be graded; None if the grader behaved, else what went wrong.

    Behaving means: a :class:`grader.errors.GraderError` (bad input), or a
    report whose JSON form is strict JSON, valid against the report schema,
    and which every format renders as UTF-8; and (``timeline``) a timeline of it renders.
    """
    from grader.api import grade_histories
    from grader.errors import GraderError
    from grader.formats import FORMATS, render
    from grader.engine.history import load_json_text

    try:
        history = load_json_text(data, source=source)
    except GraderError:
        return None
    except Exception as err:  # noqa: BLE001 - the point is to catch what should not happen
        return _crash("load", err)
    try:
        report = grade_histories([history])
        text = render(report, "json")
        for name in FORMATS:  # every renderer, the ones added later included, must write UTF-8
            render(report, name).encode("utf-8")
        if timeline:
            from grader.engine.timeline import render_timeline
            render_timeline(history).encode("utf-8")
    except GraderError:
        return None
    except Exception as err:  # noqa: BLE001
        return _crash("grade", err)
    try:
        doc = strict_json_loads(text)
    except ValueError as err:
        return f"json-output: {err}"
    errors = sorted(report_validator().iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        return f"schema: {'/'.join(map(str, first.path))}: {first.message[:120]}"
    for exp in doc["experiments"]:
        for chk in exp["checks"]:
            if chk["message"].startswith("the check could not run"):
                return f"check-crash: {chk['id']}: {chk['message'][:160]}"
    return None


def _crash(stage: str, err: BaseException) -> str:
    frame = traceback.extract_tb(err.__traceback__)[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno}"
    return f"crash-{stage}: {type(err).__name__} at {where}: {str(err)[:100]}"


def cause_of(problem: str) -> str:
    """A failure's cause without its case-specific detail, for counting distinct causes."""
    if problem.startswith("crash-"):
        return problem.split(": ", 2)[0] + ": " + problem.split(": ", 2)[1]
    return problem.split(":", 2)[0] + ":" + problem.split(":", 2)[1][:60] if ":" in problem else problem


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer from the command line; print failures by cause; 1 if there were any."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="how many cases (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="the seed (default 0)")
    parser.add_argument("--start", type=int, default=0, help="first case index (default 0)")
    parser.add_argument("--no-timeline", action="store_true", help="do not render timelines")
    parser.add_argument("--operators", metavar="NAMES",
                        help="comma-separated document operators to use alone, e.g. op_well_typed "
                             f"(all: {', '.join(f.__name__ for f, _ in DOC_OPERATORS)})")
    parser.add_argument("--save", type=Path, metavar="DIR", help="write every failing case here")
    parser.add_argument("--show", type=int, default=3, help="example cases printed per cause (default 3)")
    args = parser.parse_args(argv)

    fuzzer = Fuzzer.from_goldens(seed=args.seed,
                                 operators=args.operators.split(",") if args.operators else None)
    causes: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    refused = graded = 0
    started = time.perf_counter()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    from grader.errors import GraderError
    from grader.engine.history import load_json_text

    for case in fuzzer.cases(args.cases, start=args.start):
        problem = check_case(case.data, source=case.name, timeline=not args.no_timeline)
        if problem is None:
            try:
                load_json_text(case.data, source=case.name)
                graded += 1
            except GraderError:
                refused += 1
            continue
        cause = cause_of(problem)
        causes[cause] += 1
        examples.setdefault(cause, [])
        if len(examples[cause]) < args.show:
            examples[cause].append(f"case {case.index} ({', '.join(case.operators)}): {problem}")
        if args.save:
            (args.save / case.name).write_bytes(case.data)
    elapsed = time.perf_counter() - started
    failed = sum(causes.values())
    print(f"seed {args.seed}: {args.cases} cases in {elapsed:.1f} s: {graded} graded, {refused} refused as "
          f"bad input, {failed} failures ({100 * failed / max(args.cases, 1):.2f}%) from "
          f"{len(causes)} distinct causes")
    for cause, count in causes.most_common():
        print(f"  {count:6d}  {cause}")
        for example in examples[cause]:
            print(f"          {example}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
