"""Play a stream in a real player in headless Debian Chromium and report what the player saw.

The player's page (``pages/<player>.html``) and its JavaScript (``node_modules``, from
``package-lock.json``) are served by a small static server of our own on another 127.0.0.1 port,
so every request the player makes to the origin is cross-origin and needs the origin's CORS.
Chromium is driven with Playwright's Python package, pointed at the Debian binary (Playwright's own
browser download does not work offline).

Every page fills the same ``window.report`` (``pages/report.js``): levels, level switches, keys,
fragments and errors in the player's own words, plus the video element's state. Adding a player is
one entry in ``PLAYERS``, one npm dependency and one page that maps its events onto ``Report``.

Besides the page's own request events, a DevTools (CDP) session on the page's Network domain
reports CORS preflights (``Playback.preflights``) and what Chromium said about refused CORS
(``Playback.cors_errors``): Chromium sends preflights from its network service and Playwright's
request events never show them.

From a shell, against a running server::

    python -m tests.browser.harness 'http://127.0.0.1:8080/sample.ism/manifest(format=m3u8-aapl)'
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Request as PwRequest
    from playwright.sync_api import Response

HERE = Path(__file__).resolve().parent

# Flags for Chromium on these machines: no GPU, no network but loopback (QUIC, background
# networking, component updates and sync would only try to reach Google and be refused).
# Playwright adds --headless, --no-sandbox (root) and a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def picture_stats(png: bytes) -> tuple[float, float]:
    """(mean, standard deviation) of a PNG's luma, decoded and scaled by ffmpeg."""
    import statistics  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    if not png:
        return 0.0, 0.0
    gray = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "pipe:0", "-vf", "scale=64:-2,format=gray",
         "-f", "rawvideo", "pipe:1"],
        input=png, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return statistics.fmean(gray), statistics.pstdev(gray)


@dataclass(frozen=True)
class Player:
    name: str
    page: str  # under pages/
    script: str  # the player's JS under node_modules/, to check the install


PLAYERS: dict[str, Player] = {
    "hlsjs": Player("hlsjs", "hlsjs.html", "hls.js/dist/hls.js"),
    # dash.js 5: DASH, and Smooth Streaming through its separate MSS build (dash.mss.min.js).
    "dashjs": Player("dashjs", "dashjs.html", "dashjs/dist/modern/umd/dash.mss.min.js"),
    # Shaka Player 4.x (DASH; Shaka 5 dropped Smooth Streaming).
    "shaka": Player("shaka", "shaka.html", "shaka-player/dist/shaka-player.compiled.js"),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_chromium() -> str | None:
    """Debian's Chromium (the ``chromium`` package), or ``$CHROMIUM`` if set."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "/usr/bin/chromium"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def missing_prerequisites(player: str) -> tuple[str | None, str | None]:
    """(reason to skip, reason to fail) for playing with ``player`` here; both None when ready.

    Only a missing browser outside CI is a skip; in CI (``CI=true``) everything missing fails.
    """
    if find_chromium() is None:
        reason = "chromium is not installed (apt-get install chromium; scripts/test.sh does)"
        return (None, reason) if in_ci() else (reason, None)
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return None, "the playwright package is missing: pip install -e '.[test]'"
    script = HERE / "node_modules" / PLAYERS[player].script
    if not script.is_file():
        return None, f"{script} is missing: run `npm ci` in {HERE} (scripts/test.sh does)"
    return None, None


def require(player: str) -> None:
    """In a test: skip when the browser is missing here (not in CI), fail on anything else."""
    import pytest  # noqa: PLC0415

    skip, fail = missing_prerequisites(player)
    if skip:
        pytest.skip(skip)
    if fail:
        pytest.fail(fail, pytrace=False)


# --- what a playback reports ---------------------------------------------------------------


@dataclass
class Request:
    """One request the page made, as the browser saw it on the wire."""

    url: str
    method: str
    status: int | None  # None: failed (see failure)
    resource_type: str
    origin: str | None  # the request's Origin header (sent on cross-origin fetch/XHR)
    allow_origin: str | None  # the response's Access-Control-Allow-Origin
    failure: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # as sent; names in lower case

    def header(self, name: str) -> str | None:
        """A request header as the browser sent it (e.g. ``authorization``), or None."""
        return self.headers.get(name.lower())

    def is_from(self, base: str) -> bool:
        """Whether this request went to the origin (scheme://host:port) of ``base``."""
        a, b = urlsplit(self.url), urlsplit(base)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _request(request: PwRequest, response: Response | None) -> Request:
    return Request(
        url=request.url,
        method=request.method,
        status=None if response is None else response.status,
        resource_type=request.resource_type,
        origin=request.header_value("origin"),
        allow_origin=None
        if response is None
        else response.header_value("access-control-allow-origin"),
        failure=request.failure if response is None else None,
        headers=request.all_headers(),  # the same round trip as header_value above (cached)
    )


@dataclass
class Preflight:
    """One CORS preflight (``OPTIONS``) Chromium sent for a request of the page (from CDP)."""

    url: str
    origin: str | None
    request_method: str | None  # Access-Control-Request-Method
    request_headers: str | None  # Access-Control-Request-Headers (lower case, comma-separated)
    status: int | None = None  # None: no response (see failure)
    allow_origin: str | None = None
    allow_methods: str | None = None
    allow_headers: str | None = None
    failure: str | None = None

    def allows_header(self, name: str) -> bool:
        """Whether Access-Control-Allow-Headers lists ``name`` (case-insensitive) or is ``*``."""
        listed = {h.strip().lower() for h in (self.allow_headers or "").split(",")}
        return name.lower() in listed or "*" in listed


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {k.lower(): v for k, v in (headers or {}).items()}


def _cors_from_cdp(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[Preflight], list[str]]:
    """The preflights in ``events`` (CDP Network events, in order) and the CORS errors reported.

    A preflight is a ``Network.requestWillBeSent`` whose initiator type is ``preflight`` (its
    ``Network.responseReceived`` has type ``Preflight``). A request CORS refused ends with a
    ``Network.loadingFailed`` carrying ``corsErrorStatus``.
    """
    urls: dict[str, str] = {}
    preflights: dict[str, Preflight] = {}
    cors_errors: list[str] = []
    for name, e in events:
        rid = e.get("requestId", "")
        if name == "Network.requestWillBeSent":
            urls[rid] = e["request"]["url"]
            if (e.get("initiator") or {}).get("type") == "preflight":
                h = _lower(e["request"].get("headers"))
                preflights[rid] = Preflight(
                    url=e["request"]["url"],
                    origin=h.get("origin"),
                    request_method=h.get("access-control-request-method"),
                    request_headers=h.get("access-control-request-headers"),
                )
        elif name == "Network.responseReceived" and rid in preflights:
            h = _lower(e["response"].get("headers"))
            p = preflights[rid]
            p.status = int(e["response"]["status"])
            p.allow_origin = h.get("access-control-allow-origin")
            p.allow_methods = h.get("access-control-allow-methods")
            p.allow_headers = h.get("access-control-allow-headers")
        elif name == "Network.loadingFailed":
            cors = e.get("corsErrorStatus")
            what = str(e.get("errorText") or "")
            if cors:
                what += f" (CORS {cors.get('corsError')} {cors.get('failedParameter') or ''})"
                cors_errors.append(f"{urls.get(rid, '?')}: {what.strip()}")
            if rid in preflights:
                preflights[rid].failure = what
    return list(preflights.values()), cors_errors


@dataclass
class Playback:
    """What one playback reached and what the player reported (see pages/report.js)."""

    player: str
    version: str | None
    page_url: str
    src: str
    target: float
    timed_out: bool
    elapsed: float  # wall-clock seconds from page load to the end of the wait
    report: dict[str, Any]
    requests: list[Request] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    preflights: list[Preflight] = field(default_factory=list)
    cors_errors: list[str] = field(default_factory=list)  # Chromium's words, one per request
    screenshot: bytes = b""  # PNG of the video element when playback stopped

    def picture(self) -> tuple[float, float]:
        """(mean, standard deviation) of the screenshot's luma, 0-255, read by ffmpeg: a black
        or uniform picture has a low mean or no spread."""
        return picture_stats(self.screenshot)

    @property
    def current_time(self) -> float:
        return float(self.report.get("currentTime") or 0.0)

    @property
    def reached(self) -> bool:
        return self.current_time >= self.target

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.report.get("errors") or [])

    @property
    def fatal_errors(self) -> list[dict[str, Any]]:
        return [e for e in self.errors if e.get("fatal")]

    @property
    def nonfatal_errors(self) -> list[dict[str, Any]]:
        return [e for e in self.errors if not e.get("fatal")]

    @property
    def levels(self) -> list[dict[str, Any]]:
        return list(self.report.get("levels") or [])

    @property
    def start_level(self) -> int | None:
        level = self.report.get("startLevel")
        return None if level is None else int(level)

    @property
    def level_switches(self) -> list[int]:
        return [int(s["level"]) for s in self.report.get("levelSwitches") or []]

    @property
    def switched(self) -> bool:
        """Whether the player moved between levels (not only onto its first one)."""
        return len(set(self.level_switches)) > 1

    @property
    def keys(self) -> list[str]:
        return [str(k["url"]) for k in self.report.get("keys") or []]

    @property
    def fragments(self) -> list[dict[str, Any]]:
        return list(self.report.get("fragments") or [])

    @property
    def video(self) -> dict[str, Any]:
        return dict(self.report.get("video") or {})

    @property
    def first_frame(self) -> dict[str, Any] | None:
        """``{t, currentTime}`` of the first ``playing`` event (t: seconds since page load)."""
        first = self.report.get("firstFrame")
        return None if first is None else dict(first)

    @property
    def played(self) -> float:
        """Media seconds played since the first frame."""
        return float(self.report.get("played") or 0.0)

    @property
    def samples(self) -> list[dict[str, Any]]:
        """Live: the playhead and the player's live edge, every 250 ms (pages/report.js)."""
        return list(self.report.get("samples") or [])

    @property
    def played_fragments(self) -> list[dict[str, Any]]:
        """The fragments the playhead entered, in order (hls.js only)."""
        return list(self.report.get("playedFragments") or [])

    def summary(self) -> str:
        """A readable account of the playback, for assertion messages and the CLI."""
        lines = [
            f"{self.player} {self.version} played {self.src}",
            f"  reached {self.current_time:.2f}s of {self.target:.2f}s in {self.elapsed:.1f}s"
            + (" (timed out)" if self.timed_out else "")
            + (" (ended)" if self.report.get("ended") else ""),
            f"  video: {self.video}",
            "  levels: "
            + ", ".join(
                f"{lv['index']}:{lv['width']}x{lv['height']}@{lv['bitrate']}" for lv in self.levels
            ),
            f"  start level {self.start_level}, switches {self.level_switches}",
            f"  first frame {self.first_frame}, played {self.played:.2f}s",
            f"  keys: {self.keys}",
            "  fragments: "
            + ", ".join(f"{f['type']}/{f['level']}/{f['sn']}" for f in self.fragments),
        ]
        lines += [f"  error: {json.dumps(e)}" for e in self.errors]
        lines += [f"  page error: {e}" for e in self.page_errors]
        lines += [f"  failed request: {r.url} {r.failure}" for r in self.requests if r.failure]
        lines += [f"  http {r.status}: {r.url}" for r in self.requests if (r.status or 0) >= 400]
        lines += [
            f"  preflight {p.status or p.failure}: {p.url} for {p.request_method} "
            f"[{p.request_headers}] allow-headers [{p.allow_headers}]"
            for p in self.preflights
        ]
        lines += [f"  cors error: {c}" for c in self.cors_errors]
        lines += [f"  log {e['t']}: {e['event']}" for e in self.report.get("log") or []]
        lines += [f"  console: {c}" for c in self.console[-20:]]
        return "\n".join(lines)


# --- the page's own origin -----------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_server(root: Path = HERE) -> Iterator[str]:
    """Serve ``root`` (pages/ and node_modules/) on a free 127.0.0.1 port; yield its base URL."""
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="browser-static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- the browser ---------------------------------------------------------------------------


CDP_EVENTS = ("Network.requestWillBeSent", "Network.responseReceived", "Network.loadingFailed")


# The harness's stop condition, evaluated in the page: a fatal error, the end, or the target
# reached (media time for VOD; seconds played since the first frame for live).
_DONE = (
    "(a) => report.fatal || report.ended || "
    "(a.live ? report.firstFrame !== null && report.played >= a.until"
    " : report.currentTime >= a.until)"
)


class _Session:
    """One page playing in its own browser context, from ``goto`` to ``close``."""

    def __init__(self, context: Any, page_url: str, player: str, src: str, until: float) -> None:
        self.context = context
        self.page_url = page_url
        self.player = player
        self.src = src
        self.until = until
        self.responses: list[Response] = []
        self.failed: list[PwRequest] = []
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.cdp_events: list[tuple[str, dict[str, Any]]] = []
        self.page: Any = None
        self.start = 0.0

    def open(self) -> None:
        # Playwright wraps handlers by setting an attribute on them: no bound builtins.
        def on_response(r: Response) -> None:
            self.responses.append(r)

        def on_failed(r: PwRequest) -> None:
            self.failed.append(r)

        page = self.page = self.context.new_page()
        page.on("response", on_response)
        page.on("requestfailed", on_failed)
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        cdp = self.context.new_cdp_session(page)
        for event in CDP_EVENTS:
            cdp.on(event, lambda e, name=event: self.cdp_events.append((name, e)))
        cdp.send("Network.enable")
        self.start = time.monotonic()
        page.goto(self.page_url, wait_until="load")

    def finish(self, timed_out: bool) -> Playback:
        elapsed = time.monotonic() - self.start
        try:
            report: dict[str, Any] = self.page.evaluate("Report.snapshot()")
            # Read headers only now: each read is a round trip to the browser, which does not
            # belong in an event callback.
            requests = [_request(r.request, r) for r in self.responses]
            requests += [_request(r, None) for r in self.failed]
            preflights, cors_errors = _cors_from_cdp(self.cdp_events)
            # The picture the video element shows now, as the compositor drew it: with
            # encrypted media, proof that frames were decrypted (an undecryptable stream
            # shows nothing or black).
            screenshot = self.page.locator("video").screenshot(timeout=5000)
        finally:
            self.context.close()
        return Playback(
            player=str(report.get("player") or self.player),
            version=report.get("version"),
            page_url=self.page_url,
            src=self.src,
            target=self.until,
            timed_out=timed_out,
            elapsed=elapsed,
            report=report,
            requests=requests,
            console=self.console,
            page_errors=self.page_errors,
            preflights=preflights,
            cors_errors=cors_errors,
            screenshot=screenshot,
        )


class Browser:
    """One headless Chromium; each ``play`` gets a fresh context (no shared cache or storage)."""

    def __init__(self, browser: Any, pages_base: str) -> None:
        self._browser = browser
        self.pages_base = pages_base

    def _session(
        self,
        src: str,
        *,
        player: str = "hlsjs",
        until: float = 8.0,
        live: bool = False,
        start_level: int | None = None,
        lock_level: bool = False,
        rate: float = 1.0,
        config: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        headers_for: str | None = None,
    ) -> _Session:
        query: dict[str, str] = {"src": src}
        if live:
            query["live"] = "1"
        if start_level is not None:
            query["startLevel"] = str(start_level)
        if lock_level:
            query["lockLevel"] = "1"
        if rate != 1.0:
            query["rate"] = str(rate)
        if config:
            query["config"] = json.dumps(config)
        if headers:
            query["headers"] = json.dumps(dict(headers))
            if headers_for is not None:
                query["headersFor"] = headers_for
        page_url = f"{self.pages_base}/pages/{PLAYERS[player].page}?{urlencode(query)}"
        return _Session(self._browser.new_context(), page_url, player, src, until)

    def play(
        self,
        src: str,
        *,
        player: str = "hlsjs",
        until: float = 8.0,
        live: bool = False,
        start_level: int | None = None,
        lock_level: bool = False,
        rate: float = 1.0,
        config: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        headers_for: str | None = None,
        timeout: float = 45.0,
    ) -> Playback:
        """Play ``src`` until ``until`` seconds of media time, a fatal error, the end or timeout.

        ``live``: ``until`` counts the media seconds played since the first frame instead, and
        the page samples the playhead and the player's live edge (``Playback.samples``).
        ``start_level``: the player's level index to start at; with ``lock_level`` it stays
        there. ``rate``: playbackRate once playing. ``config``: merged into the player's config.
        ``headers``: request headers the player adds (hls.js: its ``xhrSetup``/``fetchSetup``),
        only to URLs matching the JavaScript regular expression ``headers_for`` when given.
        """
        from playwright.sync_api import Error as PlaywrightError  # noqa: PLC0415

        session = self._session(
            src,
            player=player,
            until=until,
            live=live,
            start_level=start_level,
            lock_level=lock_level,
            rate=rate,
            config=config,
            headers=headers,
            headers_for=headers_for,
        )
        timed_out = False
        try:
            session.open()
            session.page.wait_for_function(
                _DONE,
                arg={"until": until, "live": live},
                polling=100,
                timeout=timeout * 1000,
            )
        except PlaywrightError as e:
            if "Timeout" not in str(e):
                session.context.close()
                raise
            timed_out = True
        except BaseException:
            session.context.close()
            raise
        return session.finish(timed_out)

    def play_together(
        self, plays: Sequence[Mapping[str, Any]], *, timeout: float = 60.0
    ) -> list[Playback]:
        """Several playbacks at once, each in its own context and page of this one browser.

        Each item of ``plays`` is the keyword arguments of :meth:`play` (``src`` included,
        ``timeout`` excluded). The pages are opened one after the other, then all play at the
        same time; each is judged by the same stop condition as :meth:`play`, and each stops
        (its context closed) as soon as it is done, so the others get the machine.
        """
        sessions = [(self._session(**dict(p)), bool(p.get("live"))) for p in plays]
        results: dict[int, Playback] = {}
        try:
            for session, _ in sessions:
                session.open()
            deadline = time.monotonic() + timeout
            while len(results) < len(sessions):
                timed_out = time.monotonic() > deadline
                for i, (session, live) in enumerate(sessions):
                    if i in results:
                        continue
                    done = session.page.evaluate(_DONE, {"until": session.until, "live": live})
                    if done or timed_out:
                        results[i] = session.finish(timed_out and not done)
                time.sleep(0.2)
        finally:
            for i, (session, _) in enumerate(sessions):
                if i not in results:
                    session.context.close()
        return [results[i] for i in range(len(sessions))]


@contextmanager
def browser(executable: str | None = None) -> Iterator[Browser]:
    """Start the static server and headless Debian Chromium; yield a ``Browser``."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError("chromium is not installed")
    with static_server() as base, sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield Browser(chromium, base)
        finally:
            chromium.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("src", help="manifest URL")
    ap.add_argument("--player", default="hlsjs", choices=sorted(PLAYERS))
    ap.add_argument("--until", type=float, default=8.0, help="media seconds to reach")
    ap.add_argument(
        "--live", action="store_true", help="live: --until counts seconds played, edge sampled"
    )
    ap.add_argument("--start-level", type=int)
    ap.add_argument("--lock-level", action="store_true")
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE", help="request header"
    )
    ap.add_argument("--headers-for", metavar="REGEX", help="add --header only to matching URLs")
    ap.add_argument("--json", action="store_true", help="print the raw report")
    args = ap.parse_args(argv)
    skip, fail = missing_prerequisites(args.player)
    if skip or fail:
        print(skip or fail, file=sys.stderr)
        return 2
    with browser() as b:
        result = b.play(
            args.src,
            player=args.player,
            until=args.until,
            live=args.live,
            start_level=args.start_level,
            lock_level=args.lock_level,
            rate=args.rate,
            headers=dict(
                (name.strip(), value.strip())
                for name, value in (h.split(":", 1) for h in args.header)
            ),
            headers_for=args.headers_for,
        )
    print(json.dumps(result.report, indent=2) if args.json else result.summary())
    reached = result.played >= args.until if args.live else result.reached
    return 0 if reached and not result.fatal_errors else 1


if __name__ == "__main__":
    sys.exit(main())
