"""The report model as JSON, exactly as ``grader/schemas/report.schema.json`` describes it."""

from __future__ import annotations

import json

from grader.report import Report


def render(report: Report) -> str:
    """The report as one JSON document (stdout then holds nothing else)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
