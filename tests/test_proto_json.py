"""grader.engine.proto_json against its oracle, protobuf's own ``json_format.MessageToDict``.

The fast converter must give exactly the dict the SDK's ``to_json_dict()``
gives (``MessageToDict`` with its default options), for every history event:
the goldens parsed back into protobuf, hand-built edge cases, every event
type with every field set, and a history fetched from a real dev server.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload, Payloads, Priority, RetryPolicy
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import History, HistoryEvent

from grader.engine.history import history_from_document, history_from_proto
from grader.engine import proto_json
from grader.engine.proto_json import events_to_dict, history_to_dict, message_to_dict

REPO = Path(__file__).resolve().parent.parent
GOLDEN_FILES = sorted((REPO / "tests" / "goldens").glob("*.json")) + sorted(
    (REPO / "grader" / "packs" / "sagas" / "goldens").glob("*.json"))


def _parsed(path: Path) -> History | None:
    """The golden as a History message, or None when json_format refuses its JSON."""
    try:
        return json_format.ParseDict(json.loads(path.read_text(encoding="utf-8")), History())
    except json_format.ParseError:
        return None


def _same_as_oracle(history: History) -> None:
    """Event by event (so a failure names the event), then the whole document."""
    ours = history_to_dict(history)
    for index, event in enumerate(history.events):
        oracle = MessageToDict(event)
        assert proto_json._convert(event) == oracle, f"event #{index + 1} ({event.event_type})"
        assert ours["events"][index] == oracle, f"event #{index + 1} ({event.event_type})"
    assert ours == MessageToDict(history)


# --- the goldens, parsed back into protobuf -------------------------------------------


def test_the_goldens_are_there_and_nearly_all_parse():
    assert len(GOLDEN_FILES) >= 20
    parsed = [p.name for p in GOLDEN_FILES if _parsed(p) is not None]
    assert len(parsed) >= 0.9 * len(GOLDEN_FILES), sorted(set(p.name for p in GOLDEN_FILES) - set(parsed))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_golden_converts_exactly_as_message_to_dict(path: Path):
    history = _parsed(path)
    if history is None:
        pytest.skip(f"{path.name}: json_format.ParseDict rejects this JSON (an older or shorthand form)")
    _same_as_oracle(history)


# --- hand-built edge cases ----------------------------------------------------------


def _started(**attrs) -> HistoryEvent:
    event = HistoryEvent(event_id=1, event_type=1)
    event.workflow_execution_started_event_attributes.SetInParent()
    for name, value in attrs.items():
        setattr(event.workflow_execution_started_event_attributes, name, value)
    return event


def _ours_and_oracle(message) -> tuple[dict, dict]:
    """Our dict and json_format's. Ours by the plans alone: message_to_dict would hand anything the
    plans get wrong enough to raise to json_format, and then equal it without showing the fault."""
    ours = proto_json._convert(message)
    assert message_to_dict(message) == ours or json.dumps(message_to_dict(message)) == json.dumps(ours)
    return ours, MessageToDict(message)


@pytest.mark.parametrize(("nanos", "text"), [
    (0, "2026-12-05T10:00:00Z"),
    (120_000_000, "2026-12-05T10:00:00.120Z"),
    (123_456_000, "2026-12-05T10:00:00.123456Z"),
    (123_456_789, "2026-12-05T10:00:00.123456789Z"),
    (1, "2026-12-05T10:00:00.000000001Z"),
    (999_999_999, "2026-12-05T10:00:00.999999999Z"),
])
def test_timestamps_use_zero_three_six_or_nine_digits(nanos: int, text: str):
    event = HistoryEvent(event_id=1)
    event.event_time.seconds = 1796464800  # 2026-12-05T10:00:00Z
    event.event_time.nanos = nanos
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    assert ours["eventTime"] == text


@pytest.mark.parametrize("seconds", [0, -1, -62135596800, 253402300799, 951782400])  # 951782400: 2000-02-29
def test_timestamps_at_the_edges_of_the_range(seconds: int):
    event = HistoryEvent(event_id=1)
    event.event_time.seconds = seconds
    event.event_time.nanos = 5_000
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle


def test_a_timestamp_json_format_refuses_is_refused_the_same_way():
    event = HistoryEvent(event_id=1)
    event.event_time.seconds = 253402300800  # year 10000
    with pytest.raises(json_format.SerializeToJsonError):
        MessageToDict(event)
    _same_error(event)


@pytest.mark.parametrize(("seconds", "nanos", "text"), [
    (10, 0, "10s"),
    (0, 0, "0s"),
    (1, 500_000_000, "1.500s"),
    (0, 1_000, "0.000001s"),
    (3, 7, "3.000000007s"),
    (-1, -500_000_000, "-1.500s"),
    (0, -250_000_000, "-0.250s"),
    (315576000000, 0, "315576000000s"),
])
def test_durations(seconds: int, nanos: int, text: str):
    event = _started()
    timeout = event.workflow_execution_started_event_attributes.workflow_run_timeout
    timeout.seconds, timeout.nanos = seconds, nanos
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    assert ours["workflowExecutionStartedEventAttributes"]["workflowRunTimeout"] == text


def test_int64_beyond_two_to_the_53_is_exact_decimal_text():
    event = HistoryEvent(event_id=2**53 + 1, task_id=2**63 - 1)
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    assert ours["eventId"] == "9007199254740993" and ours["taskId"] == str(2**63 - 1)


def test_int32_stays_a_number():
    ours, oracle = _ours_and_oracle(_started(attempt=3))
    assert ours == oracle
    assert ours["workflowExecutionStartedEventAttributes"]["attempt"] == 3


def test_an_unknown_enum_number_is_printed_as_the_number():
    event = HistoryEvent(event_id=1, event_type=9999)
    event.workflow_execution_started_event_attributes.task_queue.kind = 77
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    assert ours["eventType"] == 9999
    assert ours["workflowExecutionStartedEventAttributes"]["taskQueue"]["kind"] == 77


def test_known_enums_are_printed_by_name():
    ours, oracle = _ours_and_oracle(HistoryEvent(event_id=1, event_type=10))
    assert ours == oracle and ours["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"\x00\xff\xfe", bytes(range(256))])
def test_bytes_are_standard_base64_with_padding(data: bytes):
    payload = Payload(metadata={"encoding": b"json/plain", "x": data}, data=data)
    ours, oracle = _ours_and_oracle(payload)
    assert ours == oracle


def test_a_payload_with_metadata_bytes_inside_an_event():
    event = _started()
    payload = event.workflow_execution_started_event_attributes.input.payloads.add()
    payload.metadata["encoding"] = b"json/plain"
    payload.metadata["messageType"] = b"x"
    payload.data = b'{"amount": 250}'
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    got = ours["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    assert got["metadata"] == {"encoding": "anNvbi9wbGFpbg==", "messageType": "eA=="}


def test_map_fields_of_messages_and_of_bytes():
    event = _started()
    attrs = event.workflow_execution_started_event_attributes
    attrs.header.fields["tracing"].data = b"t"
    attrs.memo.fields["note"].metadata["encoding"] = b"json/plain"
    attrs.search_attributes.indexed_fields["CustomKeywordField"].data = b'"k"'
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    assert set(ours["workflowExecutionStartedEventAttributes"]) >= {"header", "memo", "searchAttributes"}


def test_an_empty_repeated_field_is_left_out_and_an_empty_message_is_kept():
    event = _started()
    event.workflow_execution_started_event_attributes.input.SetInParent()  # Payloads with no payloads
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    assert ours["workflowExecutionStartedEventAttributes"]["input"] == {}
    assert events_to_dict([]) == MessageToDict(History()) == {}


@pytest.mark.parametrize("coefficient", [2.0, 1.5, 0.1, math.nan, math.inf, -math.inf, 1e300, 5e-324])
def test_a_double_field_with_nan_and_infinity(coefficient: float):
    event = HistoryEvent(event_id=5, event_type=10)
    event.activity_task_scheduled_event_attributes.retry_policy.backoff_coefficient = coefficient
    ours, oracle = _ours_and_oracle(event)
    assert ours == oracle
    printed = ours["activityTaskScheduledEventAttributes"]["retryPolicy"]["backoffCoefficient"]
    if math.isnan(coefficient):
        assert printed == "NaN"
    elif math.isinf(coefficient):
        assert printed == ("Infinity" if coefficient > 0 else "-Infinity")


@pytest.mark.parametrize("weight", [0.1, 1.0, 3.14159, 1e-7, 16777217.0, math.nan, math.inf, -math.inf])
def test_a_float32_field_prints_its_shortest_form(weight: float):
    priority = Priority(fairness_weight=weight)
    ours, oracle = _ours_and_oracle(priority)
    assert ours == oracle
    if weight == 0.1:
        assert ours["fairnessWeight"] == 0.1  # not 0.10000000149011612


def test_a_failure_chain_converts_all_the_way_down():
    failure = Failure(message="top")
    cause = failure
    for depth in range(30):
        cause = cause.cause
        cause.message = f"cause {depth}"
        cause.application_failure_info.type = "BankError"
        cause.application_failure_info.non_retryable = depth % 2 == 0
    ours, oracle = _ours_and_oracle(failure)
    assert ours == oracle


def test_retry_policy_lists_and_durations():
    policy = RetryPolicy(maximum_attempts=3, backoff_coefficient=2.0,
                         non_retryable_error_types=["InsufficientFunds", "AccountClosed"])
    policy.initial_interval.seconds = 1
    policy.maximum_interval.nanos = 100_000_000
    ours, oracle = _ours_and_oracle(policy)
    assert ours == oracle
    assert ours["nonRetryableErrorTypes"] == ["InsufficientFunds", "AccountClosed"]


def test_well_known_types_it_might_meet():
    from google.protobuf import any_pb2, duration_pb2, field_mask_pb2, struct_pb2, wrappers_pb2

    struct = struct_pb2.Struct()
    struct.update({"a": 1.5, "b": "text", "c": True, "d": None, "e": [1, "x", {"f": [None]}], "g": {"h": 2}})
    wrapped = [wrappers_pb2.Int64Value(value=2**60), wrappers_pb2.UInt64Value(), wrappers_pb2.Int32Value(value=-4),
               wrappers_pb2.BoolValue(), wrappers_pb2.StringValue(value="s"), wrappers_pb2.BytesValue(value=b"ab"),
               wrappers_pb2.DoubleValue(value=math.inf), wrappers_pb2.FloatValue(value=0.1)]
    packed = any_pb2.Any()
    packed.Pack(duration_pb2.Duration(seconds=3, nanos=4))
    packed_payload = any_pb2.Any()
    packed_payload.Pack(Payload(metadata={"encoding": b"binary/null"}))
    mask = field_mask_pb2.FieldMask(paths=["retry_policy.backoff_coefficient", "input"])
    for message in [struct, struct_pb2.Value(), struct_pb2.ListValue(), struct_pb2.Value(number_value=3),
                    *wrapped, packed, packed_payload, any_pb2.Any(), mask]:
        ours, oracle = _ours_and_oracle(message)
        assert ours == oracle, type(message).__name__


def _same_error(message) -> None:
    with pytest.raises(Exception) as oracle:
        MessageToDict(message)
    with pytest.raises(type(oracle.value)) as ours:
        message_to_dict(message)
    assert str(ours.value) == str(oracle.value)


def test_values_json_format_refuses_are_refused_the_same_way():
    from google.protobuf import any_pb2, struct_pb2

    struct = struct_pb2.Struct()
    struct.fields["x"].number_value = math.nan
    _same_error(struct)  # at the top: json_format's bare ValueError
    event = _started()
    event.workflow_execution_started_event_attributes.workflow_run_timeout.seconds = 10**12  # too long
    _same_error(event)  # inside a message: its SerializeToJsonError
    _same_error(any_pb2.Any(type_url="type.googleapis.com/no.Such"))  # a type it cannot look up


# --- every event type, with every field set ---------------------------------------------

_INT64_KINDS = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
_UINT64_KINDS = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
_INT32_KINDS = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
_UINT32_KINDS = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}


def _sample(field, n: int):
    """A non-default value for one scalar field; ``n`` makes repeated and map values differ."""
    kind = field.type
    if kind in _INT64_KINDS:
        return -(2**62) - n if n % 2 else 2**53 + 1 + n
    if kind in _UINT64_KINDS:
        return 2**64 - 1 - n
    if kind in _INT32_KINDS:
        return -7 - n if n % 2 else 2**31 - 1 - n
    if kind in _UINT32_KINDS:
        return 2**32 - 1 - n
    if kind == FieldDescriptor.TYPE_BOOL:
        return True
    if kind == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{n}-é\u2603"
    if kind == FieldDescriptor.TYPE_BYTES:
        return bytes(range(n, n + 1 + n % 3)) + b"\xff"
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = sorted(v.number for v in field.enum_type.values)
        return numbers[-1] if n % 2 == 0 else numbers[-1] + 100  # a named value, then an unknown one
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return [2.5, math.inf, 0.1][n % 3]
    if kind == FieldDescriptor.TYPE_FLOAT:
        return [0.1, 1.25, -math.inf][n % 3]
    raise AssertionError(f"no sample for {field.full_name}")


def _fill(message, depth: int, n: int = 0) -> None:
    """Set every field of ``message`` (each oneof ends on its last member), ``depth`` levels down."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        message.seconds, message.nanos = 1796464800 + n, [123456789, 120000000, 5000, 0][n % 4]
        return
    if name == "google.protobuf.Duration":
        message.seconds, message.nanos = 30 + n, [0, 500000000, 1000, 7][n % 4]
        return
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for k in range(2):
                key = _sample(field.message_type.fields_by_name["key"], k)
                if value_field.message_type is not None:
                    if depth > 0:
                        _fill(value[key], depth - 1, k)
                    else:
                        value[key].SetInParent()
                else:
                    value[key] = _sample(value_field, k)
        elif field.message_type is not None:
            if depth <= 0:
                continue
            if field.is_repeated:
                for k in range(2):
                    _fill(value.add(), depth - 1, k)
            else:
                _fill(value, depth - 1, n)
        elif field.is_repeated:
            value.extend(_sample(field, k) for k in range(3))
        else:
            setattr(message, field.name, _sample(field, n))


ATTRIBUTE_FIELDS = [f.name for f in HistoryEvent.DESCRIPTOR.oneofs_by_name["attributes"].fields]


def test_every_event_type_is_covered():
    assert len(ATTRIBUTE_FIELDS) >= 40


@pytest.mark.parametrize("attributes", ATTRIBUTE_FIELDS)
def test_every_event_type_with_every_field_set(attributes: str):
    event = HistoryEvent()
    _fill(event, depth=4)  # also sets the last attributes of the oneof: replaced next
    _fill(getattr(event, attributes), depth=5)
    assert event.WhichOneof("attributes") == attributes
    ours, oracle = _ours_and_oracle(event)
    # Compare through JSON text: a NaN is never == itself, but there is none here, and the text also
    # shows that the keys come in the same order.
    assert json.dumps(ours) == json.dumps(oracle)
    assert events_to_dict([event, event]) == MessageToDict(History(events=[event, event]))


# --- a history fetched from a real server -----------------------------------------------


@pytest.mark.slow
async def test_a_fetched_history_reads_the_same_as_through_to_json_dict(finished_transfer):
    fetched = await finished_transfer.fetch_history()
    assert history_to_dict(fetched) == fetched.to_json_dict()
    for index, event in enumerate(fetched.events):
        assert message_to_dict(event) == MessageToDict(event), f"event #{index + 1}"
    source = "server test"
    live = history_from_proto(fetched, workflow_id=finished_transfer.id, source=source)
    through_sdk = history_from_document(fetched.to_json_dict(), source=source, workflow_id=finished_transfer.id,
                                        source_kind="server")
    assert len(live.events) == len(through_sdk.events) > 10
    assert [(e.id, e.type, e.time, e.attrs) for e in live.events] == \
           [(e.id, e.type, e.time, e.attrs) for e in through_sdk.events]
    assert (live.workflow_id, live.run_id, live.source_kind) == \
           (through_sdk.workflow_id, through_sdk.run_id, through_sdk.source_kind)


# --- what Temporal's messages do not use: every scalar kind, map keys, proto2 -------------------


def _test_messages():
    """Message classes built at run time in a pool of their own: every scalar type, singular,
    repeated and as map keys and values, a oneof, a proto2 message with a closed enum and an extension."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    T = descriptor_pb2.FieldDescriptorProto
    scalars = {"double": T.TYPE_DOUBLE, "float": T.TYPE_FLOAT, "int64": T.TYPE_INT64, "uint64": T.TYPE_UINT64,
               "int32": T.TYPE_INT32, "fixed64": T.TYPE_FIXED64, "fixed32": T.TYPE_FIXED32, "bool": T.TYPE_BOOL,
               "string": T.TYPE_STRING, "bytes": T.TYPE_BYTES, "uint32": T.TYPE_UINT32,
               "sfixed32": T.TYPE_SFIXED32, "sfixed64": T.TYPE_SFIXED64, "sint32": T.TYPE_SINT32,
               "sint64": T.TYPE_SINT64}
    key_kinds = ("int64", "uint64", "int32", "fixed64", "fixed32", "bool", "string", "uint32",
                 "sfixed32", "sfixed64", "sint32", "sint64")
    file = descriptor_pb2.FileDescriptorProto(name="proto_json_test.proto", package="pjtest", syntax="proto3",
                                              dependency=["google/protobuf/timestamp.proto"])
    color = file.enum_type.add(name="Color")
    color.value.add(name="COLOR_UNSPECIFIED", number=0)
    color.value.add(name="COLOR_RED", number=1)
    every = file.message_type.add(name="Every")
    number = 0

    def add(message, name, kind, label=T.LABEL_OPTIONAL, type_name="", oneof=None):
        nonlocal number
        number += 1
        field = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
        if oneof is not None:
            field.oneof_index = oneof
        return field

    for name, kind in scalars.items():
        add(every, f"one_{name}", kind)
        add(every, f"many_{name}", kind, T.LABEL_REPEATED)
    add(every, "color", T.TYPE_ENUM, type_name=".pjtest.Color")
    add(every, "colors", T.TYPE_ENUM, T.LABEL_REPEATED, ".pjtest.Color")
    add(every, "child", T.TYPE_MESSAGE, type_name=".pjtest.Every")
    add(every, "children", T.TYPE_MESSAGE, T.LABEL_REPEATED, ".pjtest.Every")
    add(every, "when", T.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
    every.oneof_decl.add(name="choice")
    add(every, "choice_text", T.TYPE_STRING, oneof=0)
    add(every, "choice_child", T.TYPE_MESSAGE, type_name=".pjtest.Every", oneof=0)
    for key in key_kinds:
        for value, value_kind, value_type in (("string", T.TYPE_STRING, ""), ("child", T.TYPE_MESSAGE, ".pjtest.Every"),
                                              ("color", T.TYPE_ENUM, ".pjtest.Color")):
            entry_name = f"By{key.capitalize()}{value.capitalize()}Entry"
            entry = every.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=scalars[key], label=T.LABEL_OPTIONAL)
            value_field = entry.field.add(name="value", number=2, type=value_kind, label=T.LABEL_OPTIONAL)
            if value_type:
                value_field.type_name = value_type
            add(every, f"by_{key}_{value}", T.TYPE_MESSAGE, T.LABEL_REPEATED, f".pjtest.Every.{entry_name}")

    old = descriptor_pb2.FileDescriptorProto(name="proto_json_test2.proto", package="pjtest2", syntax="proto2")
    shade = old.enum_type.add(name="Shade")
    shade.value.add(name="SHADE_DARK", number=1)
    shade.value.add(name="SHADE_LIGHT", number=2)
    legacy = old.message_type.add(name="Legacy")
    legacy.field.add(name="shade", number=1, type=T.TYPE_ENUM, label=T.LABEL_OPTIONAL, type_name=".pjtest2.Shade")
    legacy.field.add(name="count", number=2, type=T.TYPE_INT64, label=T.LABEL_OPTIONAL)
    legacy.extension_range.add(start=100, end=200)
    old.extension.add(name="note", number=100, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL,
                      extendee=".pjtest2.Legacy")

    pool = descriptor_pool.DescriptorPool()
    from google.protobuf import timestamp_pb2

    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    pool.Add(old)
    Every = message_factory.GetMessageClass(pool.FindMessageTypeByName("pjtest.Every"))
    Legacy = message_factory.GetMessageClass(pool.FindMessageTypeByName("pjtest2.Legacy"))
    return Every, Legacy, pool.FindExtensionByName("pjtest2.note"), key_kinds


def test_every_scalar_kind_repeated_kind_and_map_key_kind():
    Every, _, _, key_kinds = _test_messages()
    message = Every()
    _fill(message, depth=2)
    for n, key in enumerate(key_kinds):  # keys at the edges of their type: bool keys print as true/false
        field = message.DESCRIPTOR.fields_by_name[f"by_{key}_string"]
        key_field = field.message_type.fields_by_name["key"]
        for k in range(2):
            getattr(message, f"by_{key}_string")[_sample(key_field, k + n)] = "v"
        getattr(message, f"by_{key}_color")[_sample(key_field, n)] = 55  # an unknown enum number as a value
    message.choice_text = "picked"
    ours, oracle = _ours_and_oracle(message)
    assert json.dumps(ours, sort_keys=True) == json.dumps(oracle, sort_keys=True)
    assert ours["byBoolString"] == {"true": "v"}
    assert ours["oneInt64"] == str(2**53 + 1) and ours["oneUint64"] == str(2**64 - 1)
    assert ours["choiceText"] == "picked" and "choiceChild" not in ours


def test_a_proto2_closed_enum_and_an_extension():
    _, Legacy, note, _ = _test_messages()
    message = Legacy(shade=2, count=0)  # proto2: a field set to its default is still printed
    message.Extensions[note] = "extended"
    ours, oracle = _ours_and_oracle(message)
    assert ours == oracle == {"shade": "SHADE_LIGHT", "count": "0", "[pjtest2.note]": "extended"}
