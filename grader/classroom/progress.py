"""Progress of a batch on stderr: learners done/total, elapsed time and an estimate of what is left.

On a terminal one line is redrawn in place (at most ten times a second);
anywhere else (a CI log, a file) a plain line is printed each time another
10% is done, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{sec:02d}s"


class Progress:
    """Counts learners as they are graded and shows it on ``stream``; silent with ``quiet``."""

    def __init__(self, *, stream: TextIO | None = None, quiet: bool = False, width: int = 24) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.width = width
        self.total = 0
        self.done = 0
        #: Learners an interrupted batch had graded (counted in ``done``, not in the rate).
        self.resumed = 0
        self.started = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._next_step = 1

    def start(self, total: int, *, resumed: int = 0) -> None:
        """Begin counting ``total`` learners, ``resumed`` of them graded already by an interrupted batch."""
        self.total = total
        self.done = self.resumed = resumed
        self.started = time.monotonic()
        while self.total and self.done * 10 >= self._next_step * self.total:
            self._next_step += 1
        if not self.quiet and not self._tty:
            already = f" ({resumed} graded before the interruption, {total - resumed} to go)" if resumed else ""
            self._say(f"grader: grading {total} learners{already}")

    def say(self, text: str) -> None:
        """One line of news on the stream (unless quiet), between progress lines."""
        if self.quiet:
            return
        if self._tty:
            self.stream.write("\r\x1b[K")
        self._say("grader: " + text)

    def advance(self, n: int = 1) -> None:
        """``n`` more learners are graded."""
        self.done += n
        if self.quiet:
            return
        if self._tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self.stream.write("\r" + self.line() + "\x1b[K")
                self.stream.flush()
        elif self.total and self.done * 10 >= self._next_step * self.total:
            while self.done * 10 >= self._next_step * self.total:
                self._next_step += 1
            self._say("grader: " + self.line())

    def line(self) -> str:
        """The progress as one line: ``[#####-----] 40/100 learners  1.2 s elapsed  ETA 1.8 s``."""
        elapsed = time.monotonic() - self.started
        share = self.done / self.total if self.total else 1.0
        # The rate is this session's: learners resumed from an interrupted batch took no time here.
        fresh = self.done - self.resumed
        eta = elapsed / fresh * (self.total - self.done) if fresh > 0 else (0.0 if self.done >= self.total else None)
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        return (f"[{bar}] {self.done}/{self.total} learners ({share:.0%})  {_clock(elapsed)} elapsed  "
                f"ETA {'?' if eta is None else _clock(eta)}")

    def close(self) -> None:
        """End the redrawn line on a terminal."""
        if not self.quiet and self._tty and self.total:
            self.stream.write("\n")
            self.stream.flush()

    def _say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
