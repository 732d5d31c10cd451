"""``grader check --watch``: grade again every few seconds until the experiments pass.

A learner in the middle of an experiment wants to see the grade move from
*pending* to *pass* without retyping a command. :func:`watch` polls a grading
function, shows the grade only when it changed, and returns the report as
soon as it passes:

- on a terminal, the table is redrawn in place (the previous block is
  cleared with ANSI escapes), under one line saying what is watched;
- anywhere else (a pipe, a log file, CI), one line per change, so the output
  reads as a log.

A server that stops answering (a learner pausing it for the network-partition
experiment) is shown as such and watched through; it does not end the watch.
The CLI stays thin: it builds a poll function and calls :func:`watch`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence, TextIO

from temporalio.service import RPCError

from grader.errors import ServerUnavailableError
from grader.engine.report import ExperimentReport, Report
from grader.engine.rubric import DEFAULT_RUBRIC, Rubric, load_rubric
from grader.packs import all_packs

if TYPE_CHECKING:  # grader.sources.connect is imported only when a server is watched
    from grader.sources.connect import ConnectionSettings, Target

#: Seconds between two reads when nothing else is said.
DEFAULT_INTERVAL = 2.0

_WORD = {"pass": "PASS", "fail": "FAIL", "pending": "PENDING", "error": "ERROR"}
_RUNNING = re.compile(r"^the workflow is still running \((.*)\)$")


def waiting_for(exp: ExperimentReport) -> str | None:
    """What a pending experiment's run waits for, from its first pending check (None if not pending)."""
    for chk in exp.checks:
        if chk.status == "pending":
            found = _RUNNING.match(chk.message)
            return found.group(1) if found else chk.message
    return None


def summary_line(report: Report) -> str:
    """One line for the whole grade: each experiment's status and points, and what a pending one waits for."""
    parts, waits = [], []
    for exp in report.experiments:
        parts.append(f"{exp.id} {_WORD.get(exp.status, exp.status)} {exp.score:g}/{exp.max_score:g}")
        waiting = waiting_for(exp)
        if waiting and waiting not in waits:  # experiments graded on one run wait for the same thing
            waits.append(waiting)
    total = f"total {_WORD.get(report.status, report.status)} {report.score:g}/{report.max_score:g}"
    line = "; ".join(parts + [total])
    line = f"{line} (waiting: {' | '.join(waits)})" if waits else line
    if report.in_progress is not None:
        line = f"{report.in_progress.line()} | {line}"
    return line


def finished(report: Report) -> bool:
    """True when the watch may end: every experiment asked for passes and no run is still open.

    A run in progress is followed until it closes, even when older runs
    already pass: it is the one the learner is working on.
    """
    return report.passed and report.in_progress is None


@dataclass
class Screen:
    """Where the grade is shown: in place on a terminal, or one line per change elsewhere."""

    out: TextIO
    #: True on a terminal (redraw in place); False writes one line per change.
    tty: bool
    #: Lines drawn by the previous block (terminal only), to clear before the next.
    drawn: int = 0

    def show(self, block: str, line: str) -> None:
        """Replace the previous block with ``block`` (terminal), or append ``line`` with a time stamp."""
        if not self.tty:
            self.out.write(f"[{time.strftime('%H:%M:%S')}] {line}\n")
            self.out.flush()
            return
        rows = shutil.get_terminal_size((100, 40)).lines
        if self.drawn and self.drawn < rows:
            # Up to the first line of the previous block, then clear to the end of the screen.
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
        elif self.drawn:
            # Taller than the screen: the top has scrolled away, so start from a clear screen.
            self.out.write("\x1b[H\x1b[2J")
        text = block if block.endswith("\n") else block + "\n"
        self.out.write(text)
        self.out.flush()
        self.drawn = text.count("\n")


async def watch(
    poll: Callable[[], Awaitable[Report]],
    *,
    what: str,
    interval: float = DEFAULT_INTERVAL,
    out: TextIO | None = None,
    tty: bool | None = None,
    render_table: Callable[[Report], str] | None = None,
    poll_timeout: float | None = None,
    nothing: str | None = None,
) -> Report:
    """Call ``poll`` every ``interval`` seconds and show the grade when it changed; return it once it passes.

    A run still open is followed until it closes (see :func:`finished`).

    ``what`` names what is watched (shown on a terminal). ``tty`` defaults to
    whether ``out`` is a terminal. A poll slower than ``poll_timeout`` (a
    frozen server) or a server that stops answering is shown and retried.
    ``nothing`` is the one line shown (instead of a table of zeros) while
    there is no run at all to grade. Runs until the report passes or the
    caller is interrupted (Ctrl+C).
    """
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    if render_table is None:
        from grader.formats.table import render as render_table
    screen = Screen(out, tty)
    poll_timeout = poll_timeout or max(10.0, 3 * interval)
    shown: str | None = None
    while True:
        report: Report | None = None
        try:
            report = await asyncio.wait_for(poll(), poll_timeout)
            if report.graded_nothing:
                # Nothing to grade yet: one line, the same the plain check says, while the learner starts a run.
                problems = "; ".join(report.errors)
                line = f"{problems or nothing or 'nothing to grade yet'}; still watching"
                block_body = line + "\n"
            else:
                line = summary_line(report)
                block_body = render_table(report)
        except (ServerUnavailableError, RPCError, asyncio.TimeoutError) as err:
            why = str(err) or f"no answer within {poll_timeout:g} s"
            line = f"the server is not answering ({why}); still watching"
            block_body = line + "\n"
        state = line if not tty else block_body
        if state != shown:
            shown = state
            head = (f"Watching {what}, every {interval:g} s; last change at {time.strftime('%H:%M:%S')}. "
                    "Ctrl+C to stop.\n\n")
            done = "\nEvery experiment asked for passes.\n" if report is not None and finished(report) else ""
            screen.show(head + block_body + done, line)
        if report is not None and finished(report):
            return report
        await asyncio.sleep(interval)


async def watch_live(
    connection: "ConnectionSettings | Target | str | None" = None,
    namespace: str | None = None,
    *,
    workflow_ids: Sequence[str] = (),
    learner: str | None = None,
    limit: int | None = None,
    rubric: str | Path | Rubric | None = DEFAULT_RUBRIC,
    experiments: Sequence[str] | None = None,
    interval: float = DEFAULT_INTERVAL,
    out: TextIO | None = None,
    tty: bool | None = None,
) -> Report:
    """Watch a learner's runs on a server (one connection for the whole watch) until they pass.

    ``connection`` is where, as :func:`grader.sources.connect.as_target` takes it (a
    plain string is an address). Raises :class:`ServerUnavailableError` when
    no server answers at the start.
    """
    from grader.api import grade_loaded, nothing_found_message
    from grader.sources.connect import as_target, connect
    from grader.sources.live import DEFAULT_LIMIT, listed_label, read_live

    all_packs()
    if rubric is not None:  # None: each poll grades every run by its own pack (grade_loaded)
        rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    target = as_target(connection, namespace)
    client = await connect(target)

    async def poll() -> Report:
        loaded = await read_live(target, workflow_ids=workflow_ids, learner=learner,
                                 limit=limit or DEFAULT_LIMIT, client=client)
        return grade_loaded(loaded, rubric=rubric, experiments=experiments, learner=learner)

    where = f"{target.address} (namespace {target.namespace})"
    who = f"learner {learner}" if learner else ", ".join(workflow_ids) or f"every {listed_label()} workflow"
    return await watch(poll, what=f"{who} at {where}", interval=interval, out=out, tty=tty,
                       poll_timeout=max(target.rpc_timeout * 2, 3 * interval),
                       nothing=nothing_found_message(target.address, target.namespace, learner))


async def watch_files(
    paths: Sequence[Path],
    *,
    rubric: str | Path | Rubric = DEFAULT_RUBRIC,
    experiments: Sequence[str] | None = None,
    interval: float = DEFAULT_INTERVAL,
    out: TextIO | None = None,
    tty: bool | None = None,
    max_history_bytes: int | None = None,
) -> Report:
    """Watch exported history files (read again each time) until they pass.

    Files larger than ``max_history_bytes`` (default: the reader's limit) are refused unread.
    """
    from grader.api import grade_loaded
    from grader.engine.history import DEFAULT_MAX_HISTORY_BYTES
    from grader.sources.files import read_files

    all_packs()
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    max_bytes = max_history_bytes or DEFAULT_MAX_HISTORY_BYTES

    async def poll() -> Report:
        return grade_loaded(read_files(paths, max_bytes=max_bytes), rubric=rubric, experiments=experiments)

    return await watch(poll, what=", ".join(map(str, paths)), interval=interval, out=out, tty=tty)
