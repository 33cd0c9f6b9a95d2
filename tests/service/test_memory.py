"""Freed heap pages go back to the system (origin.service.memory)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from origin.service import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_malloc_trim_is_found_on_linux_and_returns_glibcs_answer() -> None:
    # Its effect on the server's RSS is what scripts/bench.py's memory row measures.
    assert memory.MALLOC_TRIM is not None
    assert memory.MALLOC_TRIM(0) in (0, 1)


async def test_trimming_runs_on_a_timer_while_the_app_serves_and_stops_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "MALLOC_TRIM", calls.append)
    monkeypatch.setattr(memory, "TRIM_EVERY", 0.01)
    ctx = memory.trimming(object())
    await ctx.__anext__()
    await asyncio.sleep(0.1)
    assert calls and set(calls) == {0}
    with pytest.raises(StopAsyncIteration):
        await ctx.__anext__()
    count = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == count  # stopped
