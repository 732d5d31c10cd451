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


class NothingToGradeError(GraderError):
    """No workflow matched: the learner has nothing to show yet (a grade of nothing, exit 1)."""

    exit_code = EXIT_FAILED
    label = ""


class SimulationError(GraderError):
    """An experiment did not reach the state it waited for in time."""

    exit_code = EXIT_FAILED
