"""A live batch is a good citizen of a rate-limited server: it paces itself, backs off and says so.

The slow test starts a real dev server whose frontend rate-limits the
namespace (``frontend.namespaceRPS`` for history reads,
``frontend.namespaceRPS.visibility`` for listings, as a hosted server does)
and grades a class on it, once asking faster than the server allows and once
under the limit.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest

from grader.classroom import batch_live, live
from grader.classroom.pacing import Pacer
from grader.classroom.progress import Progress


def test_a_pacer_spaces_requests_after_its_burst():
    async def run() -> float:
        pacer = Pacer(50, burst=5)
        began = time.monotonic()
        for _ in range(30):
            await pacer.take()
        return time.monotonic() - began

    elapsed = asyncio.run(run())
    assert elapsed >= (30 - 5) / 50 * 0.9  # 25 turns after the burst, 20 ms apart


def test_a_throttled_pacer_halves_once_per_throttle_and_says_so():
    said: list[float] = []
    pacer = Pacer(100, on_slow=said.append, floor=4)
    assert pacer.throttled() == 50
    assert pacer.throttled() == 50  # the same throttle felt by a second reader at once
    pacer._last_throttle -= 1
    assert pacer.throttled() == 25
    for _ in range(5):
        pacer._last_throttle -= 1
        pacer.throttled()
    assert pacer.rate == 4 and said[:2] == [50, 25]


@pytest.mark.slow
def test_batch_on_a_rate_limited_server_slows_down_says_so_and_grades_everyone(tmp_path: Path, monkeypatch):
    from grader.sources.connect import connect
    from grader.lab.server import free_port, start_dev_server

    server = start_dev_server(port=free_port(), ephemeral=True, headless=True, dynamic_config={
        "frontend.namespaceRPS": 12, "frontend.namespaceBurstRatio": 1, "frontend.namespaceRPS.visibility": 2})
    # Five runs a listing page, so the listing takes pages enough to meet the visibility limit.
    monkeypatch.setattr(live, "PAGE_SIZE", 5)

    async def scenario() -> None:
        client = await connect(server.address)
        handles = []
        for learner in range(10):  # no worker: each run is started and terminated, a closed run to read
            for run in range(3):
                handles.append(await client.start_workflow(
                    "MoneyTransfer", {"amount": 1}, id=f"l{learner:02d}-transfer-{run}", task_queue="nobody"))
        for handle in handles:
            await handle.terminate()
        await asyncio.sleep(1.5)  # the server's limiter refills

        said = io.StringIO()
        result = await batch_live(tmp_path / "fast", server.address, progress=Progress(stream=said), max_rps=200,
                                  replay=False)
        assert result.counts["graded"] == 10 and not result.counts["not-gradable"]
        log = said.getvalue()
        assert "the server is rate-limiting history reads (ResourceExhausted): slowing to 100 a second" in log
        assert "the server is rate-limiting listing pages (ResourceExhausted): slowing to" in log
        await asyncio.sleep(1.5)

        said = io.StringIO()
        began = time.monotonic()
        result = await batch_live(tmp_path / "paced", server.address, progress=Progress(stream=said), max_rps=6,
                                  max_visibility_rps=1.5, replay=False)
        elapsed = time.monotonic() - began
        assert result.counts["graded"] == 10
        assert "ResourceExhausted" not in said.getvalue()  # under both limits: never throttled
        assert elapsed >= (30 - 6) / 6 * 0.9  # 30 reads at 6 a second after a burst of 6

    try:
        asyncio.run(scenario())
    finally:
        server.stop()
