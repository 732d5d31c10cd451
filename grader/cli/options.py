"""Options shared by several commands, and the one way a report is printed and exits."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

from grader import defaults

# --- options shared by several commands -------------------------------------

EXPERIMENT_IDS = tuple(defaults.EXPERIMENTS)


#: The flags of every command that talks to a server, named as the `temporal` CLI names them.
#: None of them has a default here: unset means "ask the environment, then the profile, then
#: grader.defaults" (grader.sources.connect.resolve), so a default is written once and never shadows a variable.
_CONNECTION_FLAGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--address", dict(metavar="HOST:PORT", help="Temporal server gRPC address (or TEMPORAL_ADDRESS)  "
                                               f"[default: {defaults.DEFAULT_ADDRESS}]")),
    ("--namespace", dict(help=f"Temporal namespace (or TEMPORAL_NAMESPACE)  [default: {defaults.DEFAULT_NAMESPACE}]")),
    ("--api-key", dict(help="API key, e.g. for Temporal Cloud (or TEMPORAL_API_KEY); turns TLS on.")),
    ("--tls", dict(is_flag=True, default=None, help="Connect with TLS (or TEMPORAL_TLS=true).")),
    ("--tls-cert-path", dict(type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                             help="Client certificate for mutual TLS (or TEMPORAL_TLS_CLIENT_CERT_PATH).")),
    ("--tls-key-path", dict(type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                            help="Client certificate's private key (or TEMPORAL_TLS_CLIENT_KEY_PATH).")),
    ("--tls-ca-path", dict(type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                           help="CA of the server's certificate (or TEMPORAL_TLS_SERVER_CA_CERT_PATH).")),
    ("--tls-server-name", dict(metavar="NAME",
                               help="Name the server's certificate holds (or TEMPORAL_TLS_SERVER_NAME).")),
    ("--profile", dict(metavar="NAME", help="Profile of temporal.toml (or TEMPORAL_PROFILE)  [default: default]")),
    ("--config-file", dict(type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                           help="temporal.toml to read (or TEMPORAL_CONFIG_FILE)  "
                                "[default: ~/.config/temporalio/temporal.toml]")),
    ("--ui-url", dict(metavar="URL", help="Web UI base for links (or TEMPORAL_UI_URL, a profile's ui_url, "
                                          "the running `grader server`)  [default: no links]")),
    ("--rpc-timeout", dict(type=click.FloatRange(min=0, min_open=True), default=defaults.RPC_TIMEOUT,
                           show_default=True, metavar="SECONDS",
                           help="Longest a single call to the server may take.")),
)


def _param_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


class DeferredConnection:
    """A command's ``ConnectionSettings``, built from its flags the first time it is used.

    Every command that can talk to a server takes the connection flags, but
    ``grader check --history FILE`` never does: importing
    :mod:`grader.sources.connect` and creating its dataclasses cost about 2 ms
    of that command's start-up (issue 18). Attributes and methods
    (``resolve()``, ``address``, ``profile``...) are the real settings' own;
    :meth:`settings` hands over the real object where one is needed.
    """

    __slots__ = ("_flags", "_settings")

    def __init__(self, flags: dict[str, Any]) -> None:
        self._flags = flags
        self._settings: Any = None

    def settings(self) -> Any:
        """The :class:`grader.sources.connect.ConnectionSettings` of the flags (made once)."""
        if self._settings is None:
            from grader.sources.connect import ConnectionSettings

            self._settings = ConnectionSettings(**self._flags)
        return self._settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self.settings(), name)

    def __repr__(self) -> str:
        return repr(self.settings())


def connection_options(func: Any) -> Any:
    """Every connection flag, handed to the command as one ``connection: ConnectionSettings``.

    Flags beat environment variables, which beat the temporal.toml profile,
    which beats the defaults; :mod:`grader.sources.connect` does that layering.
    The settings are made when the command first uses them (:class:`DeferredConnection`).
    """
    names = [_param_name(flag) for flag, _ in _CONNECTION_FLAGS]

    @functools.wraps(func)
    def with_connection(*args: Any, **kwargs: Any) -> Any:
        kwargs["connection"] = DeferredConnection({name: kwargs.pop(name) for name in names})
        return func(*args, **kwargs)

    for flag, attrs in reversed(_CONNECTION_FLAGS):
        with_connection = click.option(flag, **attrs)(with_connection)
    return with_connection


def output_options(func: Any) -> Any:
    """--format and --output, the same on every command that prints a report.

    The command receives ``output_format`` (a name of ``grader.formats.FORMATS``)
    and ``output_file`` (a Path or None) and hands both to :func:`emit_report`.
    """
    from grader.formats import FORMATS

    func = click.option("--output", "output_file", type=click.Path(dir_okay=False, path_type=Path),
                        metavar="FILE", default=None,
                        help="Write the report to FILE (atomically) instead of stdout.")(func)
    return click.option("--format", "output_format", type=click.Choice(list(FORMATS)),
                        default=next(iter(FORMATS)), show_default=True,
                        help="table for people; json for programs (stdout then holds only the JSON); "
                             "markdown for PR comments and feedback; html (one self-contained page); gradescope (results.json); junit "
                             "(GitLab, Jenkins); github (annotations and job summary); classroom50 "
                             "(Classroom 50's result.json); classroom (legacy: the result=... line for "
                             "GitHub Classroom's reporter).")(func)


def rubric_option(func: Any) -> Any:
    """--rubric NAME|PATH."""
    from grader.engine.rubric import DEFAULT_RUBRIC

    return click.option("--rubric", default=DEFAULT_RUBRIC, show_default=True, metavar="NAME|PATH",
                        help="A bundled rubric name or a rubric file (JSON or TOML).")(func)


class ExperimentId(click.ParamType):
    """An experiment id of any pack found (checked when the option is read, after --pack-path)."""

    name = "experiment"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from grader.engine.catalog import EXPERIMENTS
        from grader.packs import all_packs

        all_packs()
        if value not in EXPERIMENTS:
            self.fail(f"{value!r} is not an experiment of any pack: choose from {', '.join(EXPERIMENTS)}", param, ctx)
        return value

    def get_metavar(self, param: Any, *args: Any, **kwargs: Any) -> str:
        return "[" + "|".join(EXPERIMENT_IDS) + "|...]"


EXPERIMENT = ExperimentId()


def _add_pack_path(ctx: Any, param: Any, value: tuple[Path, ...]) -> None:
    from grader.packs import add_pack_path

    if value:
        add_pack_path(*value)


def pack_options(*, auto: bool) -> Any:
    """--pack ID and --pack-path DIR. ``auto``: without --pack the pack is told from the histories."""
    from grader.packs import DEFAULT_PACK, PACK_PATH_ENV

    default = ("told from each history's workflow type (files), else " if auto else "") + DEFAULT_PACK

    def decorate(func: Any) -> Any:
        func = click.option("--pack-path", multiple=True, type=click.Path(file_okay=False, path_type=Path),
                            metavar="DIR", is_eager=True, expose_value=False, callback=_add_pack_path,
                            help=f"Also look for course packs in DIR (repeatable; or {PACK_PATH_ENV}).")(func)
        return click.option("--pack", "pack_id", metavar="ID",
                            help=f"The course pack to use (`grader packs` lists them)  [default: {default}]")(func)
    return decorate


def apply_pack(pack_id: str | None, rubric: Any, *, ctx: click.Context | None = None) -> tuple[Any, Any]:
    """The pack named by --pack (None when not named) and the rubric to grade with.

    A named pack's rubric replaces the default one (an explicit --rubric
    wins), and live reads list that pack's workflow type.
    """
    if pack_id is None:
        return None, rubric
    from grader.packs import get_pack
    from grader.sources.live import use_pack

    pack = get_pack(pack_id)
    use_pack(pack)
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is not None:  # the choice lasts as long as the command (a test or a notebook runs several)
        ctx.call_on_close(lambda: use_pack(None))
    return pack, (rubric if rubric_named(ctx) else str(pack.rubric_path))


def rubric_named(ctx: click.Context | None = None) -> bool:
    """True when the command line (or the environment) named a --rubric rather than leaving the default."""
    ctx = ctx or click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source("rubric") not in (None, click.core.ParameterSource.DEFAULT)


def rubric_for_files(paths: Any, rubric: Any, *, ctx: click.Context | None = None) -> Any:
    """Without --pack or --rubric: the rubric of the packs the history files belong to (pack by pack)."""
    if rubric_named(ctx):
        return rubric
    from grader.packs import rubric_for_paths

    return rubric_for_paths(list(paths)) or rubric


def grading_options(func: Any) -> Any:
    """--experiment and --rubric."""
    func = rubric_option(func)
    return click.option("--experiment", "experiments", multiple=True, type=EXPERIMENT,
                        help="Grade only this experiment (repeatable); the exit code then speaks for "
                             "these alone.")(func)


def max_history_bytes_option(func: Any) -> Any:
    """--max-history-bytes: the largest history file read (bigger ones are refused unread)."""
    from grader.engine.history import DEFAULT_MAX_HISTORY_BYTES

    return click.option("--max-history-bytes", type=click.IntRange(1), default=DEFAULT_MAX_HISTORY_BYTES,
                        show_default=True, metavar="BYTES",
                        help="Refuse history files larger than this, unread.")(func)


def documents_on_error(output_format: str, output_file: Path | None, *, rubric: Any = None,
                       experiments: tuple[str, ...] = ()) -> Any:
    """A context in which an error before grading still gives the asked-for format its document.

    CI must never go silent: when the app does not start, no server answers or
    an input is refused, every format but the table (whose reader is a person,
    told in one line) still writes its document, as ``--output`` or stdout
    would get it: score 0, each experiment ungraded, the error as the finding
    (:func:`grader.engine.report.error_report`). The error's line still goes to
    stderr and the exit code stays the error's own (2, 3 or 4; never 0). A bug
    of ours gets the same document, its one line (``internal error: ...;
    details in FILE``) as the finding, and exit 70.
    ``rubric`` (a name, a path or a loaded rubric) lists the experiments; when
    it cannot be loaded, the document lists none.
    """
    import contextlib

    @contextlib.contextmanager
    def guard() -> Any:
        from grader.errors import EXIT_INTERNAL, GraderError, NothingToGradeError, internal_error_line

        try:
            yield
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors and --help are click's to say, before anything runs
        except GraderError as err:
            if output_format == "table" or isinstance(err, NothingToGradeError):
                raise
            _emit_error_document(str(err), f"grader: {err.label}{err}", err.exit_code, output_format,
                                 output_file, rubric=rubric, experiments=experiments)
        except Exception as err:  # a bug of ours: the document says so too, the traceback is in a file
            if output_format == "table":
                raise
            line = internal_error_line(err)
            _emit_error_document(line.removeprefix("grader: "), line, EXIT_INTERNAL, output_format, output_file,
                                 rubric=rubric, experiments=experiments)

    return guard()


def _emit_error_document(message: str, line: str, exit_code: int, output_format: str, output_file: Path | None,
                         *, rubric: Any, experiments: tuple[str, ...]) -> None:
    """Say ``line`` on stderr, write the error report of ``message`` in the format, exit ``exit_code``."""
    from grader.engine.report import error_report
    from grader.engine.rubric import Rubric, load_rubric
    from grader.escape import terminal

    loaded = rubric if isinstance(rubric, Rubric) or rubric is None else None
    if loaded is None:
        try:
            loaded = load_rubric(rubric)
        except Exception:  # noqa: BLE001 - a rubric that will not load (or a broken install) must not stop the document
            loaded = None
    click.echo(terminal(line), err=True)
    report = error_report(message, loaded, experiments=experiments or None)
    emit_report(report, output_format, output_file, exit_code=exit_code)


def emit_report(report: Any, output_format: str, output_file: Path | None = None, *,
                failed: bool = False, exit_code: int | None = None) -> None:
    """Print a report (or write it to ``output_file``), its skipped inputs on stderr, and exit.

    The exit code is the one the report earns. ``failed`` forces exit code 1
    whatever the grade (simulate: an experiment never reached its end);
    ``exit_code`` forces that code (an error's own, for its error report).
    """
    from grader.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from grader.formats import after_render, render, write_atomically
    from grader.escape import terminal

    if exit_code is None:  # an error report's one line was said already, as its error says it
        for error in report.errors:
            click.echo(f"grader: error: {terminal(error)}", err=True)
    text = render(report, output_format)
    if output_file is None:
        click.echo(text, nl=False)
    else:
        write_atomically(output_file, text)
    after_render(report, output_format)
    if exit_code is not None:
        sys.exit(exit_code)
    if report.errors:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_OK if report.passed and not failed else EXIT_FAILED)


