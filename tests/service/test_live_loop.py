"""The looped-VOD feeder task: the sample ladder read from disk into a channel on a fast clock,
read errors logged once and retried, and a clean cancel."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from origin.core.live.buffer import URL_SECOND
from origin.core.live.channel import Channel
from origin.core.live.loop import LoopSchedule, open_loop
from origin.core.presentation import prepare
from origin.service.live.loop import run_loop
from origin.service.storage import SourceFile, close_all, load_movie, open_source

SAMPLE = Path(__file__).parents[2] / "origin" / "sample"
WINDOW = Fraction(12)
# Channel seconds per real second. The 12 s window is 1.5 s of real time: slow enough that a
# loaded machine (CI, other tests) does not make pieces slide out before they are fed.
SPEED = 8.0


def fast_clock(start: float = 1_800_000_000.0) -> Callable[[], float]:
    m0 = time.monotonic()
    return lambda: start + (time.monotonic() - m0) * SPEED


@pytest.fixture
def files(tmp_path: Path) -> Iterator[list[SourceFile]]:
    opened = []
    for n in ("240p", "360p", "480p"):
        path = tmp_path / f"sample_{n}.mp4"
        shutil.copyfile(SAMPLE / path.name, path)
        opened.append(open_source(path))
    yield opened
    close_all(opened)


def loop_of(files: list[SourceFile], clock: Callable[[], float]) -> tuple[Channel, LoopSchedule]:
    p = prepare("sample", [load_movie(f) for f in files], Fraction(4))
    return open_loop("loop", p, window=WINDOW, now=clock())


def edge(channel: Channel) -> float:
    """Channel seconds of the newest published video segment's end."""
    return channel.view.video[0].segments[-1].end / URL_SECOND if channel.view else 0.0


async def until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_task_feeds_the_channel_across_loops_until_cancelled(
    files: list[SourceFile],
) -> None:
    clock = fast_clock()
    channel, schedule = loop_of(files, clock)
    task = asyncio.create_task(run_loop(channel, files, schedule, clock=clock, window=12.0))
    await until(lambda: edge(channel) >= 12, 2)  # the window is full at once
    await until(lambda: edge(channel) >= 12 + 25, 15)  # then it runs on, across wraps
    view = channel.view
    assert view is not None and len(view.video) == 3 and view.audio is not None
    segs = view.video[0].segments
    numbers = [s.number for s in segs]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert segs[-1].end - segs[0].time <= (WINDOW + 4) * URL_SECOND
    # Never ahead of the wall clock: a segment is published once its end has passed.
    assert segs[-1].end / URL_SECOND <= clock() - schedule.start + 0.1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    status = channel.status(clock())
    assert all(s.connections == 0 for s in status.streams)
    assert status.state == "live"  # cancelled is not ended: a restart continues the channel


async def test_a_read_error_is_logged_once_and_retried(
    files: list[SourceFile], caplog: pytest.LogCaptureFixture
) -> None:
    clock = fast_clock()
    channel, schedule = loop_of(files, clock)
    st = os.stat(files[1].path)
    os.utime(files[1].path, (st.st_atime, st.st_mtime + 5))  # "changed on disk": reads refused
    caplog.set_level(logging.WARNING, logger="origin.live")
    task = asyncio.create_task(run_loop(channel, files, schedule, clock=clock, window=12.0))
    await asyncio.sleep(2.2)  # three attempts at least
    assert not task.done()
    lines = [r for r in caplog.records if r.name == "origin.live"]
    assert len(lines) == 1 and "cannot read the looped asset" in lines[0].getMessage()
    stalled = edge(channel)
    os.utime(files[1].path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the file is whole again
    await until(lambda: edge(channel) > stalled + 8, 10)  # feeding resumed
    # What slid out of the window while it stalled was skipped, not replayed.
    assert edge(channel) >= clock() - schedule.start - 12
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
