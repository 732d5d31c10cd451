"""Ctrl+C and SIGTERM, held back while a process forks.

A batch ends on Ctrl+C or SIGTERM the same way: a KeyboardInterrupt, its
staging folder removed, exit 130. The interrupt must not land inside a
fork, where Python swallows it (see :func:`signals_held`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

#: While this process forks (:func:`signals_held`): the interrupting signals that arrived, else None.
_held: list[int] | None = None


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back Ctrl+C and SIGTERM (with :func:`interrupt` as their handler) while this process forks.

    ``os.fork`` runs Python callbacks around the fork: ``logging`` takes its
    lock before and releases it after. A KeyboardInterrupt raised inside
    one of them is printed and dropped, so the interrupt is lost and the
    lock stays taken: the next thread that logs (the SDK's event loop, in a
    replay) waits forever. Measured: a batch sent SIGTERM just as it forked
    its replayer hung once in 25 tries. Held, the signal ends the process
    as soon as the fork is done.
    """
    global _held
    if _held is not None:  # nested: the outer one raises
        yield
        return
    _held = []
    try:
        yield
    finally:
        arrived, _held = _held, None
        if arrived:
            raise KeyboardInterrupt


def interrupt(signum: int, frame: object) -> None:
    """A SIGINT or SIGTERM handler: KeyboardInterrupt now, or once :func:`signals_held` lets go."""
    if _held is not None:
        _held.append(signum)
        return
    raise KeyboardInterrupt
