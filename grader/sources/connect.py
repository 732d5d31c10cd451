"""Connecting to a Temporal server, the way every Temporal tool does, with errors a person can act on.

This module alone decides where the grader connects and how. It resolves a
:class:`ConnectionSettings` (what the user said on the command line) into a
:class:`Target` (what to connect to), layering, highest first:

1. flags (``--address``, ``--namespace``, ``--api-key``, ``--tls*``, ``--profile``, ``--config-file``);
2. environment variables (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``,
   ``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE``, ``TEMPORAL_CONFIG_FILE``);
3. the selected profile of ``temporal.toml``;
4. the defaults in :mod:`grader.defaults`.

Layers 2 and 3 are read by ``temporalio.envconfig``, so the grader agrees
with the ``temporal`` CLI and the SDKs about what a profile or a variable
means. Every RPC the grader makes goes through :func:`answered`, which bounds
it by the target's ``rpc_timeout``: a frozen server is reported, not waited on.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Mapping, TypeVar

from grader import defaults
from grader.errors import BadInputError, ServerUnavailableError

# asyncio, ipaddress and tomllib are imported where they are used: every command builds a
# ConnectionSettings, `grader check --history` included, and asyncio alone was a third of
# its start-up (benchmarks/bench_startup.py).

if TYPE_CHECKING:  # the SDK is imported only when a server is really contacted (fast start)
    from temporalio.client import Client

T = TypeVar("T")


class ServerTimeoutError(ServerUnavailableError):
    """A server accepted the connection but did not answer within the RPC timeout."""


class TlsError(ServerUnavailableError):
    """The TLS handshake with the server failed: a certificate, CA or name problem."""


@dataclass(frozen=True)
class ConnectionSettings:
    """What the user asked for; ``None`` means "not said", so lower layers decide.

    The CLI fills it from flags (:func:`grader.cli.options.connection_options`);
    a program may build one directly. :meth:`resolve` adds the environment,
    the profile and the defaults.
    """

    #: gRPC endpoint, ``HOST:PORT`` (``--address``).
    address: str | None = None
    #: Temporal namespace (``--namespace``).
    namespace: str | None = None
    #: API key sent as a bearer token; implies TLS (``--api-key``).
    api_key: str | None = None
    #: Force TLS on (True) or off (False) (``--tls``).
    tls: bool | None = None
    #: Client certificate for mutual TLS (``--tls-cert-path``).
    tls_cert_path: Path | None = None
    #: Private key of the client certificate (``--tls-key-path``).
    tls_key_path: Path | None = None
    #: CA that signed the server's certificate, if not a public one (``--tls-ca-path``).
    tls_ca_path: Path | None = None
    #: Name to expect on the server's certificate, and to send as SNI (``--tls-server-name``).
    tls_server_name: str | None = None
    #: Profile of ``temporal.toml`` to use (``--profile``).
    profile: str | None = None
    #: ``temporal.toml`` to read instead of the default one (``--config-file``).
    config_file: Path | None = None
    #: Web UI base URL for links (``--ui-url``); see :func:`resolve_ui_url`.
    ui_url: str | None = None
    #: Seconds any single call may take before the server counts as not answering.
    rpc_timeout: float = defaults.RPC_TIMEOUT

    def resolve(self, environ: Mapping[str, str] | None = None) -> "Target":
        """Layer these settings over ``environ`` (default: ``os.environ``), the profile and the defaults."""
        return resolve(self, environ)


@dataclass(frozen=True)
class Target:
    """A fully resolved place to connect to: what :func:`connect` and the workers use."""

    #: ``HOST:PORT``, checked.
    address: str
    namespace: str
    #: Web UI base URL, or None when nobody knows where the UI is (then no links are printed).
    ui_url: str | None
    rpc_timeout: float
    #: The resolved ``temporalio.envconfig`` profile (flags applied), the single source of TLS and keys.
    profile: Any = field(repr=False, default=None)

    @property
    def uses_tls(self) -> bool:
        """True when the connection is encrypted (a TLS section not switched off, or an API key)."""
        profile = self.profile
        if profile is None:
            return False
        if profile.tls is not None:
            return not profile.tls.disabled
        return bool(profile.api_key)

    def connect_config(self) -> dict[str, Any]:
        """Keyword arguments for ``Client.connect`` (reads certificate files now)."""
        config: dict[str, Any] = dict(self.profile.to_client_connect_config()) if self.profile else {}
        config.update(target_host=self.address, namespace=self.namespace)
        return config

    def worker_environment(self) -> dict[str, str]:
        """The ``TEMPORAL_*`` variables that make an app's worker connect exactly here.

        The apps resolve their connection with ``temporalio.envconfig`` too, so
        these variables (and no profile) describe this target to them.
        """
        env = {"TEMPORAL_ADDRESS": self.address, "TEMPORAL_NAMESPACE": self.namespace}
        profile = self.profile
        if profile is None:
            return env
        if profile.api_key:
            env["TEMPORAL_API_KEY"] = profile.api_key
        tls = profile.tls
        if tls is not None:
            env["TEMPORAL_TLS"] = "false" if tls.disabled else "true"
            if tls.server_name:
                env["TEMPORAL_TLS_SERVER_NAME"] = tls.server_name
            for name, source in (("CLIENT_CERT", tls.client_cert), ("CLIENT_KEY", tls.client_private_key),
                                 ("SERVER_CA_CERT", tls.server_root_ca_cert)):
                if isinstance(source, Path):  # absolute: the worker runs in the app's folder
                    env[f"TEMPORAL_TLS_{name}_PATH"] = str(source.absolute())
                elif source is not None:
                    env[f"TEMPORAL_TLS_{name}_DATA"] = source.decode() if isinstance(source, bytes) else source
        for key, value in profile.grpc_meta.items():
            env["TEMPORAL_GRPC_META_" + key.upper().replace("-", "_")] = value
        return env


#: Variables through which ``temporalio.envconfig`` reads a connection, and their prefix for metadata.
CONNECTION_VARIABLES = (
    "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE",
    "TEMPORAL_TLS", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_CLIENT_KEY_DATA", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA", "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
)
CONNECTION_VARIABLE_PREFIX = "TEMPORAL_GRPC_META_"


def isolated_environment(base: Mapping[str, str], target: Target) -> dict[str, str]:
    """``base`` with every connection variable replaced by ``target``'s.

    A worker started by ``grader simulate`` must reach the server simulate
    chose, not whatever the user's ``TEMPORAL_PROFILE`` or default
    ``temporal.toml`` points at: the profile file is switched off
    (``TEMPORAL_CONFIG_FILE`` names an empty file) and the target is spelled out in variables.
    """
    env = {k: v for k, v in base.items()
           if k not in CONNECTION_VARIABLES and not k.startswith(CONNECTION_VARIABLE_PREFIX)}
    env["TEMPORAL_CONFIG_FILE"] = os.devnull
    env.update(target.worker_environment())
    return env


# --- resolving ----------------------------------------------------------------

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")


def parse_address(text: str, *, origin: str = "--address") -> str:
    """Check that ``text`` is ``HOST:PORT`` (IPv6 as ``[ADDR]:PORT``) and return it stripped.

    Raises :class:`BadInputError` (exit 2) naming ``origin`` (the flag,
    variable or profile it came from) and what to write instead. A URL is
    refused rather than guessed at: ``https://`` might mean TLS, and the
    gRPC port is rarely the one a web URL names.
    """
    raw = text.strip()
    example = f"for example {defaults.DEFAULT_ADDRESS}"

    def bad(why: str) -> BadInputError:
        return BadInputError(f"{origin} {text!r} {why}")

    if not raw:
        raise bad(f"is empty: give the server's gRPC HOST:PORT, {example}")
    if "://" in raw:
        rest = raw.split("://", 1)[1].split("/", 1)[0]
        hint = rest if rest else f"HOST:PORT, {example}"
        raise bad(f"is a URL, not a gRPC address: write HOST:PORT without a scheme (try {hint}; "
                  "add --tls if the server uses TLS)")
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        if _HOST.match(raw):
            raise bad(f"has no port: write HOST:PORT with the gRPC port, for example {raw}:7233")
        raise bad(f"is not HOST:PORT, {example}")
    if host.startswith("[") and host.endswith("]"):
        import ipaddress

        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise bad(f"is not HOST:PORT: {host} is not an IPv6 address") from None
    elif ":" in host:
        raise bad("is not HOST:PORT: write an IPv6 address in brackets, for example [::1]:7233")
    elif not _HOST.match(host):
        raise bad(f"is not HOST:PORT: {host!r} is not a host name, {example}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise bad(f"has no valid port ({port or 'none'}): a port is a number from 1 to 65535, {example}")
    return raw


def default_config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The ``temporal.toml`` Temporal's tools read when no file is named (as ``envconfig`` finds it)."""
    environ = os.environ if environ is None else environ
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        if not environ.get("APPDATA"):
            return None
        base = Path(environ["APPDATA"])
    else:
        base = Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "temporalio" / "temporal.toml"


def resolve(settings: ConnectionSettings, environ: Mapping[str, str] | None = None) -> Target:
    """Turn what the user said into a :class:`Target`: flag, then environment, then profile, then default.

    Raises :class:`BadInputError` (exit 2) for a profile that does not exist,
    an unreadable ``temporal.toml``, a certificate file that is missing, or an
    address that is not ``HOST:PORT``.
    """
    from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS

    environ = dict(os.environ if environ is None else environ)
    config_file = settings.config_file or environ.get("TEMPORAL_CONFIG_FILE") or None
    profile_name = settings.profile or environ.get("TEMPORAL_PROFILE") or None
    try:
        profile = ClientConfigProfile.load(profile_name, config_source=Path(config_file) if config_file else None,
                                           override_env_vars=environ)
    except Exception as err:  # the bridge raises its own ConfigError type
        where = f" in {config_file}" if config_file else ""
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if profile_name and "not found" in detail:
            raise BadInputError(f"profile {profile_name!r} not found{where or ' in temporal.toml'}: "
                                "check --profile / TEMPORAL_PROFILE") from err
        raise BadInputError(f"cannot read the Temporal config file{where or ''}: {detail}") from err

    tls = profile.tls
    tls_flags = {k: v for k, v in {
        "server_name": settings.tls_server_name,
        "server_root_ca_cert": settings.tls_ca_path and Path(settings.tls_ca_path),
        "client_cert": settings.tls_cert_path and Path(settings.tls_cert_path),
        "client_private_key": settings.tls_key_path and Path(settings.tls_key_path),
    }.items() if v}
    if settings.tls is not None:
        tls_flags["disabled"] = not settings.tls
    elif tls_flags:
        tls_flags["disabled"] = False  # any TLS flag turns TLS on, as with the temporal CLI
    if tls_flags:
        tls = dataclasses.replace(tls or ClientConfigTLS(), **tls_flags)
    profile = dataclasses.replace(profile, tls=tls,
                                  api_key=settings.api_key if settings.api_key is not None else profile.api_key)

    if settings.address is not None:
        address, origin = settings.address, "--address"
    elif environ.get("TEMPORAL_ADDRESS"):
        address, origin = environ["TEMPORAL_ADDRESS"], "TEMPORAL_ADDRESS"
    elif profile.address:
        address, origin = profile.address, f"address of profile {profile_name or 'default'!r}"
    else:
        address, origin = defaults.DEFAULT_ADDRESS, "the default address"
    address = parse_address(address, origin=origin)
    namespace = settings.namespace or profile.namespace or defaults.DEFAULT_NAMESPACE
    _check_readable(profile.tls)
    if settings.rpc_timeout <= 0:
        raise BadInputError(f"--rpc-timeout {settings.rpc_timeout} must be more than 0 seconds")
    # A profile's UI belongs to the profile's server: not to another address given on top of it.
    same_server = profile.address is None or profile.address.strip() == address
    ui_url = resolve_ui_url(settings, address=address, environ=environ,
                            config_file=config_file if same_server else os.devnull, profile_name=profile_name)
    return Target(address=address, namespace=namespace, ui_url=ui_url, rpc_timeout=settings.rpc_timeout,
                  profile=profile)


def _check_readable(tls: Any) -> None:
    """A certificate path that cannot be read is the user's to fix: say which (exit 2)."""
    if tls is None:
        return
    for what, source in (("client certificate (--tls-cert-path)", tls.client_cert),
                         ("client key (--tls-key-path)", tls.client_private_key),
                         ("server CA (--tls-ca-path)", tls.server_root_ca_cert)):
        if isinstance(source, Path):
            try:
                source.read_bytes()
            except OSError as err:
                raise BadInputError(f"cannot read the TLS {what} {source}: {err.strerror or err}") from err
    if bool(tls.client_cert) != bool(tls.client_private_key):
        raise BadInputError("mutual TLS needs both a client certificate and its key "
                            "(--tls-cert-path and --tls-key-path)")


# --- the Web UI -----------------------------------------------------------------


def resolve_ui_url(settings: ConnectionSettings, *, address: str, environ: Mapping[str, str],
                   config_file: str | os.PathLike | None = None, profile_name: str | None = None) -> str | None:
    """Where the Web UI of the server at ``address`` is, or None when nobody says.

    In order: ``--ui-url``; ``TEMPORAL_UI_URL`` (the variable the apps use
    for their links); a ``ui_url`` key in the selected ``temporal.toml``
    profile (not part of Temporal's format, which tolerates and ignores it);
    the ``grader server`` running at that address. Never a guess: a link to
    a page that does not exist is worse than none.
    """
    for candidate in (settings.ui_url, environ.get("TEMPORAL_UI_URL")):
        if candidate:
            return _check_ui_url(candidate)
    path = Path(config_file) if config_file else default_config_file(environ)
    if path is not None and path.is_file():
        import tomllib

        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}  # envconfig has already read it successfully; nothing more to learn here
        value = data.get("profile", {}).get(profile_name or "default", {}).get("ui_url")
        if isinstance(value, str) and value:
            return _check_ui_url(value)
    from grader.sources.server_note import recorded_ui_url

    return recorded_ui_url(address)


def _check_ui_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise BadInputError(f"Web UI URL {url!r} must start with http:// or https://, "
                            "for example http://localhost:8233")
    return url


# --- connecting -------------------------------------------------------------------


def no_server_message(address: str) -> str:
    """The one sentence said whenever no server answers at ``address``."""
    return (
        f"no Temporal server at {address}: start the embedded one with `grader server` "
        "(or pass --address / set TEMPORAL_ADDRESS to yours)"
    )


def timeout_message(address: str, seconds: float) -> str:
    """The one sentence said when a server stops answering."""
    return f"Temporal at {address} did not answer within {seconds:g} s (paused or overloaded?)"


def as_target(where: ConnectionSettings | Target | str | None, namespace: str | None = None) -> Target:
    """Accept a target, settings, or a plain address (and namespace) as the library's callers give them."""
    if isinstance(where, Target):
        return where
    if isinstance(where, ConnectionSettings):
        return where.resolve() if namespace is None else dataclasses.replace(where, namespace=namespace).resolve()
    # A bare address from a program means exactly that server: no profile or TLS of the user's shell.
    address = parse_address(where or defaults.DEFAULT_ADDRESS, origin="address")
    return Target(address=address, namespace=namespace or defaults.DEFAULT_NAMESPACE,
                  ui_url=None, rpc_timeout=defaults.RPC_TIMEOUT)


_RUNTIME: Any = None


def _stderr_handler() -> Any:
    """A log handler that writes to whatever ``sys.stderr`` is when a record arrives (tests swap it).

    Made on first use: ``logging`` is imported only when a client is (every
    command builds its connection settings here, and offline ones never log).
    """
    import logging

    class Stderr(logging.StreamHandler):
        @property  # type: ignore[override]
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, value: Any) -> None:
            pass

    return Stderr()


def sdk_runtime() -> Any:
    """The SDK runtime every client of the grader uses: the Core's log lines go to stderr, never stdout.

    Left to its default, the SDK's Rust core prints its warnings (``gRPC
    call ... retried 5 times`` while a server is down) on stdout, where they
    break ``--format json`` and every other document a CI step reads. Here
    they are forwarded to the ``grader.sdk`` logger, which writes them to
    stderr as one line each.
    """
    global _RUNTIME
    if _RUNTIME is None:
        from temporalio.runtime import (LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig,
                                        TelemetryFilter)

        import logging

        logger = logging.getLogger("grader.sdk")
        if not logger.handlers:
            handler = _stderr_handler()
            handler.setFormatter(logging.Formatter("grader: sdk: %(levelname)s %(message)s"))
            logger.addHandler(handler)
            logger.propagate = False
            logger.setLevel(logging.WARNING)
        _RUNTIME = Runtime(telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                                  forwarding=LogForwardingConfig(logger=logger)),
            metrics=None))
    return _RUNTIME


async def connect(
    where: ConnectionSettings | Target | str | None = None,
    namespace: str | None = None,
    *,
    check_namespace: bool = True,
) -> "Client":
    """Connect to ``where`` and make sure its namespace exists; every wait bounded by the RPC timeout.

    Raises :class:`ServerUnavailableError` (exit code 3) when nothing answers
    or the namespace is unknown, :class:`TlsError` when the TLS handshake
    fails and :class:`ServerTimeoutError` when the server does not answer in time.
    """
    import asyncio

    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client
    from temporalio.service import RPCError, RPCStatusCode

    target = as_target(where, namespace)
    try:
        config = target.connect_config()
    except OSError as err:  # a certificate file vanished since it was checked
        raise BadInputError(f"cannot read a TLS file: {err}") from err
    try:
        client = await asyncio.wait_for(Client.connect(**config, runtime=sdk_runtime()), target.rpc_timeout)
    except asyncio.TimeoutError:
        raise ServerTimeoutError(timeout_message(target.address, target.rpc_timeout)) from None
    except RPCError as err:
        raise _rpc_error(err, target) from err
    except (RuntimeError, OSError) as err:
        raise connect_error(err, target) from err
    if check_namespace:
        request = DescribeNamespaceRequest(namespace=target.namespace)
        try:
            await answered(client.workflow_service.describe_namespace(request, timeout=rpc_deadline(target)),
                           target)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise ServerUnavailableError(
                    f"namespace {target.namespace!r} does not exist on {target.address}: "
                    "pass --namespace (or set TEMPORAL_NAMESPACE) to one that does"
                ) from err
            raise _rpc_error(err, target) from err
    return client


def rpc_deadline(target: Target) -> timedelta:
    """The per-call deadline the server is asked to honour (the client enforces it too)."""
    return timedelta(seconds=target.rpc_timeout)


async def answered(call: Awaitable[T], target: Target) -> T:
    """Await one call to the server at ``target``, bounded by its RPC timeout.

    A frozen server accepts bytes and never replies; the SDK may retry on its
    own, so the bound is enforced here as well as passed as a deadline.
    Raises :class:`ServerTimeoutError` when time runs out and
    :class:`ServerUnavailableError` when the server is gone or refuses us;
    other RPC errors (not found, bad query) pass through for the caller to judge.
    """
    import asyncio

    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await asyncio.wait_for(call, target.rpc_timeout)
    except asyncio.TimeoutError:
        raise ServerTimeoutError(timeout_message(target.address, target.rpc_timeout)) from None
    except RPCError as err:
        if _timed_out(err) or err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.UNAUTHENTICATED,
                                             RPCStatusCode.PERMISSION_DENIED):
            raise _rpc_error(err, target) from err
        raise


def _timed_out(err: Any) -> bool:
    """The server's deadline passed, or the client's (the SDK reports that one as CANCELLED)."""
    from temporalio.service import RPCStatusCode

    return err.status == RPCStatusCode.DEADLINE_EXCEEDED or (
        err.status == RPCStatusCode.CANCELLED and "timeout" in (err.message or "").lower())


def _rpc_error(err: Any, target: Target) -> ServerUnavailableError:
    from temporalio.service import RPCStatusCode

    if _timed_out(err):
        return ServerTimeoutError(timeout_message(target.address, target.rpc_timeout))
    if err.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return ServerUnavailableError(
            f"Temporal at {target.address} refused our credentials ({err.message}): "
            "check --api-key / TEMPORAL_API_KEY, the client certificate and --namespace")
    return ServerUnavailableError(no_server_message(target.address))


def connect_error(err: BaseException, target: Target) -> ServerUnavailableError:
    """Say what a failed ``Client.connect`` means, from the transport's own words.

    The SDK reports every failure as one ``RuntimeError`` whose text carries
    the transport's reason; the reasons below are the ones a person can act on.
    """
    text = str(err)
    address = target.address
    if "InvalidCertificate" in text or "certificate" in text.lower() and "Invalid" in text:
        if "NotValidForName" in text:
            reason = ("the server's certificate is not valid for the name we expected: "
                      "pass the name it holds with --tls-server-name (or TEMPORAL_TLS_SERVER_NAME)")
        elif "UnknownIssuer" in text:
            reason = ("the server's certificate is signed by a CA we do not trust: "
                      "pass that CA with --tls-ca-path (or TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
        elif "Expired" in text:
            reason = "the server's certificate has expired"
        else:
            reason = f"the server's certificate was refused ({_reason(text)})"
        return TlsError(f"TLS handshake with {address} failed: {reason}")
    if "InvalidContentType" in text or "InvalidMessage" in text or "CorruptMessage" in text:
        return TlsError(f"TLS handshake with {address} failed: the server there does not speak TLS "
                        "(drop --tls / TEMPORAL_TLS, or check the port)")
    dropped = any(sign in text for sign in ("close_notify", "UnexpectedEof", "connection closed", "ConnectionReset",
                                            "BrokenPipe", "AlertReceived", "HandshakeFailure"))
    if target.uses_tls and dropped:
        # With TLS 1.3 the server checks the client's certificate after the client thinks the
        # handshake is done, so a refusal arrives as a closed connection on the first call.
        has_cert = bool(target.profile and target.profile.tls and target.profile.tls.client_cert)
        advice = (": is the client certificate signed by a CA the server trusts?" if has_cert else
                  ", as servers that require a client certificate do: pass --tls-cert-path and --tls-key-path")
        return TlsError(f"TLS handshake with {address} failed: the server closed the connection{advice}")
    if "H2NotNegotiated" in text or "alpn" in text.lower():
        return TlsError(f"TLS handshake with {address} failed: the server did not offer HTTP/2 (ALPN h2), "
                        "which gRPC needs")
    if not target.uses_tls and (dropped or "transport error" in text):
        return ServerUnavailableError(
            f"something at {address} accepted the connection but does not speak plain gRPC: "
            "if it uses TLS, pass --tls (and --tls-ca-path for a private CA)")
    if "dns error" in text:
        return ServerUnavailableError(f"cannot resolve the host of {address}: check --address / TEMPORAL_ADDRESS")
    return ServerUnavailableError(no_server_message(address))


def _reason(text: str) -> str:
    found = re.search(r"error: (\w+(\([^)]*\))?)", text)
    return found.group(1) if found else text.splitlines()[0][:120]
