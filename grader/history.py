"""Workflow histories: read them from JSON or from a server, check them, normalise them.

Every source ends in the same :class:`History` of plain :class:`Event` objects,
so a history graded from a file and the same history fetched live get the
same grade. The offline path is plain ``json.loads`` plus one light walk:
the SDK's ``WorkflowHistory.from_json`` is far slower and silently accepts
junk (see HISTORY-FACTS), so it is not used to read files.

Accepted JSON shapes:

- ``{"events": [...]}``: ``temporal workflow show --output json``, the Web
  UI's download and the SDK's ``WorkflowHistory.to_json()``;
- ``{"history": {"events": [...]}}``: the server's HTTP API, whose payloads
  may be in shorthand (plain JSON values instead of base64);
- a bare list of events.

Event types may be full enum names (``EVENT_TYPE_ACTIVITY_TASK_STARTED``) or
the old PascalCase (``ActivityTaskStarted``); both become the PascalCase form.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator

from grader import defaults
from grader.errors import HistoryError

try:
    import orjson
except ImportError:  # optional speed-up; the standard library reads the same files
    orjson = None

_ENUM_PREFIX = "EVENT_TYPE_"
_PASCAL = re.compile(r"^[A-Z][A-Za-z]+$")
#: raw eventType -> (PascalCase type, attributes key); ("", "") when not an event type.
_type_cache: dict[Any, tuple[str, str]] = {}
_JSON_PLAIN = base64.b64encode(b"json/plain").decode()
_duration_cache: dict[Any, timedelta | None] = {}


def _event_type_info(raw: Any) -> tuple[str, str]:
    info = _type_cache.get(raw) if isinstance(raw, str) else None
    if info is None:
        name = ""
        if isinstance(raw, str):
            if raw.startswith(_ENUM_PREFIX) and raw != "EVENT_TYPE_UNSPECIFIED":
                name = "".join(part.capitalize() for part in raw[len(_ENUM_PREFIX):].split("_"))
            elif _PASCAL.match(raw) and raw != "Unspecified":
                name = raw
        info = (name, attributes_key(name) if name else "")
        if isinstance(raw, str):
            _type_cache[raw] = info
    return info


def attributes_key(event_type: str) -> str:
    """The JSON key holding an event's attributes: ``activityTaskStartedEventAttributes``."""
    return event_type[0].lower() + event_type[1:] + "EventAttributes"


class Event:
    """One history event: its id, PascalCase type, time and attributes (camelCase JSON)."""

    __slots__ = ("id", "type", "time", "attrs")

    def __init__(self, id: int, type: str, time: str, attrs: dict[str, Any]) -> None:
        #: Event id; events are ordered by it, never by time.
        self.id = id
        #: PascalCase event type, e.g. ``ActivityTaskStarted``.
        self.type = type
        #: The eventTime string as recorded (RFC 3339); see :meth:`when`.
        self.time = time
        #: The ``...EventAttributes`` object, camelCase keys as in the JSON.
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"Event({self.id}, {self.type})"


@dataclass
class History:
    """One workflow run's events plus where they came from."""

    workflow_id: str
    run_id: str
    events: list[Event]
    #: Where the history was read: a file path or ``server address/namespace``.
    source: str
    #: "file" or "server".
    source_kind: str = "file"
    #: For a run read live while still open: what the server says it is doing
    #: (a list of pending activities as plain dicts), else None.
    pending_activities: list[dict[str, Any]] | None = None
    #: Web UI link for histories read from a server.
    ui_link: str | None = None
    #: Free-form notes gathered while reading (e.g. "payloads in shorthand form").
    notes: list[str] = field(default_factory=list)

    @property
    def workflow_type(self) -> str:
        """Type name from the first event."""
        return self.events[0].attrs.get("workflowType", {}).get("name", "")


def parse_time(value: str | None) -> datetime | None:
    """RFC 3339 time (nanoseconds allowed) -> aware datetime, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def parse_duration(value: Any) -> timedelta | None:
    """Proto JSON duration (``"5s"``, ``"0.500s"``) -> timedelta; "0s" and missing -> None."""
    try:
        return _duration_cache[value]
    except (KeyError, TypeError):
        pass
    result = None
    if isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError:
            seconds = 0.0
        result = timedelta(seconds=seconds) if seconds > 0 else None
        if len(_duration_cache) < 1024:
            _duration_cache[value] = result
    return result


def as_int(value: Any, default: int = 0) -> int:
    """int64 fields arrive as strings in proto JSON; accept both."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def decode_payloads(value: Any, cache: dict[str, Any] | None = None) -> list[Any] | None:
    """Decode a ``Payloads`` JSON object into Python values.

    Handles the full form (``{"payloads": [{"metadata": {...}, "data": "<b64>"}]}``)
    and the HTTP API's shorthand (a plain list of values). A payload that is
    not ``json/plain`` (binary, protobuf, encrypted) decodes to None.
    Returns None when there are no payloads at all. ``cache`` (one per
    history) shares decoded values between equal payloads: a transfer's
    details appear on four events. Treat shared values as read-only.
    """
    if value is None:
        return None
    if isinstance(value, list):  # shorthand: already plain values
        return value
    if not isinstance(value, dict):
        return None
    payloads = value.get("payloads")
    if not isinstance(payloads, list):
        return None
    return [decode_payload(p, cache) for p in payloads]


def decode_payload(payload: Any, cache: dict[str, Any] | None = None) -> Any:
    """One payload -> its value; None when it is null or not plain JSON."""
    if not isinstance(payload, dict) or "metadata" not in payload:
        return payload  # shorthand value inside a list
    meta = payload.get("metadata") or {}
    encoding = meta.get("encoding")
    if encoding != _JSON_PLAIN and encoding != "json/plain":
        return None  # binary/null, protobuf, or encrypted by a codec: not readable here
    data = payload.get("data", "")
    if cache is not None and isinstance(data, str) and data in cache:
        return cache[data]
    try:
        value = _parse_json(binascii.a2b_base64(data))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        # Some exporters write the metadata and the data already decoded.
        value = data if encoding == "json/plain" and not isinstance(data, str) else None
        if encoding == "json/plain" and isinstance(data, str):
            try:
                value = json.loads(data)
            except ValueError:
                value = None
    if cache is not None and isinstance(data, str):
        cache[data] = value
    return value


# --- reading --------------------------------------------------------------


def load_json_text(text: str | bytes, *, source: str, workflow_id: str | None = None) -> History:
    """Parse and validate one history document; raise :class:`HistoryError` naming ``source``."""
    try:
        doc = _parse_json(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise HistoryError(f"{source}: {_not_json_reason(text, err)}") from None
    return history_from_document(doc, source=source, workflow_id=workflow_id)


_EXPORT_HINT = "export a history with `temporal workflow show -w ID --output json > FILE`"


def _not_json_reason(text: str | bytes, err: Exception) -> str:
    """Why ``text`` is not a history document, with the advice that fits the case.

    Only a document that starts like JSON and breaks off at its very end looks
    like a cut-off export; anything else is a different kind of file.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return f"not a JSON file (it is not UTF-8 text): {_EXPORT_HINT}"
    body = text.strip()
    if not body:
        return f"the file is empty: {_EXPORT_HINT}"
    second = body[1:].lstrip()[:1]
    looks_like_json = (body[0] == "{" and second in ('"', "}", "")) or (
        body[0] == "[" and (second in '{["-]tfn' or second.isdigit()))
    if not looks_like_json:
        return f"not a JSON file (it starts with {body[:12]!r}): {_EXPORT_HINT}"
    position = getattr(err, "pos", None)
    if position is not None and position >= len(text.rstrip()):
        return "the JSON stops before it is complete; the file may be truncated: export it again"
    return f"not valid JSON ({err}): {_EXPORT_HINT}"


def _parse_json(text: str | bytes) -> Any:
    # orjson parses histories about three times faster than the standard
    # library; anything it refuses gets a second chance (and the familiar
    # error message) from json.
    if orjson is not None:
        try:
            return orjson.loads(text)
        except ValueError:
            pass
    return json.loads(text)


def history_from_document(doc: Any, *, source: str, workflow_id: str | None = None,
                          source_kind: str = "file") -> History:
    """Validate a decoded JSON history document and build a :class:`History`."""
    raw_events, notes = _find_events(doc, source)
    events = _events(raw_events, source)
    first = events[0]
    if first.type != "WorkflowExecutionStarted":
        raise HistoryError(f"{source}: the first event is {first.type}, not WorkflowExecutionStarted: "
                           "export the whole history, from its first event")
    wtype = (first.attrs.get("workflowType") or {}).get("name")
    # Case is ignored: the TypeScript version of the tutorial names it moneyTransfer.
    if not isinstance(wtype, str) or wtype.lower() != defaults.WORKFLOW_TYPE.lower():
        raise HistoryError(f"{source}: this is a history of workflow type {wtype!r}, not "
                           f"{defaults.WORKFLOW_TYPE}: pass a money-transfer workflow's history")
    if isinstance(first.attrs.get("input"), list):
        notes.append("payloads in shorthand form (HTTP API)")
    wid = workflow_id or first.attrs.get("workflowId") or _id_from_source(source)
    run_id = first.attrs.get("originalExecutionRunId") or ""
    return History(workflow_id=wid, run_id=run_id, events=events, source=source,
                   source_kind=source_kind, notes=notes)


def _id_from_source(source: str) -> str:
    return Path(source).stem if source else ""


def _find_events(doc: Any, source: str) -> tuple[list[Any], list[str]]:
    if isinstance(doc, list):
        events = doc
    elif isinstance(doc, dict):
        if isinstance(doc.get("events"), list):
            events = doc["events"]
        elif isinstance(doc.get("history"), dict) and isinstance(doc["history"].get("events"), list):
            events = doc["history"]["events"]
        else:
            raise HistoryError(f"{source}: no \"events\" list: this is not a workflow history "
                               "(expected the output of `temporal workflow show --output json`)")
    else:
        raise HistoryError(f"{source}: a history is a JSON object with an \"events\" list, "
                           f"not a {type(doc).__name__}")
    if not events:
        raise HistoryError(f"{source}: the history has no events")
    return events, []


def _events(raw_events: list[Any], source: str) -> list[Event]:
    events: list[Event] = []
    append = events.append
    previous = 0
    ascending = True
    known = _type_cache
    make = Event
    for raw in raw_events:
        try:
            raw_type = raw["eventType"]
            etype, key = known.get(raw_type) or _event_type_info(raw_type)
            event_id = int(raw["eventId"])
            attrs = raw[key]
        except (KeyError, TypeError, ValueError):
            etype = key = ""
            event_id, attrs = -1, None
        if not etype or event_id <= 0 or type(attrs) is not dict:
            _explain_bad_event(raw, len(events), source)
        if event_id <= previous:
            ascending = False
        previous = event_id
        append(make(event_id, etype, raw.get("eventTime") or "", attrs))
    if not ascending:
        # Some viewers list the newest event first; the ids still give the true order.
        events.sort(key=lambda e: e.id)
        for before, after in zip(events, events[1:]):
            if before.id == after.id:
                raise HistoryError(f"{source}: event id {after.id} appears twice: "
                                   "export the history again")
    return events


def _explain_bad_event(raw: Any, index: int, source: str) -> None:
    """Raise the HistoryError that says what is wrong with one event (slow path, errors only)."""
    where = f"{source}: event #{index + 1}"
    if not isinstance(raw, dict):
        raise HistoryError(f"{where} is not an object")
    etype, key = _event_type_info(raw.get("eventType"))
    if not etype:
        raise HistoryError(f"{where} has no valid eventType "
                           f"(got {raw.get('eventType')!r}): the file is not a Temporal history")
    if as_int(raw.get("eventId"), -1) <= 0:
        raise HistoryError(f"{where} has no valid eventId (got {raw.get('eventId')!r})")
    raise HistoryError(f"{where} ({etype}) lacks its {key}")


def load_history_file(path: Path) -> History:
    """Read one history file; raise :class:`HistoryError` naming the file when it is unusable."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise HistoryError(f"{path}: cannot read it ({err.strerror or err})") from None
    return load_json_text(data, source=str(path))


def iter_history_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Expand each path: a file as is, a folder into its ``*.json`` files (sorted)."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise HistoryError(f"{path}: the folder holds no .json history files")
            yield from found
        else:
            yield path


def history_from_proto(history: Any, *, workflow_id: str, source: str) -> History:
    """Turn the SDK's fetched ``WorkflowHistory`` into a :class:`History` via its JSON form.

    Going through the same JSON walk as files is what makes a live grade and a
    file grade of one history identical.
    """
    return history_from_document(history.to_json_dict(), source=source, workflow_id=workflow_id, source_kind="server")
