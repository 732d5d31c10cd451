"""The ``grader`` console script, and ``python -m grader``.

Importing the command line takes a moment; Ctrl+C or a crash during those
imports must still end as one line and the right exit code. So this module
starts guarding before it imports anything of the grader, and what it needs to
report (the small, standard-library-only :mod:`grader.errors`) is imported only
when there is something to report.
"""

import os
import sys


def main() -> None:
    """Import the command line under guard, then run it (it exits by itself)."""
    try:
        from grader.cli import main as run
    except KeyboardInterrupt:
        print("grader: interrupted", file=sys.stderr)
        sys.exit(130)  # grader.errors.EXIT_INTERRUPTED
    except Exception as err:  # a broken install: say so in one line, not a traceback
        from grader.errors import EXIT_INTERNAL, internal_error_line

        print(internal_error_line(err), file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
    # What the imports made (modules, classes, click's tables) lives as long as the
    # process, so the cyclic garbage collector is told to skip it from now on: walking
    # those objects during the command and again at exit was about 5 ms of a
    # `grader check --history FILE`, whose whole budget is 4x a bare JSON read
    # (issue 18, benchmarks/bench_startup.py). Only this console-script entry does
    # it: a program importing grader keeps its own garbage collection as it was.
    import gc

    gc.freeze()
    try:
        run()
    except SystemExit as done:
        _leave(done.code)


def _leave(code: object) -> None:
    """Exit with ``code``, skipping the interpreter's teardown once the Temporal SDK is loaded.

    The SDK's core runs native threads that can outlive Python; after a
    failed connection they sometimes abort the teardown (SIGABRT, exit 134:
    measured 2 of 16 runs of `grader check` against a closed port), which
    would replace the exit code CI pipelines read. The apps skip that
    teardown the same way.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 2  # a message exit of ours is a usage problem, never "the learner failed"
    if "temporalio" not in sys.modules:
        sys.exit(code)
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):  # a closed pipe, or stdout dropped after one
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    os._exit(code)


if __name__ == "__main__":
    main()
