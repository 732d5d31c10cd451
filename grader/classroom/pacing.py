"""How fast a live batch may ask a shared server: a pace per kind of request, slowed down when throttled.

A hosted server limits each namespace (Temporal Cloud by default: 2,000
requests a second, and 30 a second for the visibility API that lists
workflows). A class of thousands read flat out would hit those limits and
get ``ResourceExhausted`` answers, slowing the learners' own workers that
share the namespace. So every live read first takes a turn from a
:class:`Pacer`: reads of histories from one, listing pages from a slower one.
When the server answers ``ResourceExhausted`` anyway (someone else uses the
namespace too), the pacer halves its rate and says so, then creeps back up
while the server stays quiet.
"""

from __future__ import annotations

import time
from typing import Callable

from grader import defaults

#: Default pace of history reads: half of Temporal Cloud's default namespace limit (2,000 requests/s),
#: leaving the other half to the learners' workers and starters on the same namespace.
DEFAULT_MAX_RPS = defaults.BATCH_MAX_RPS
#: Default pace of listing pages: under Temporal Cloud's visibility limit of 30 calls/s per namespace.
DEFAULT_MAX_VISIBILITY_RPS = defaults.BATCH_MAX_VISIBILITY_RPS
#: A throttled pacer gets back 25% of its rate after this many seconds without another throttle.
RECOVER_SECONDS = 5.0


class Pacer:
    """At most ``rate`` requests a second on average, with up to ``burst`` sent at once.

    A turn is reserved before the caller waits for it (virtual scheduling:
    each turn is one interval after the last), so any number of concurrent
    readers share one pace without a lock.
    """

    def __init__(self, rate: float, *, burst: float | None = None, floor: float = 1.0,
                 on_slow: Callable[[float], None] | None = None) -> None:
        if rate <= 0:
            raise ValueError("a pace must be positive")
        #: The configured ceiling (requests a second).
        self.max_rate = float(rate)
        #: The rate in force now (lower than max_rate after a throttle).
        self.rate = float(rate)
        #: Requests that may go out at once before pacing starts (1 s worth by default).
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self.floor = min(floor, self.max_rate)
        #: How many times the server throttled us.
        self.throttles = 0
        self._on_slow = on_slow
        self._next = 0.0  # when the next turn is due (monotonic), before burst credit
        self._last_throttle = 0.0

    async def take(self) -> None:
        """Wait for this request's turn."""
        import asyncio  # not at the top: a batch of files imports this module and never needs it

        now = time.monotonic()
        if self.rate < self.max_rate and now - self._last_throttle >= RECOVER_SECONDS:
            self.rate = min(self.max_rate, self.rate * 1.25)
            self._last_throttle = now  # the next step up after another quiet spell
        interval = 1.0 / self.rate
        due = max(self._next, now - (self.burst - 1) * interval)
        self._next = due + interval
        wait = due - now
        if wait > 0:
            await asyncio.sleep(wait)

    def throttled(self) -> float:
        """The server said ResourceExhausted: halve the rate (not below the floor); return the new rate."""
        self.throttles += 1
        now = time.monotonic()
        # Several readers hit by one throttle slow the pace once, not once each.
        if now - self._last_throttle >= 0.5 or self.throttles == 1:
            self.rate = max(self.floor, self.rate / 2)
            self._next = max(self._next, now)  # no burst credit right after a throttle
            if self._on_slow is not None:
                self._on_slow(self.rate)
        self._last_throttle = now
        return self.rate
