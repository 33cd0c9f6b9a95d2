"""Logging that hostile traffic cannot forge or flood.

Every value a request controls (path, method, peer, reasons quoting them) goes through
:func:`clean` before it is logged: control characters are written as escapes, so a path cannot
end a log line and start a forged one, and long values are cut. :class:`RepeatFilter` counts
repeated lines instead of writing each one. Per-request error lines go to the ``origin.requests``
logger at INFO, so ``ORIGIN_LOG_LEVEL=WARNING`` (or a logger config) turns them down.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

REQUESTS = logging.getLogger("origin.requests")  # one line per refused or unreadable request
ACCESS_LOGGER = "origin.access"  # one line per request by design: never rate-limited
# Peer, method, path, status, body bytes, milliseconds. Never the query string: it may carry tokens.
ACCESS_FORMAT = '%s "%s %s" %d %d %.1fms'
# Loggers whose lines are counted by format string: they log once per request.
_BY_TEMPLATE = (REQUESTS.name, "origin.proxy", "aiohttp")

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators some viewers break
# lines on; backslash too, so an escape in the log always means the byte was escaped.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029", ord("\\"): "\\\\"}
_TABLE = str.maketrans(_ESCAPES)
VALUE_LIMIT = 512  # characters of one logged value; a 16 KiB path must not make a 16 KiB line


def clean(value: object, limit: int = VALUE_LIMIT) -> str:
    """``value`` as one safe log token: control characters escaped, cut to ``limit``."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text)} chars]"
    return text.translate(_TABLE)


class AccessFormat:
    """How access lines are written: text (``ACCESS_FORMAT``) or one JSON object per line."""

    json = False  # set once at start from server.access_log_format


def access_line(  # noqa: PLR0917 - the fields of one access log line
    logger: logging.Logger,
    remote: object,
    method: str,
    path: str,
    status: int,
    size: int,
    seconds: float,
    agent: str | None = None,
    request_id: str | None = None,
) -> None:
    """One access log line, the same from aiohttp's path and from the fast path."""
    if not AccessFormat.json:
        logger.info(
            ACCESS_FORMAT, clean(remote), clean(method), clean(path), status, size, seconds * 1000
        )
        return
    # JSON escapes every control character itself; long values are still cut.
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "peer": _cut(str(remote)),
        "method": _cut(method),
        "path": _cut(path),
        "status": status,
        "bytes": size,
        "duration": round(seconds, 6),
        "user_agent": _cut(agent or ""),
        "request_id": request_id or "",
    }
    logger.info("%s", json.dumps(line, ensure_ascii=True))


REQUEST_ID = "X-Request-Id"  # the header, echoed or made (see app.request_id)


def new_request_id() -> str:
    """A request id for X-Request-Id and the JSON access line (64 random bits, hex)."""
    return os.urandom(8).hex()


def _cut(text: str) -> str:
    return text if len(text) <= VALUE_LIMIT else f"{text[:VALUE_LIMIT]}…[{len(text)} chars]"


def json_access_handler(stream: TextIO) -> logging.Handler:
    """The access logger's own handler in JSON mode: the line is the object, nothing around."""
    out = logging.StreamHandler(stream)
    out.setFormatter(logging.Formatter("%(message)s"))
    return out


@dataclass(slots=True)
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0
    level: int = logging.INFO
    name: str = ""


class RepeatFilter(logging.Filter):
    """Lets ``burst`` records of one kind through per ``interval`` seconds and counts the rest;
    a kind is (logger, level, format string) for per-request loggers, (logger, level, message)
    for the others; the count is written as one summary line when the
    template is next logged after its window, or on :meth:`flush`.

    Attach it to a handler and give it that handler's ``handle``: summaries go out through it.
    The access log is not limited (one line per request is what it is for).
    """

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        *,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._emit = emit
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ACCESS_LOGGER or getattr(record, "origin_summary", False):
            return True
        # Per-request lines repeat with other values in them (peer, path): count them by
        # template. Any other line is counted only when it repeats exactly, so that, say, the
        # refusals of fifty different assets are all written.
        per_request = record.name.startswith(_BY_TEMPLATE)
        try:
            text = str(record.msg) if per_request else clean(record.getMessage())
        except Exception:  # a bad format: the handler reports it when it formats the record
            text = str(record.msg)
        key = (record.name, record.levelno, text)
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.start >= self.interval:
            if window is not None:
                self._summarize(key, window)
            if len(self._windows) >= 4096:  # kinds are few, but stay bounded whatever is logged
                self.flush()
            window = self._windows[key] = _Window(now, level=record.levelno, name=record.name)
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        return False

    def flush(self) -> None:
        """Write the pending counts (at shutdown)."""
        windows, self._windows = self._windows, {}
        for key, window in windows.items():
            self._summarize(key, window)

    def _summarize(self, key: tuple[str, int, str], window: _Window) -> None:
        if not window.suppressed:
            return
        elapsed = max(self._clock() - window.start, 0.0)
        record = logging.LogRecord(
            window.name,
            window.level,
            __file__,
            0,
            "%d more lines like %r in the last %.0fs were counted, not logged",
            (window.suppressed, clean(key[2]), elapsed),
            None,
        )
        record.origin_summary = True
        self._emit(record)


FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def handler(stream: TextIO) -> logging.Handler:
    """The server's log handler: one line per record, repeated lines counted."""
    out = logging.StreamHandler(stream)
    out.setFormatter(logging.Formatter(FORMAT))
    out.addFilter(RepeatFilter(out.handle))
    return out


def flush_counts() -> None:
    """Write the repeat counts still pending on the root logger's handlers (at shutdown)."""
    for h in logging.getLogger().handlers:
        for f in h.filters:
            if isinstance(f, RepeatFilter):
                f.flush()
