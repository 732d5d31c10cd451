"""Connecting to a Temporal server, with errors a person can act on."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from grader import defaults
from grader.errors import ServerUnavailableError


def no_server_message(address: str) -> str:
    """The one sentence said whenever no server answers at ``address``."""
    return (
        f"no Temporal server at {address}: start the embedded one with `grader server` "
        "(or pass --address / set TEMPORAL_ADDRESS to yours)"
    )


async def connect(
    address: str = defaults.DEFAULT_ADDRESS,
    namespace: str = defaults.DEFAULT_NAMESPACE,
    *,
    check_namespace: bool = True,
) -> Client:
    """Connect to ``address`` and make sure ``namespace`` exists.

    Raises :class:`ServerUnavailableError` (exit code 3) when nothing answers
    or the namespace is unknown.
    """
    try:
        client = await Client.connect(address, namespace=namespace)
    except (RuntimeError, RPCError, OSError) as err:
        raise ServerUnavailableError(no_server_message(address)) from err
    if check_namespace:
        try:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise ServerUnavailableError(
                    f"namespace {namespace!r} does not exist on {address}: "
                    "pass --namespace (or set TEMPORAL_NAMESPACE) to one that does"
                ) from err
            raise ServerUnavailableError(no_server_message(address)) from err
    return client
