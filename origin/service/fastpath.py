"""The fast path: the exact bytes of a cacheable small response, answered without aiohttp.

Manifests and open keys are the requests a CDN cannot absorb (live playlists are reloaded by
every player every few seconds; keys are never cached by design), and aiohttp's per-request cost
(a Request, a Response, headers serialized, middlewares) caps them near 10,000/s on one core. A
handler that has answered a request whose response depends only on its target, its ``Host`` and
its ``Origin`` marks it with :func:`allow`; once aiohttp has written that response, :meth:`store`
keeps its bytes (but the ``Date``) under :func:`request_key`. The connection (in
:mod:`origin.service.connections`) parses each later request head itself with httptools and,
when every request in what it read has a valid answer here, writes the answers in one call,
without waking aiohttp.

What keeps it exact:

* Only requests carrying nothing but :data:`FAST_HEADERS` are looked up or stored: any header
  that could change the answer (``Cookie``, ``Range``, ``If-Range``, ``X-Forwarded-For``…)
  sends the request down aiohttp's path. So does anything but a ``GET`` over HTTP/1.1 kept
  alive. The few headers that do change it and are common on reloads and keys (``Host``,
  ``Origin``, ``If-None-Match``, ``If-Modified-Since``, ``Authorization``) are part of the key.
* Only what aiohttp itself answered is replayed: a 200 of a complete, uncompressed body with no
  cookie, or the 304 of a revalidation, after the handler said it depends on nothing else (no
  address policy, no token but the one in the key; private responses are never allowed).
* An answer lives as long as what it was built from: the answers belong to the loaded state (a
  reload drops them all); a key allowed by a token, as long as that token's verification is
  trusted (its expiry, at most a minute); a live manifest's, while the channel shows the view
  it was built from (``check``) and, for DASH, until the next segment's availability time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate

import httptools
from aiohttp import web
from aiohttp.http import HttpVersion11

from origin.service.cache import ENTRY_OVERHEAD, ByteLRU
from origin.service.logs import REQUEST_ID
from origin.service.metrics import kind_of

# Request headers a fast-path request may carry: those that do not change the answer, and those
# that are part of its key (_KEYED); ``connection`` must say keep-alive or be absent.
FAST_HEADERS = frozenset(
    (
        b"host",
        b"origin",
        b"if-none-match",
        b"if-modified-since",
        b"authorization",
        b"connection",
        b"user-agent",
        b"accept",
        b"accept-language",
        b"accept-encoding",
        b"referer",
        b"cache-control",
        b"pragma",
        b"dnt",
        b"priority",
        b"sec-ch-ua",
        b"sec-ch-ua-mobile",
        b"sec-ch-ua-platform",
        b"sec-fetch-dest",
        b"sec-fetch-mode",
        b"sec-fetch-site",
        b"sec-fetch-user",
        b"x-playback-session-id",  # AVPlayer's
    )
)
MAX_VALUE = 4096  # bytes of one header value; longer: not fast
MAX_HEADERS = 48
# Longer targets are never kept: a flood of unique long URLs must not fill the answers with keys.
MAX_TARGET = 1024
_ABSENT = b"\x00"  # not a byte a header value can hold
# Headers that do change the answer, so they are part of its key (at most once each): the host
# (absolute URLs), the Origin (CORS), the validators of a revalidation (a player's or a CDN's
# conditional reload gets the 304, or the 200, that aiohttp gave for those exact values) and the
# token of a key request. A handler allows an answer only where these are all it depends on.
_KEYED = {
    b"host": 0,
    b"origin": 1,
    b"if-none-match": 2,
    b"if-modified-since": 3,
    b"authorization": 4,  # a key allowed by its token alone (app.key_service)
}

Key = tuple[bytes, ...]


def request_key(target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> Key | None:
    """The key of a request's answer (target, then the _KEYED values), or None if the request is
    not one the fast path serves.

    ``headers`` as read (any case); one function for storing and looking up, so both agree."""
    if len(target) > MAX_TARGET or len(headers) > MAX_HEADERS or not target.startswith(b"/"):
        return None
    keyed = [_ABSENT] * len(_KEYED)
    for raw_name, value in headers:
        name = raw_name.lower()
        if name not in FAST_HEADERS or len(value) > MAX_VALUE:
            return None
        slot = _KEYED.get(name)
        if slot is not None:
            if keyed[slot] is not _ABSENT:
                return None  # twice: aiohttp's reading of it decides
            keyed[slot] = value
        elif name == b"connection" and value.strip().lower() != b"keep-alive":
            return None
    if keyed[0] is _ABSENT:
        return None  # no Host
    return (target, *keyed)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response's bytes around its ``Date`` value: ``head`` ends with ``Date: ``."""

    head: bytes
    tail: bytes  # the rest of the headers, the blank line and the body
    status: int
    path: str  # the request's decoded path, for the access log
    counted: tuple[str, int] = ("other", 0)  # (route kind, status), for the metrics
    until: float | None = None  # valid before this time.time(), if set
    check: Callable[[], bool] | None = None  # still valid while this returns True, if set

    def valid(self, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        return self.check is None or self.check()


@dataclass(frozen=True, slots=True)
class _Allowance:
    until: float | None
    check: Callable[[], bool] | None


_ALLOW: web.RequestKey[_Allowance] = web.RequestKey("fast_allow", _Allowance)


def allow(
    request: web.Request, *, until: float | None = None, check: Callable[[], bool] | None = None
) -> None:
    """Say that this request's response depends only on its target, Host and Origin (and,
    until ``until`` or while ``check()``, on nothing else): the fast path may replay it."""
    request[_ALLOW] = _Allowance(until, check)


class _Date:
    """The ``Date`` value, formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode()
        return self._value


class FastPath:
    """The answers of the state being served (``answers()``), looked up and stored."""

    def __init__(self, answers: Callable[[], ByteLRU[Answer]]) -> None:
        self._answers = answers
        self.date = _Date()
        self.hits = 0  # requests answered by the fast path

    def lookup(self, key: Key, now: float) -> Answer | None:
        answers = self._answers()
        answer = answers.find(key)
        if answer is None:
            return None
        if not answer.valid(now):
            answers.pop(key)
            return None
        return answer

    def store(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """Keep ``response`` if the handler allowed it and aiohttp wrote it plainly."""
        allowance = request.get(_ALLOW)
        if allowance is None:
            return
        if (
            request.method != "GET"
            or request.version != HttpVersion11
            or response.status not in (200, 304)
            or not response.keep_alive
            or response.chunked
            or response.compression
            or not isinstance(response, web.Response)
        ):
            return
        body = response.body
        if response.status == 304:  # a revalidation's answer: headers only
            if body not in (None, b"") or "Content-Length" in response.headers:
                return
            body = b""
        elif not isinstance(body, bytes):
            return
        if not request.raw_path.isascii():
            return
        key = request_key(request.raw_path.encode(), request.raw_headers)
        if key is None:
            return
        headers = response.headers
        if (
            "Set-Cookie" in headers
            or len(headers.getall("Date", ())) != 1
            or (response.status == 200 and headers.get("Content-Length") != str(len(body)))
        ):
            return
        head = [f"HTTP/1.1 {response.status} {response.reason}\r\n"]
        tail: list[str] = []
        part = head
        for name, value in headers.items():
            if name == REQUEST_ID:  # one request's: a replay writes its own (JSON logs)
                continue
            if name == "Date":
                head.append("Date: ")
                part = tail
                continue
            part.append(f"{name}: {value}\r\n")
        answer = Answer(
            head="".join(head).encode("latin-1"),
            tail=b"\r\n" + "".join(tail).encode("latin-1") + b"\r\n" + body,
            status=response.status,
            path=request.path,
            counted=(kind_of("GET", request.path), response.status),
            until=allowance.until,
            check=allowance.check,
        )
        cost = len(answer.head) + len(answer.tail) + sum(map(len, key)) + ENTRY_OVERHEAD
        self._answers().put(key, answer, cost=cost)


# --- reading request heads ---------------------------------------------------------------


class Head:
    """One request head as httptools read it; ``fit``: it could be a fast-path request."""

    __slots__ = ("fit", "headers", "keep_alive", "method", "target", "version")

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.fit = True
        self.method = b""
        self.version = ""
        self.keep_alive = False


class Heads:
    """httptools callbacks: collects the complete request heads of the bytes fed to it.

    Fed every byte the connection reads, so that it knows where each message starts. ``spoilt``:
    it can no longer follow this connection (a body, an upgrade, a head cut across two reads);
    the connection then drops it for good."""

    __slots__ = ("_head", "done", "parser", "spoilt")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[Head] = []
        self.spoilt = False
        self._head: Head | None = None  # the message being read

    def feed(self, data: bytes) -> list[Head] | None:
        """The heads completed by ``data``; None once this parser cannot follow the connection."""
        self.done = []
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.spoilt = True
        if self.spoilt or self._head is not None:  # an error, or ended inside a message
            self.spoilt = True
            return None
        return self.done

    def on_message_begin(self) -> None:
        self._head = Head()

    def on_url(self, url: bytes) -> None:
        head = self._head
        if head is None:
            return
        if len(head.target) + len(url) > MAX_TARGET:
            head.fit = False
        else:
            head.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        head = self._head
        if head is None:
            return
        if len(head.headers) >= MAX_HEADERS or len(value) > MAX_VALUE:
            head.fit = False
        else:
            head.headers.append((name, value))

    def on_headers_complete(self) -> None:
        head = self._head
        if head is None:
            return
        parser = self.parser
        head.method = parser.get_method()
        head.version = parser.get_http_version()
        head.keep_alive = parser.should_keep_alive()
        if head.method not in {b"GET", b"HEAD"}:
            # Uploads (ingest, POSTed keys): never fast, and their bodies are not parsed twice.
            self.spoilt = True

    def on_body(self, body: bytes) -> None:
        self.spoilt = True  # GETs with a body are not followed: aiohttp's parser decides

    def on_message_complete(self) -> None:
        if self._head is not None:
            self.done.append(self._head)
        self._head = None


FAST: web.AppKey[FastPath] = web.AppKey("fast", FastPath)


def setup(app: web.Application, answers: Callable[[], ByteLRU[Answer]]) -> None:
    """Serve ``answers()`` on the fast path of the app's connections."""
    app[FAST] = FastPath(answers)
