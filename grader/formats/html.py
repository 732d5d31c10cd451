"""One self-contained HTML page: the grade, and a picture of each graded run.

The page needs nothing from elsewhere: CSS and SVG are inline, there is no
script at all, so it opens offline, from a file, or inside an LMS that strips
scripts. Tooltips are SVG ``<title>`` elements.

Each run is drawn from the report's :class:`grader.engine.runview.RunTimeline`
(this module never reads a history): a lane per worker process, a bar per
activity attempt, the server's silences shaded, and marks for what the
experiments are about (a lost worker and the takeover, the fix, the refund,
the outage). Meaning never rides on colour alone: every bar and mark has a
word and a shape, attempts whose times the history does not record are
hatched and say so, and a list under each picture says the same in text.

Everything that came from a history (ids, identities, failure messages) is
escaped: a crafted workflow id cannot inject markup.
"""

from __future__ import annotations

import math
from html import escape

from grader.engine import catalog
from grader.engine.report import ExperimentReport, Report, provenance_said
from grader.engine.runview import UNRECORDED_LANE, WORKFLOW_LANE, Attempt, Lane, Mark, RunTimeline

_STATUS_WORD = {"pass": "PASS", "fail": "FAIL", "pending": "PENDING", "error": "ERROR",
                "not-attempted": "NOT ATTEMPTED"}
_STATUS_SIGN = {"pass": "\u2713", "fail": "\u2717", "pending": "\u2026", "error": "!", "not-attempted": "\u2013"}

#: Activity colours (a colour-blind-safe trio); each bar also carries the activity's name.
_OTHER_COLOUR = "#7a6fb0"


def _all_colours() -> dict[str, str]:
    """Every pack's activity colours (lowercase activity type -> colour): the packs choose them."""
    merged: dict[str, str] = {}
    for colours in catalog.colour_sets():
        for name, colour in colours.items():
            merged.setdefault(name, colour)
    return merged


def _colours_of(timeline: RunTimeline) -> dict[str, str]:
    """The colours the legend explains: those of each pack whose activities the run drew."""
    drawn = {bar.activity.lower() for bar in timeline.attempts}
    shown: dict[str, str] = {}
    for colours in catalog.colour_sets():
        if drawn & set(colours):
            for name, colour in colours.items():
                shown.setdefault(name, colour)
    return shown

# Geometry of a picture, in SVG user units (the SVG scales to the page width).
_WIDTH, _GUTTER, _RIGHT = 900, 180, 24
_AXIS_H, _LANE_H, _LABEL_ROW, _SILENCE_ROW = 30, 48, 14, 20
_CHAR_W = 6.4  # rough width of one character at the 12-unit font, to keep labels apart

_CSS = """
:root { --ink:#1d2230; --muted:#5b6275; --line:#d7dbe6; --pass:#1f7a4d; --fail:#b3261e;
  --pending:#8a5a00; --bg:#ffffff; --panel:#f6f7fb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color:var(--ink); background:var(--bg); }
main, header { max-width: 1040px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 20px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0; display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
code { font: 0.9em ui-monospace, "DejaVu Sans Mono", monospace; background: var(--panel); padding: 0 3px;
  border-radius: 3px; overflow-wrap:anywhere; }
.meta { color: var(--muted); margin: 2px 0; font-size: 0.9rem; }
.badge { display:inline-block; font-weight:700; font-size:0.8rem; letter-spacing:0.04em; padding:2px 8px;
  border-radius:999px; border:2px solid currentColor; white-space:nowrap; }
.pass { color: var(--pass); } .fail, .error { color: var(--fail); } .pending { color: var(--pending); }
.bonus { color: var(--muted); }
.total { font-size: 1.1rem; margin: 8px 0 16px; }
.errors { border-left: 4px solid var(--fail); background: #fdf0ef; padding: 8px 12px; }
section.experiment { border:1px solid var(--line); border-radius: 10px; padding: 14px 16px; margin: 16px 0; }
.score { color: var(--muted); font-weight: 600; }
table.checks { border-collapse: collapse; width: 100%; margin: 10px 0; }
table.checks th, table.checks td { text-align:left; vertical-align: top; padding: 6px 8px;
  border-top: 1px solid var(--line); }
table.checks th { font-size: 0.8rem; color: var(--muted); font-weight:600; border-top:none; }
td.points { text-align:right; white-space:nowrap; }
.finding { margin: 0; } .hint { margin: 2px 0 0; color: var(--muted); }
.hint strong { color: var(--ink); }
figure { margin: 12px 0 0; }
figure svg { width: 100%; height: auto; display:block; background: #fff; }
figcaption { font-weight: 600; margin-bottom: 4px; }
details.events { margin-top: 6px; } details.events summary { cursor: pointer; color: var(--muted); }
ol.events { margin: 6px 0; padding-left: 22px; font-size: 0.9rem; }
.legend { display:flex; flex-wrap:wrap; gap: 6px 16px; font-size: 0.85rem; color: var(--muted);
  margin: 8px 0 0; padding: 0; list-style: none; }
.legend li { display:flex; align-items:center; gap:6px; }
.legend svg { width: 26px; height: 14px; }
.note { color: var(--muted); }
footer { max-width:1040px; margin: 24px auto; padding: 0 20px; color: var(--muted); font-size: 0.85rem; }
@media print { section.experiment { break-inside: avoid; } }
"""


def render(report: Report) -> str:
    """The whole report as one self-contained HTML document."""
    timelines = {(t.workflow_id, t.run_id): t for t in report.timelines}
    drawn: dict[tuple[str, str], str] = {}  # run -> anchor of the experiment that drew it
    parts = [_head(report)]
    if report.errors:
        items = "".join(f"<li>{escape(e)}</li>" for e in report.errors)
        parts.append(f'<section class="errors" aria-label="inputs not graded"><p>Not graded:</p>'
                     f"<ul>{items}</ul></section>")
    for index, exp in enumerate(report.experiments):
        parts.append(_experiment(exp, index, timelines, drawn))
    for index, (key, timeline) in enumerate(k for k in timelines.items() if k[0] not in drawn):
        # A run read but counted for no experiment (a plain transfer, an open run with
        # nothing to show yet) is still drawn: the learner sees what their run did.
        anchor = f"run-{index}"
        parts.append(f'<section class="run" id="{anchor}" aria-labelledby="{anchor}-h"><h2 id="{anchor}-h">'
                     f'A run that counts for no experiment</h2><p class="meta">workflow '
                     f'<code>{escape(key[0])}</code> run <code>{escape(key[1] or "?")}</code>: its events show '
                     "none of the experiments</p>" + _figure(timeline, f"{anchor}-run") + "</section>")
    parts.append("</main>")
    sources = ", ".join(escape(s) for s in report.sources) or "none"
    parts.append(f'<footer>Sources: {sources}. Rubric {escape(report.rubric.get("id", ""))} '
                 f'{escape(report.rubric.get("version", ""))}, grader {escape(report.grader_version)}. '
                 "This page is self-contained: no script, nothing loaded from elsewhere.</footer>")
    parts.append("</body></html>\n")
    return "".join(parts)


# --- the page ------------------------------------------------------------------


def _badge(status: str, word: str | None = None) -> str:
    word = word or _STATUS_WORD.get(status, status.upper())
    sign = _STATUS_SIGN.get(status, "")
    return f'<span class="badge {escape(status)}">{sign} {escape(word)}</span>'


def _points(score: float, max_score: float) -> str:
    return f"{score:g}/{max_score:g}"


def _head(report: Report) -> str:
    title = f"Failure Lab grade: {_STATUS_WORD.get(report.status, report.status)} {_points(report.score, report.max_score)}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>Failure Lab grade</h1><p class="total" data-status="{escape(report.status)}">'
        f"{_badge(report.status)} <strong>{_points(report.score, report.max_score)}</strong> "
        f'<span class="note">for the experiments that count</span></p></header><main>'
    )


def _experiment(exp: ExperimentReport, index: int, timelines: dict, drawn: dict) -> str:
    anchor = f"exp-{index}"
    optional = "" if exp.required else ' <span class="note">(optional)</span>'
    out = [f'<section class="experiment" id="{anchor}" data-experiment="{escape(exp.id)}" '
           f'data-status="{escape(exp.status)}" aria-labelledby="{anchor}-h">'
           f'<h2 id="{anchor}-h">{_badge(exp.status)} {escape(exp.title)}{optional} '
           f'<span class="score">{_points(exp.score, exp.max_score)}</span></h2>']
    ref = exp.workflow
    if ref is not None:
        where = f'workflow <code>{escape(ref.workflow_id)}</code> run <code>{escape(ref.run_id or "?")}</code>'
        if exp.candidates > 1:
            where += f" (the best of {exp.candidates} runs)"
        out.append(f'<p class="meta">{where}, {escape(provenance_said(ref.provenance))}</p>')
        link = ref.ui_link or ""
        if link.startswith(("http://", "https://")):
            out.append(f'<p class="meta"><a href="{escape(link)}">Open this run in the Temporal Web UI</a></p>')
        else:
            out.append(f'<p class="meta">from <code>{escape(ref.source)}</code></p>')
    elif exp.note:
        out.append(f'<p class="meta">{"Not attempted: " if exp.status == "not-attempted" else ""}'
                   f'{escape(exp.note)}</p>')
    if exp.status != "not-attempted":  # no run, so no findings: the note above says what would count
        out.append(_checks(exp))
    if ref is not None:
        key = (ref.workflow_id, ref.run_id)
        timeline = timelines.get(key)
        if key in drawn:
            out.append(f'<p class="note">This run is drawn above, under <a href="#{drawn[key]}">'
                       f"{escape(drawn[key + ('title',)])}</a>.</p>")
        elif timeline is not None:
            drawn[key], drawn[key + ("title",)] = anchor, exp.title
            out.append(_figure(timeline, f"{anchor}-run"))
    out.append("</section>")
    return "".join(out)


def _checks(exp: ExperimentReport) -> str:
    rows = []
    said: set[str] = set()
    for chk in exp.checks:
        if not chk.applies:
            badge = '<span class="badge bonus">N/A</span>'
        elif chk.required:
            badge = _badge(chk.status)
        else:
            badge = _badge("pass") if chk.status == "pass" else '<span class="badge bonus">BONUS</span>'
        title = escape(chk.title) + ("" if chk.required else ' <span class="note">(bonus evidence)</span>')
        finding = ""
        if chk.message and (chk.status == "pass" or chk.message not in said):
            said.add(chk.message)
            finding = f'<p class="finding">{escape(chk.message)}</p>'
        if chk.hint and chk.status != "pass" and chk.required:
            finding += f'<p class="hint"><strong>What to do:</strong> {escape(chk.hint)}</p>'
        # Bonus evidence worth no points says so instead of a bare 0/0.
        points = _points(chk.score, chk.max_score) if chk.required or chk.max_score else "bonus"
        rows.append(f'<tr data-check="{escape(chk.id)}" data-status="{escape(chk.status)}"><td>{badge}</td>'
                    f"<td>{title}{finding}</td><td class=\"points\">{points}</td></tr>")
    return ('<table class="checks"><thead><tr><th scope="col">Result</th><th scope="col">Check and finding</th>'
            '<th scope="col">Points</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _legend(timeline: RunTimeline) -> str:
    def swatch(body: str) -> str:
        return f'<svg viewBox="0 0 26 14" aria-hidden="true">{body}</svg>'

    items = [
        (swatch(f'<rect x="1" y="2" width="24" height="10" fill="{c}"/>'), f"{name} attempt")
        for name, c in _colours_of(timeline).items()
    ]
    items += [
        (swatch('<rect x="1" y="2" width="24" height="10" fill="#fff" stroke="#555" stroke-dasharray="3 2"/>'
                '<path d="M3 12 L9 2 M9 12 L15 2 M15 12 L21 2" stroke="#555"/>'),
         "hatched, dashed: attempts whose times the history does not record"),
        (swatch('<rect x="1" y="0" width="24" height="14" fill="#e3e5ec"/>'
                '<path d="M1 14 L15 0 M11 14 L25 0" stroke="#b9bdca"/>'), "shaded: the server recorded nothing"),
        (swatch(_shape("lost", 13, 7)), "worker lost"),
        (swatch(_shape("takeover", 13, 7)), "another worker took over"),
        (swatch(_shape("failure", 13, 7)), "failure"),
        (swatch(_shape("fix", 13, 7)), "fixed code ran"),
        (swatch(_shape("refund", 13, 7)), "refund (compensation)"),
        (swatch(_shape("outage", 13, 7)), "outage"),
    ]
    lis = "".join(f"<li>{svg}<span>{escape(text)}</span></li>" for svg, text in items)
    return f'<ul class="legend" aria-label="How to read the picture">{lis}</ul>'


# --- the picture -----------------------------------------------------------------


def _nice_step(span: float) -> float:
    """A tick step of 1, 2 or 5 times a power of ten giving about eight ticks."""
    raw = max(span, 0.001) / 8
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _fmt(t: float | None) -> str:
    return "?" if t is None else f"+{t:.1f} s"


def _colour(activity: str) -> str:
    return _all_colours().get(activity.lower(), _OTHER_COLOUR)


def _attempt_words(bar: Attempt) -> str:
    if bar.first_attempt == 0:
        return "attempts unknown"
    if bar.first_attempt == bar.last_attempt:
        return f"attempt {bar.first_attempt}"
    return f"attempts {bar.first_attempt}\u2013{bar.last_attempt}"


def _bar_text(bar: Attempt) -> str:
    """What a bar stands for, in words (its tooltip and its line in the list)."""
    text = f"{bar.activity} {_attempt_words(bar)}"
    if bar.outcome == "retried":
        text += (f": failed, time not recorded (somewhere between {_fmt(bar.start)} and {_fmt(bar.end)})")
        if bar.failure:
            text += f"; the last of them failed with {bar.failure}"
    elif bar.outcome == "pending":
        text += f": not finished, scheduled at {_fmt(bar.start)}; its attempts' times are not recorded yet"
        if bar.failure:
            text += f"; last failure {bar.failure}"
    else:
        text += f" on {bar.lane}: {bar.outcome.replace('_', ' ')}, {_fmt(bar.start)} to {_fmt(bar.end)}"
        if bar.failure:
            text += f" ({bar.failure})"
    if bar.event_ids:
        text += " [events " + ", ".join(f"#{i}" for i in bar.event_ids) + "]"
    return text


def _mark_text(mark: Mark) -> str:
    event = f" [event #{mark.event_id}]" if mark.event_id is not None else ""
    return f"{_fmt(mark.at)}: {mark.label}{event}"


#: The words next to a mark in the picture; the full label is in its tooltip and in the list.
_MARK_WORDS = {"lost": "lost", "takeover": "took over", "handover": "work moved", "fix": "fixed code ran",
               "refund": "refund", "outage": "outage", "reset": "reset", "cancel": "cancel requested"}


def _picture_words(mark: Mark) -> str:
    if mark.kind == "lost" and mark.event_id is not None:
        return f"lost (last seen at #{mark.event_id})"
    return _MARK_WORDS.get(mark.kind, mark.label)


def _shape(kind: str, x: float, y: float) -> str:
    """A small symbol per mark kind, so marks differ by shape, not only by colour."""
    if kind == "lost":
        return (f'<path d="M{x-6} {y-6} L{x+6} {y+6} M{x-6} {y+6} L{x+6} {y-6}" stroke="#b3261e" '
                'stroke-width="3" stroke-linecap="round"/>')
    if kind in ("takeover", "handover"):
        fill = "#1d2230" if kind == "takeover" else "#fff"
        return f'<path d="M{x-5} {y-7} L{x+7} {y} L{x-5} {y+7} Z" fill="{fill}" stroke="#1d2230" stroke-width="1.5"/>'
    if kind == "failure":
        return (f'<path d="M{x} {y-7} L{x+7} {y} L{x} {y+7} L{x-7} {y} Z" fill="#b3261e" stroke="#fff" '
                f'stroke-width="1"/><path d="M{x} {y-3.5} L{x} {y+1}" stroke="#fff" stroke-width="2"/>'
                f'<circle cx="{x}" cy="{y+3.5}" r="1.1" fill="#fff"/>')
    if kind == "fix":
        return (f'<circle cx="{x}" cy="{y}" r="7" fill="#1f7a4d" stroke="#fff" stroke-width="1"/>'
                f'<path d="M{x-3.5} {y} L{x-1} {y+3} L{x+4} {y-3}" stroke="#fff" stroke-width="2" fill="none"/>')
    if kind == "refund":
        return (f'<rect x="{x-7}" y="{y-7}" width="14" height="14" rx="3" fill="#d9822b" stroke="#fff"/>'
                f'<path d="M{x+3} {y+3} L{x+3} {y-2} L{x-3} {y-2} M{x-1} {y-5} L{x-4} {y-2} L{x-1} {y+1}" '
                'stroke="#fff" stroke-width="1.6" fill="none"/>')
    if kind == "outage":
        return (f'<path d="M{x+2} {y-8} L{x-5} {y+1} L{x} {y+1} L{x-2} {y+8} L{x+5} {y-1} L{x} {y-1} Z" '
                'fill="#6b4fa3" stroke="#fff" stroke-width="0.8"/>')
    if kind == "started":
        return f'<circle cx="{x}" cy="{y}" r="5" fill="#1d2230"/>'
    if kind == "closed":
        return f'<rect x="{x-5}" y="{y-5}" width="10" height="10" fill="#1d2230"/>'
    if kind in ("reset", "cancel"):
        return (f'<rect x="{x-6}" y="{y-6}" width="12" height="12" fill="#fff" stroke="#1d2230" stroke-width="2"/>'
                f'<path d="M{x-3} {y} L{x+3} {y}" stroke="#1d2230" stroke-width="2"/>')
    return f'<circle cx="{x}" cy="{y}" r="4" fill="#555"/>'


class _Picture:
    """Lays out one RunTimeline as an SVG."""

    def __init__(self, timeline: RunTimeline, uid: str) -> None:
        self.t = timeline
        self.uid = uid
        ends = [timeline.span] + [v for b in timeline.attempts for v in (b.start, b.end) if v is not None]
        self.lo = min([0.0] + [v for b in timeline.attempts for v in (b.start,) if v is not None])
        span = max(ends) - self.lo
        if timeline.status == "RUNNING":
            span *= 1.15  # room to the right: the run and its open activities go on past the last event
        self.step = _nice_step(span)
        self.hi = self.lo + max(self.step, math.ceil((span or self.step) / self.step) * self.step)
        self.plot = _WIDTH - _GUTTER - _RIGHT
        #: Lane -> x of the mark symbols drawn so far.
        self.symbols: dict[str, list[float]] = {}

    def x(self, t: float | None) -> float:
        t = self.lo if t is None else t
        return round(_GUTTER + (t - self.lo) / (self.hi - self.lo) * self.plot, 1)

    def lane_rows(self) -> dict[str, int]:
        """How many label rows each lane needs so mark labels do not overlap."""
        rows: dict[str, list[list[tuple[float, float]]]] = {}
        self.label_row: dict[int, int] = {}
        for n, mark in enumerate(self.t.marks):
            if mark.at is None or mark.kind in ("started", "closed"):  # these carry no words in the picture
                continue
            x0, width = self.x(mark.at), len(self.short(_picture_words(mark))) * _CHAR_W + 16
            left = x0 - width + 10 if self.right_half(x0) else x0 - 8
            span = (left, left + width)
            lane_rows = rows.setdefault(mark.lane, [])
            for i, row in enumerate(lane_rows):
                if all(span[1] < a or span[0] > b for a, b in row):
                    row.append(span)
                    self.label_row[n] = i
                    break
            else:
                lane_rows.append([span])
                self.label_row[n] = len(lane_rows) - 1
        return {lane: len(r) for lane, r in rows.items()}

    def right_half(self, x: float) -> bool:
        return x > _GUTTER + self.plot * 0.6

    @staticmethod
    def short(text: str, limit: int = 72) -> str:
        return text if len(text) <= limit else text[: limit - 1] + "\u2026"

    def svg(self) -> str:
        t, uid = self.t, self.uid
        rows = self.lane_rows()
        tops: dict[str, float] = {}
        y = _AXIS_H
        for lane in t.lanes:
            tops[lane.id] = y
            y += _LANE_H + _LABEL_ROW * rows.get(lane.id, 0)
        lanes_bottom = y
        height = lanes_bottom + (_SILENCE_ROW if t.silences else 0) + 6
        title = f"Timeline of workflow {t.workflow_id}, run {t.run_id or '?'}, {t.status}"
        desc = self.summary()
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height:g}" role="img" '
               f'aria-labelledby="{uid}-title {uid}-desc" data-run="{escape(t.workflow_id)}" '
               f'font-family="system-ui, \'DejaVu Sans\', sans-serif" font-size="12">'
               f'<title id="{uid}-title">{escape(title)}</title><desc id="{uid}-desc">{escape(desc)}</desc>'
               f"<defs>{self.patterns()}</defs>"]
        out.append(self.axis(lanes_bottom))
        for i, lane in enumerate(t.lanes):
            out.append(self.lane(lane, tops[lane.id], _LANE_H + _LABEL_ROW * rows.get(lane.id, 0), i))
        for s in t.silences:
            out.append(self.silence(s, lanes_bottom))
        out.append(self.workflow_bar(tops[WORKFLOW_LANE]))
        for bar in t.attempts:
            out.append(self.bar(bar, tops.get(bar.lane, tops.get(UNRECORDED_LANE, _AXIS_H))))
        for n, mark in enumerate(t.marks):
            out.append(self.mark(mark, n, tops.get(mark.lane, _AXIS_H)))
        out.append("</svg>")
        return "".join(out)

    def summary(self) -> str:
        t = self.t
        workers = [lane.id for lane in t.lanes if lane.kind == "worker"]
        lost = [lane.id for lane in t.lanes if lane.lost]
        text = (f"{len(workers)} worker process{'es' if len(workers) != 1 else ''} "
                f"({', '.join(workers) or 'none'}), {len(t.attempts)} activity bars, "
                f"{len(t.silences)} silence{'s' if len(t.silences) != 1 else ''}, over {t.span:.1f} s.")
        if lost:
            text += f" Lost: {', '.join(lost)}."
        kinds = sorted({m.kind for m in t.marks} - {"started", "closed"})
        if kinds:
            text += f" Marked: {', '.join(kinds)}."
        return text + " The list below the picture gives every step in words."

    def patterns(self) -> str:
        uid = self.uid
        out = [f'<pattern id="{uid}-quiet" width="8" height="8" patternUnits="userSpaceOnUse" '
               'patternTransform="rotate(45)"><rect width="8" height="8" fill="#eceef3"/>'
               '<rect width="2" height="8" fill="#cdd1dc"/></pattern>']
        for name, colour in list(_all_colours().items()) + [("other", _OTHER_COLOUR)]:
            out.append(f'<pattern id="{uid}-h-{name}" width="7" height="7" patternUnits="userSpaceOnUse" '
                       f'patternTransform="rotate(45)"><rect width="7" height="7" fill="#fff"/>'
                       f'<rect width="2.5" height="7" fill="{colour}"/></pattern>')
        return "".join(out)

    def axis(self, bottom: float) -> str:
        out = ['<g class="axis" aria-hidden="true">']
        n = 0
        while True:
            tick = self.lo + n * self.step
            if tick > self.hi + 1e-9:
                break
            x = self.x(tick)
            out.append(f'<line x1="{x}" y1="{_AXIS_H - 6}" x2="{x}" y2="{bottom:g}" stroke="#e2e5ee"/>'
                       f'<text x="{x}" y="{_AXIS_H - 10}" text-anchor="middle" fill="#5b6275">{tick:g} s</text>')
            n += 1
        out.append(f'<text x="8" y="{_AXIS_H - 10}" fill="#5b6275">seconds from start</text></g>')
        return "".join(out)

    def lane(self, lane: Lane, top: float, height: float, index: int) -> str:
        fill = "#f6f7fb" if index % 2 == 0 else "#ffffff"
        if lane.kind == "workflow":
            name, sub = "workflow", "start to end"
        elif lane.kind == "unrecorded":
            name, sub = "not recorded", "attempts without times"
        else:
            name, sub = lane.id, "worker process, lost" if lane.lost else "worker process"
        lost = ' data-lost="true"' if lane.lost else ""
        out = [f'<g class="lane" data-lane="{escape(lane.id)}" data-kind="{lane.kind}"{lost}>'
               f'<title>{escape(self.lane_title(lane))}</title>'
               f'<rect x="0" y="{top:g}" width="{_WIDTH}" height="{height:g}" fill="{fill}"/>'
               f'<text x="10" y="{top + 18:g}" font-weight="600" fill="#1d2230">{escape(self.short(name, 28))}</text>'
               f'<text x="10" y="{top + 32:g}" fill="#5b6275">{escape(sub)}</text>']
        if lane.kind == "worker" and lane.first_seen is not None:
            # A thin line for the span in which the worker was seen doing anything.
            y = top + 25
            out.append(f'<line x1="{self.x(lane.first_seen)}" y1="{y:g}" x2="{self.x(lane.last_seen)}" y2="{y:g}" '
                       'stroke="#9aa1b5" stroke-width="2"/>')
        out.append("</g>")
        return "".join(out)

    @staticmethod
    def lane_title(lane: Lane) -> str:
        if lane.kind == "workflow":
            return "The workflow run itself"
        if lane.kind == "unrecorded":
            return ("Attempts that failed before the final one: the history records neither their times nor "
                    "their worker, only the window they lie in and the last one's failure")
        text = f"Worker process {lane.id}: seen from {_fmt(lane.first_seen)} to {_fmt(lane.last_seen)}"
        return text + (", then lost while the run was open" if lane.lost else "")

    def silence(self, s, bottom: float) -> str:
        x0, x1 = self.x(s.start), self.x(s.end)
        kind = "outage" if s.outage else "silence"
        label = f"{s.end - s.start:.1f} s silent: {'outage, ' if s.outage else ''}{s.reason}"
        return (f'<g class="silence" data-silence="{kind}"><title>{escape(label)} (no event between '
                f'#{s.before_event_id} and #{s.after_event_id})</title>'
                f'<rect x="{x0}" y="{_AXIS_H}" width="{max(x1 - x0, 1):g}" height="{bottom - _AXIS_H:g}" '
                f'fill="url(#{self.uid}-quiet)" opacity="0.85"/>'
                f'<text x="{x0 + 3:g}" y="{bottom + 13:g}" fill="#5b6275" font-style="italic">'
                f"{escape(self.short(label, max(8, int((x1 - x0) / _CHAR_W) + 18)))}</text></g>")

    def workflow_bar(self, top: float) -> str:
        t = self.t
        y = top + 25
        x0, x1 = self.x(0.0), self.x(t.span)
        dash = ' stroke-dasharray="6 4"' if t.status == "RUNNING" else ""
        text = "still running" if t.status == "RUNNING" else t.status
        return (f'<g class="run-span" data-status="{escape(t.status)}"><title>{escape(f"run {t.status}, {t.span:.1f} s")}</title>'
                f'<line x1="{x0}" y1="{y:g}" x2="{x1}" y2="{y:g}" stroke="#1d2230" stroke-width="3"{dash}/>'
                f'<text x="{x1 + 4 if not self.right_half(x1) else x1 - 12}" y="{y - 8:g}" '
                f'text-anchor="{"start" if not self.right_half(x1) else "end"}" fill="#1d2230">{escape(text)}</text></g>')

    def bar(self, bar: Attempt, top: float) -> str:
        colour = _colour(bar.activity)
        key = bar.activity.lower() if bar.activity.lower() in _all_colours() else "other"
        x0 = self.x(bar.start)
        x1 = self.x(bar.end) if bar.end is not None else _GUTTER + self.plot - 10
        width = max(x1 - x0, 3)
        y = top + 16
        h = 18
        if bar.recorded:
            fill, stroke = colour, ' stroke="#b3261e" stroke-width="2.5"' if bar.failure else ""
        else:
            fill, stroke = f"url(#{self.uid}-h-{key})", f' stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3"'
        label = f"{bar.activity} #{bar.last_attempt}" if bar.first_attempt == bar.last_attempt and bar.last_attempt \
            else f"{bar.activity} #{bar.first_attempt}\u2013{bar.last_attempt}" if bar.last_attempt else bar.activity
        if not bar.recorded:
            label += " \u00b7 time not recorded" if bar.outcome == "retried" else " \u00b7 still open"
        if bar.outcome not in ("completed", "retried", "pending"):
            label += f" \u00b7 {bar.outcome.replace('_', ' ')}"
        # Words inside the bar start after the marks drawn at its start (a takeover, a fix, a refund).
        # (Marks that meet there are set side by side, see mark().)
        pad = 4 + 16 * sum(1 for m in self.t.marks if m.lane == bar.lane and m.at is not None
                           and -16 <= self.x(m.at) - x0 <= 2)
        inside = width >= len(label) * _CHAR_W + pad and bar.recorded
        if inside:
            text = (f'<text x="{x0 + pad:g}" y="{y + 13:g}" fill="#fff" font-weight="600">{escape(label)}</text>')
        else:
            # Too narrow for its words: they go just above the bar, clear of the marks on it.
            # In the right part they end where the bar ends, clear of a neighbour that starts there.
            anchor_end = self.right_half(x0)
            tx = x0 + width if anchor_end else x0
            text = (f'<text x="{tx:g}" y="{y - 3:g}" font-size="11" fill="#1d2230" '
                    f'text-anchor="{"end" if anchor_end else "start"}" paint-order="stroke" stroke="#fff" '
                    f'stroke-width="3">{escape(label)}</text>')
        open_end = ""
        if bar.end is None:
            open_end = (f'<path d="M{x1:g} {y - 2} L{x1 + 8:g} {y + h / 2:g} L{x1:g} {y + h + 2}" fill="none" '
                        f'stroke="{colour}" stroke-width="2"/>')
        return (f'<g class="attempt" data-activity="{escape(bar.activity)}" data-outcome="{escape(bar.outcome)}" '
                f'data-recorded="{"true" if bar.recorded else "false"}" data-lane="{escape(bar.lane)}">'
                f"<title>{escape(_bar_text(bar))}</title>"
                f'<rect x="{x0:g}" y="{y:g}" width="{width:g}" height="{h}" rx="3" fill="{fill}"{stroke}/>'
                f"{open_end}{text}</g>")

    def mark(self, mark: Mark, n: int, top: float) -> str:
        if mark.at is None:
            return ""
        x = self.x(mark.at)
        y = top + 25
        row = self.label_row.get(n, 0)
        ly = top + _LANE_H - 3 + _LABEL_ROW * row
        label = self.short(_picture_words(mark))
        # Marks at the same moment on the same lane line up side by side instead of hiding each
        # other; the later one moves right, into the bar it starts (a fix, a refund).
        taken = self.symbols.setdefault(mark.lane, [])
        while any(abs(x - other) < 15 for other in taken):
            x += 16
        taken.append(x)
        end = self.right_half(x)
        tx = x + 10 if end else x - 6
        anchor = "end" if end else "start"
        if mark.kind in ("started", "closed"):
            ly = top + 38  # these sit on the workflow line; their words are in the list and tooltip
            label = ""
        lead = (f'<line x1="{x}" y1="{y + 7:g}" x2="{x}" y2="{ly - 9:g}" stroke="#9aa1b5" stroke-width="1"/>'
                if label and ly - 9 > y + 7 else "")
        words = (f'<text x="{tx:g}" y="{ly:g}" text-anchor="{anchor}" fill="#1d2230" paint-order="stroke" '
                 f'stroke="#fff" stroke-width="3">{escape(label)}</text>') if label else ""
        event = f' data-event="{mark.event_id}"' if mark.event_id is not None else ""
        return (f'<g class="mark" data-mark="{escape(mark.kind)}" data-lane="{escape(mark.lane)}"{event}>'
                f"<title>{escape(_mark_text(mark))}</title>{lead}{_shape(mark.kind, x, y)}{words}</g>")


def _figure(timeline: RunTimeline, uid: str) -> str:
    picture = _Picture(timeline, uid)
    steps: list[tuple[float, int, str]] = []
    for bar in timeline.attempts:
        steps.append((bar.start if bar.start is not None else 0.0, 1, _bar_text(bar)))
    for s in timeline.silences:
        steps.append((s.start, 0, f"{_fmt(s.start)} to {_fmt(s.end)}: {s.end - s.start:.1f} s with no event"
                                  f"{' (outage)' if s.outage else ''}: {s.reason} "
                                  f"[between events #{s.before_event_id} and #{s.after_event_id}]"))
    for mark in timeline.marks:
        steps.append((mark.at if mark.at is not None else 0.0, 2, _mark_text(mark)))
    steps.sort(key=lambda item: (item[0], item[1]))
    items = "".join(f"<li>{escape(text)}</li>" for _, _, text in steps)
    items += "".join(f"<li>still open: {escape(p)}</li>" for p in timeline.pending)
    return (f'<figure id="{uid}" aria-labelledby="{uid}-cap"><figcaption id="{uid}-cap">The run, step by step'
            f"</figcaption>{picture.svg()}{_legend(timeline)}"
            f'<details class="events" open><summary>The same in words ({len(steps)} steps)</summary>'
            f'<ol class="events">{items}</ol></details></figure>')


# --- the class page (grader batch --format html) ------------------------------------------

_CLASS_CSS = """
table.class { border-collapse: collapse; width: 100%; margin: 10px 0; }
table.class th, table.class td { text-align:left; vertical-align: top; padding: 6px 8px;
  border-top: 1px solid var(--line); }
table.class th { font-size: 0.8rem; color: var(--muted); font-weight:600; }
table.class td.points { text-align:right; }
.flag { color: var(--fail); font-weight: 600; }
"""

#: How a learner's status shows as a badge (a colour class and a word).
_LEARNER_BADGE = {"graded": "pass", "missing": "bonus", "not-gradable": "error", "unreadable-files": "pending"}


def _esc(text: object) -> str:
    """Text from a history or roster for the page: control characters shown, markup escaped."""
    from grader.escape import visible_controls

    return escape(visible_controls(text))


def render_gradebook(result) -> str:
    """The class as one self-contained HTML page (``grader batch --format html``).

    The same table as the markdown class summary (learner, status, flags,
    score, each experiment's status and points), who needs a look, and the
    regrade diff; the styles are the report page's, nothing is loaded from
    elsewhere, and every name and finding is escaped.
    """
    from grader.formats.classbook import headline, late_words, score_words, tells_late, why

    title = "Failure Lab class gradebook"
    parts = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
             '<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{_esc(title)}</title><style>{_CSS}{_CLASS_CSS}</style></head><body>"
             f"<header><h1>{_esc(title)}</h1><p class=\"meta\">{_esc(headline(result))}</p></header><main>"]
    head = "".join(f'<th scope="col">{_esc(t)}'
                   + (' <span class="note">(optional)</span>' if i in result.optional else "") + "</th>"
                   for i, t in result.experiments)
    late = tells_late(result)  # a column only when a due date or the LMS said who was late
    rows = []
    for row in result.learners:
        cells = []
        for exp_id, _ in result.experiments:
            cell = row.cells.get(exp_id)
            if cell is None:
                cells.append('<td class="note">-</td>')
            else:
                shown = "" if cell.points is None else f" {cell.points:g}"
                cells.append(f'<td data-experiment="{_esc(exp_id)}" data-status="{_esc(cell.status)}">'
                             f"{_badge(cell.status)}{shown}</td>")
        flags = " ".join(f'<span class="flag">{_esc(f)}</span>' for f in row.flags)
        rows.append(f'<tr data-learner="{_esc(row.learner)}" data-status="{_esc(row.status)}">'
                    f"<th scope=\"row\"><code>{_esc(row.learner)}</code></th>"
                    f"<td>{_badge(_LEARNER_BADGE.get(row.status, 'error'), row.status)}</td><td>{flags}</td>"
                    f'<td class="points">{_esc(score_words(row))}</td>'
                    + (f"<td>{_esc(late_words(row.late))}</td>" if late else "") + f'{"".join(cells)}</tr>')
    parts.append('<table class="class" aria-label="learners"><thead><tr><th scope="col">Learner</th>'
                 '<th scope="col">Status</th><th scope="col">Flags</th><th scope="col">Score</th>'
                 + ('<th scope="col">Late</th>' if late else "") + f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    look = [row for row in result.learners if row.status != "graded" or row.flags or row.duplicates]
    if look:
        items = "".join(f"<li><code>{_esc(r.learner)}</code> ({_esc(', '.join([r.status, *r.flags]))}): "
                        f"{_esc(why(r))}</li>" for r in look)
        parts.append(f'<section aria-label="needs a look"><h2>Needs a look</h2><ul>{items}</ul></section>')
    if result.changes is not None:
        changed = len({c.learner for c in result.changes})
        parts.append(f"<section aria-label=\"regrade\"><h2>Regrade: {changed} learners changed</h2>")
        if result.changes:
            trs = "".join(f"<tr><th scope=\"row\"><code>{_esc(c.learner)}</code></th>"
                          f"<td>{_esc(c.experiment or '(status)')}</td><td>{_esc(c.old)}</td>"
                          f"<td>{_esc(c.new)}</td><td>{_esc(c.finding)}</td></tr>" for c in result.changes)
            parts.append('<table class="class"><thead><tr><th scope="col">Learner</th><th scope="col">Experiment'
                         '</th><th scope="col">Was</th><th scope="col">Now</th><th scope="col">Finding</th>'
                         f"</tr></thead><tbody>{trs}</tbody></table>")
        parts.append("</section>")
    parts.append("</main>")
    rubric = f"Rubric {_esc(result.rubric.get('id', ''))} {_esc(result.rubric.get('version', ''))}. " \
        if result.rubric else ""
    parts.append(f"<footer>{rubric}Each learner's full report is in feedback/&lt;learner&gt;.md beside the "
                 "gradebook. This page is self-contained: no script, nothing loaded from elsewhere.</footer>")
    parts.append("</body></html>\n")
    return "".join(parts)
