"""The task that plays a looped VOD asset into its live channel on the wall clock.

The schedule (:class:`~origin.core.live.loop.LoopSchedule`) says which VOD segments are due; this
task reads their bytes (off the event loop) and feeds them to one connection per stream, then
sleeps until the next one is due. It runs until cancelled. A read that fails (a file changed or
vanished under the asset) is logged at most once a minute and retried: the channel pauses, it
does not end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from origin.core.errors import IngestError, MediaError
from origin.core.live.channel import Channel
from origin.core.live.connection import Connection
from origin.core.live.loop import LoopPiece, LoopSchedule, chunk_of
from origin.service.storage import SourceFile, read_spans

log = logging.getLogger("origin.live")

MAX_SLEEP = 1.0  # seconds: the longest nap, so a clock step (NTP) is noticed soon
RETRY = 1.0  # seconds between attempts to read a piece that failed
LOG_EVERY = 60.0  # seconds between two log lines about the same trouble


class _Throttle:
    """One log line per ``LOG_EVERY`` seconds (monotonic), counting what it held back."""

    def __init__(self) -> None:
        self._last: float | None = None
        self._held = 0

    def warn(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < LOG_EVERY:
            self._held += 1
            return
        more = f" ({self._held} more since the last line)" if self._held else ""
        log.warning(msg + "%s", *args, more)
        self._last, self._held = now, 0


async def run_loop(
    channel: Channel,
    asset_files: Sequence[SourceFile],
    schedule: LoopSchedule,
    *,
    clock: Callable[[], float] = time.time,
    window: float,
) -> None:
    """Feed ``channel`` from ``schedule`` for ever (until cancelled: the connections are then
    closed unclean, so the channel is not ended). ``window``: pieces older than this (channel
    seconds before now) are skipped, at start-up and after a stall. ``clock`` is the wall
    clock in seconds; sleeps are real seconds, at most ``MAX_SLEEP``."""
    conns: dict[str, Connection] = {}
    read_trouble, feed_trouble = _Throttle(), _Throttle()
    try:
        for sid, tracks in schedule.headers().items():
            conn = channel.connect(sid)
            conns[sid] = conn
            conn.header(tracks)
        backlog: list[LoopPiece] = []
        while True:
            now = clock()
            horizon = now - schedule.start - window
            backlog = [p for p in backlog if p.media_end > horizon]
            backlog += schedule.due(now, window=window)
            while backlog:
                piece = backlog[0]
                try:
                    data = await read_spans(asset_files, piece.spans)
                    chunk = chunk_of(piece, data)
                except (MediaError, OSError) as e:
                    read_trouble.warn(
                        "channel %r: cannot read the looped asset, retrying: %s", channel.name, e
                    )
                    break
                del backlog[0]
                try:
                    conns[piece.stream_id].chunk(chunk, clock())
                except IngestError as e:  # the index refused it: skip it, keep the channel
                    feed_trouble.warn("channel %r: a looped segment refused: %s", channel.name, e)
            delay = RETRY if backlog else schedule.next_due() - clock()
            await asyncio.sleep(min(max(delay, 0.0), MAX_SLEEP))
    finally:
        now = clock()
        for conn in conns.values():
            conn.close(now, clean=False)
