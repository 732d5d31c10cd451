"""A pretend bank: the slow, unreliable outside system our activities call.

Nothing here knows about Temporal. It is ordinary blocking code, like a
client library for a real payment API would be.

Balances live in a dict inside the worker process, so every worker starts
with fresh balances and a restart forgets past transfers. That is fine for a
simulation: what we study is the workflow's history on the Temporal server,
which survives any worker crash. A real bank would keep its own durable
records.
"""

import threading
import time
import uuid

from shared import BANK_LATENCY_SECONDS


class InvalidAccountError(Exception):
    """The account does not exist or is closed. Retrying cannot help, so the
    workflow's retry policy lists this class name as non-retryable."""


class InsufficientFundsError(Exception):
    """Not enough money to withdraw. Also non-retryable by name."""


def _transaction_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:10]


class Bank:
    def __init__(self, latency_seconds: float = BANK_LATENCY_SECONDS) -> None:
        self.latency_seconds = latency_seconds
        self._balances = {"85-150": 2000, "43-812": 0}
        self._closed: set[str] = set()
        # reference id -> transaction id. A retried request with the same
        # reference gets the first answer instead of moving money twice:
        # activities may run more than once, so the services they call
        # should be idempotent.
        self._done: dict[str, str] = {}
        # Activities call us from worker threads, possibly several at once.
        self._lock = threading.Lock()

    def balance(self, account: str) -> int:
        with self._lock:
            self._check_account(account)
            return self._balances[account]

    def close_account(self, account: str) -> None:
        with self._lock:
            self._closed.add(account)

    def withdraw(self, account: str, amount: int, reference_id: str) -> str:
        self._pause()
        with self._lock:
            if reference_id in self._done:
                return self._done[reference_id]
            self._check_account(account)
            if self._balances[account] < amount:
                raise InsufficientFundsError(
                    f"insufficient funds: account {account} has ${self._balances[account]}, "
                    f"cannot withdraw ${amount}"
                )
            self._balances[account] -= amount
            return self._record(reference_id, "W")

    def deposit(self, account: str, amount: int, reference_id: str) -> str:
        self._pause()
        with self._lock:
            if reference_id in self._done:
                return self._done[reference_id]
            self._check_account(account)
            self._balances[account] += amount
            return self._record(reference_id, "D")

    def deposit_that_fails(self, account: str, amount: int, reference_id: str) -> str:
        """The injected bug: fails straight away, every time. ValueError is not
        in the non-retryable list, so Temporal keeps retrying the deposit."""
        raise ValueError("This deposit has failed.")

    def refund(self, account: str, amount: int, reference_id: str) -> str:
        """Give withdrawn money back (the compensation step)."""
        self._pause()
        with self._lock:
            if reference_id in self._done:
                return self._done[reference_id]
            self._check_account(account)
            self._balances[account] += amount
            return self._record(reference_id, "R")

    # -- helpers ----------------------------------------------------------

    def _pause(self) -> None:
        # Simulated network + processing time.
        if self.latency_seconds > 0:
            time.sleep(self.latency_seconds)

    def _check_account(self, account: str) -> None:
        if account not in self._balances:
            raise InvalidAccountError(f"account {account} does not exist")
        if account in self._closed:
            raise InvalidAccountError(f"account {account} is closed")

    def _record(self, reference_id: str, prefix: str) -> str:
        transaction_id = _transaction_id(prefix)
        self._done[reference_id] = transaction_id
        return transaction_id
