"""The one exception hierarchy of the grader.

Every error a user can cause or fix is a :class:`GraderError`; the CLI turns
it into a one-line message and the exit code it carries, in one place.
"""

#: Exit codes, part of the public interface CI pipelines rely on.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NO_SERVER = 3
EXIT_ENVIRONMENT = 4
#: Another batch is writing into the same ``--out`` folder: wait, or choose another.
EXIT_BUSY = 5
#: A bug of ours, never a grade (EX_SOFTWARE in sysexits.h).
EXIT_INTERNAL = 70
#: Ctrl+C (128 + SIGINT, what a shell reports for it).
EXIT_INTERRUPTED = 130


class GraderError(Exception):
    """Base of every error the grader reports as a plain message."""

    exit_code = EXIT_BAD_INPUT
    #: What the one-line message starts with after ``grader: ``.
    label = "error: "


class BadInputError(GraderError):
    """A history, rubric, app folder or option the grader cannot use."""

    exit_code = EXIT_BAD_INPUT


class HistoryError(BadInputError):
    """A history file that is unreadable, malformed or not a MoneyTransfer history."""


class RubricError(BadInputError):
    """A rubric that cannot be found or does not match the rubric schema."""


class AppError(BadInputError):
    """An app folder that is not a runnable transfer app."""


class ServerUnavailableError(GraderError):
    """No Temporal server answers at the address, or the namespace is missing."""

    exit_code = EXIT_NO_SERVER


class EnvironmentProblem(GraderError):
    """This machine cannot do what was asked: a busy port, a missing binary."""

    exit_code = EXIT_ENVIRONMENT


class PortInUseError(EnvironmentProblem):
    """A port the embedded server needs is already taken."""


class DiskFullError(EnvironmentProblem):
    """The disk holding an output is full, over quota, or past the process's file-size limit."""


class OutputBusyError(GraderError):
    """Another batch is writing into the same ``--out`` folder."""

    exit_code = EXIT_BUSY


class NothingToGradeError(GraderError):
    """No workflow matched: the learner has nothing to show yet (a grade of nothing, exit 1)."""

    exit_code = EXIT_FAILED
    label = ""


class SimulationError(GraderError):
    """An experiment did not reach the state it waited for in time."""

    exit_code = EXIT_FAILED


def write_crash_report(err: BaseException) -> str:
    """Write ``err``'s traceback, with the versions and arguments, to a new file; return its path.

    Used for exceptions that are not :class:`GraderError`: those are bugs of
    ours, which the user sees as one line pointing at this file. Only the
    standard library is imported here, so it works even when the crash
    happened while the rest of the grader was being imported.
    """
    import platform
    import sys
    import tempfile
    import traceback

    from grader import __version__

    fd, path = tempfile.mkstemp(prefix="grader-internal-error-", suffix=".txt")
    with open(fd, "w") as out:
        out.write(f"grader {__version__}, Python {platform.python_version()} on {platform.platform()}\n")
        out.write(f"arguments: {sys.argv[1:]!r}\n\n")
        out.write("".join(traceback.format_exception(err)))
    return path


def internal_error_line(err: BaseException) -> str:
    """The one line printed for a bug of ours; the traceback goes to a file it names."""
    what = " ".join(f"{type(err).__name__}: {err}".split())
    if len(what) > 200:
        what = what[:197] + "..."
    try:
        where = write_crash_report(err)
    except OSError as write_err:  # no writable temp folder: still one line, and say so
        where = f"nowhere (could not write a report: {write_err.strerror})"
    return f"grader: internal error: {what}; details in {where}"
