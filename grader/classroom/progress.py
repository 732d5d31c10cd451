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
        self.started = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._next_step = 1

    def start(self, total: int) -> None:
        """Begin counting ``total`` learners."""
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        if not self.quiet and not self._tty:
            self._say(f"grader: grading {total} learners")

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
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
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
