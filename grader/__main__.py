"""The ``grader`` console script, and ``python -m grader``.

Importing the command line takes a moment; Ctrl+C or a crash during those
imports must still end as one line and the right exit code. So this module
starts guarding before it imports anything of the grader, and what it needs to
report (the small, standard-library-only :mod:`grader.errors`) is imported only
when there is something to report.
"""

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
    run()


if __name__ == "__main__":
    main()
