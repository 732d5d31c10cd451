"""The report model as JSON, exactly as ``grader/schemas/report.schema.json`` describes it.

The output is strict JSON: never ``NaN`` or ``Infinity`` (which many JSON
readers refuse), and never a lone surrogate (which cannot be written as
UTF-8). Histories are validated before they reach a report, so the fast
path almost always succeeds; the slow path repairs text and refuses numbers
that have no JSON form.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from grader.errors import BadInputError
from grader.engine.report import Report

_SURROGATE = re.compile("[\ud800-\udfff]")


def render(report: Report) -> str:
    """The report as one JSON document (stdout then holds nothing else)."""
    data = report.to_dict()
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        text = json.dumps(strict(data), indent=2, ensure_ascii=False, allow_nan=False)
    return text + "\n"


def strict(value: Any, path: str = "") -> Any:
    """``value`` made writable as strict UTF-8 JSON.

    Strings keep their text, with any lone surrogate (from a file name that
    is not UTF-8) replaced by U+FFFD. A non-finite number raises
    :class:`BadInputError` naming where it is: it can only come from a bad
    rubric, and no number would tell the truth in its place.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInputError(f"the report holds {value} at {path or '/'}: a number with no JSON form; "
                            "check the rubric's points")
    if isinstance(value, dict):
        return {strict(k, path): strict(v, f"{path}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v, f"{path}/{i}") for i, v in enumerate(value)]
    return value
