"""Child processes that never outlive the grader.

The embedded server and the workers that ``grader simulate`` starts are real
processes. A CI job that kills the grader must not leave them running, so on
Linux every child asks the kernel to SIGKILL it when its parent dies
(``PR_SET_PDEATHSIG``); everywhere, :func:`stop_process` ends them politely
first and by force after a grace period.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Mapping, Sequence

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    # Runs in the child between fork and exec.
    if not _killed_with_parent():
        return
    # The parent may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(1)


def _killed_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies (PR_SET_PDEATHSIG); False if it cannot."""
    try:
        # The process's own symbols, libc's among them: looking libc up by name (ctypes.util.find_library)
        # runs ldconfig in a subprocess, a few milliseconds, and between fork and exec at that.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return True


def die_with_parent(parent: int) -> None:
    """In a forked pool process (a batch's grading or replayer process): end as soon as the batch ends.

    A batch killed with SIGKILL cannot stop its pool, and orphaned processes
    would grade on for minutes holding the caller's stdout and stderr (a CI
    step then never ends). Linux delivers SIGKILL to the process when its
    parent dies; the check after it covers a parent that died before the
    call. Elsewhere the processes end when their task pipe closes.
    """
    if sys.platform.startswith("linux"):
        _killed_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    # Ctrl+C reaches the whole process group: a pool process just ends (no traceback of its own);
    # the batch itself cleans up.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own session, tied to this process's life.

    Its own session keeps a Ctrl+C in the terminal from reaching it directly:
    the grader decides when and how each child stops.
    """
    parent = os.getpid()
    preexec = (lambda: _die_with_parent(parent)) if sys.platform.startswith("linux") else None
    return subprocess.Popen(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=preexec,
    )


def stop_process(
    process: subprocess.Popen[bytes],
    *,
    sig: int = signal.SIGTERM,
    grace: float = 10.0,
) -> int | None:
    """Send ``sig`` (after SIGCONT, in case it was paused), wait ``grace`` seconds, then SIGKILL.

    Returns the exit code, or None if the process could not be reaped.
    """
    if process.poll() is not None:
        return process.returncode
    for s in (signal.SIGCONT, sig):
        try:
            process.send_signal(s)
        except ProcessLookupError:
            break
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        try:
            return process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


def tail(path: Path | None, lines: int = 5) -> str:
    """The last ``lines`` lines of a log file, joined with ' | ', for error messages."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])
