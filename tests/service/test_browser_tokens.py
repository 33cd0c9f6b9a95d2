"""hls.js in headless Chromium plays a token-protected stream, the token in an Authorization header.

The sample ladder is served with its AES-128 key behind a JWT (HS256) policy. The player's page
comes from another origin (tests/browser/harness.py) and gives hls.js the header only for key
requests (``xhrSetup``, as real apps do: manifests and segments stay simple, cacheable requests),
so the key request is the one request that needs a CORS preflight for ``Authorization``.

The preflight is checked through two independent witnesses, because Playwright's page-level
request events never show preflights (Chromium sends them from its network service):
  - the browser's: the harness' DevTools (CDP) Network session (``Playback.preflights``), which
    has the ``OPTIONS`` request Chromium sent (Origin, Access-Control-Request-Headers) and the
    response it got (status, Access-Control-Allow-Headers);
  - the server's: its access log (method, path, status; never the query string), enabled for this
    module with ``ORIGIN_LOG_LEVEL=INFO``.
A fresh browser context per playback means an empty preflight cache, so every playback preflights.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.harness import Browser, Playback, browser, missing_prerequisites, require
from tests.support.hlsjs_checks import CMAF, TS, check_clean, check_key_cross_origin
from tests.support.server import SAMPLE_KEY, SAMPLE_KID, Server, run_server
from tests.support.token_server import FILES, jwt_policy, make_jwt

NAME = "secure"
KID = uuid.UUID(SAMPLE_KID)
# Only the key service gets the header (a JavaScript regular expression on the request URL).
KEY_REQUESTS = r"/key\?kid="

_skip, _ = missing_prerequisites("hlsjs")
pytestmark = pytest.mark.skipif(_skip is not None, reason=_skip or "")


def config_text() -> str:
    return f"""
[[assets]]
name = "{NAME}"
files = [{FILES}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{KID}"
key = "{SAMPLE_KEY.hex()}"
policy = "jwt"
""" + jwt_policy()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cfg: Path = tmp_path_factory.mktemp("browser-tokens") / "origin.toml"
    cfg.write_text(config_text())
    # INFO: the access log, the server's witness of the preflight.
    with run_server("--config", str(cfg), env={"ORIGIN_LOG_LEVEL": "INFO"}) as s:
        yield s


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    require("hlsjs")
    with browser() as b:
        yield b


def master_url(server: Server, fmt: str) -> str:
    return f"{server.base}/{NAME}.ism/manifest(format={fmt})"


def key_url(server: Server) -> str:
    return f"{server.base}/key?kid={KID}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def play(chromium: Browser, server: Server, fmt: str, token: str | None) -> tuple[Playback, str]:
    """Play ``fmt`` with ``token`` (if any) on key requests; the playback and the server's log."""
    before = len(server.output)
    p = chromium.play(
        master_url(server, fmt),
        until=8.0,
        headers=bearer(token) if token else None,
        headers_for=KEY_REQUESTS,
        timeout=40.0,
    )
    time.sleep(0.2)  # the server's output is drained by a thread: let the last lines in
    print(p.summary())
    return p, "".join(server.output[before:])


def access_log(log: str, method: str, path: str) -> list[int]:
    """The statuses the server logged for ``method path`` (the access log has no query)."""
    return [int(s) for s in re.findall(rf'"{method} {re.escape(path)}" (\d{{3}}) ', log)]


def check_key_preflight(p: Playback, server: Server, pages_base: str, log: str) -> None:
    """Chromium preflighted the key request for Authorization and the server allowed it."""
    why = p.summary()
    assert not p.cors_errors, why
    key = key_url(server)
    pre = [f for f in p.preflights if f.url == key]
    assert pre, why
    for f in pre:
        assert f.failure is None and f.status == 204, why
        assert f.origin == pages_base != server.base, why
        assert f.request_method == "GET", why
        assert "authorization" in (f.request_headers or "").split(","), why
        assert f.allows_header("authorization"), why
        assert f.allow_origin in ("*", pages_base), why
    # Only the key service got the header, so nothing else needed a preflight.
    assert {f.url for f in p.preflights} == {key}, why
    assert access_log(log, "OPTIONS", "/key") == [204] * len(pre), log


def check_refused(p: Playback, server: Server, pages_base: str) -> None:
    """hls.js gave up with a fatal keyLoadError on the server's 401, read through CORS."""
    why = p.summary()
    assert not p.page_errors, why
    assert not p.keys, why
    key = key_url(server)
    fatal = p.fatal_errors
    assert fatal, why
    assert fatal[0]["type"] == "networkError" and fatal[0]["details"] == "keyLoadError", why
    assert fatal[0]["url"] == key, why
    # 401, not 0: the refusal carried CORS headers, so the page could read its status.
    key_errors = [e for e in p.errors if e["details"] == "keyLoadError"]
    assert key_errors and all(e["code"] == 401 for e in key_errors), why
    assert "HTTP Error 401" in str(fatal[0]["message"]), why
    refused = [r for r in p.requests if r.url == key]
    assert refused, why
    for r in refused:
        assert r.status == 401, why
        assert r.origin == pages_base, why
        assert r.allow_origin in ("*", pages_base), why
    assert not p.cors_errors, why
    # No media was decrypted (nothing was decodable without the key).
    assert p.current_time < 1.0, why


@pytest.mark.parametrize("fmt", [TS, CMAF])
def test_hlsjs_plays_with_a_bearer_token_on_key_requests(
    chromium: Browser, server: Server, fmt: str
) -> None:
    token = make_jwt(kid=KID)
    p, log = play(chromium, server, fmt, token)
    check_clean(p, server, fmt)  # incl. the one documented TS startup bufferSeekOverHole only
    check_key_cross_origin(p, server, chromium.pages_base)  # 200, the page's Origin, ACAO
    why = p.summary()
    key = key_url(server)
    to_origin = [r for r in p.requests if r.is_from(server.base)]
    for r in to_origin:
        expected = f"Bearer {token}" if r.url == key else None
        assert r.header("authorization") == expected, (r.url, why)
    check_key_preflight(p, server, chromium.pages_base, log)
    assert access_log(log, "GET", "/key") and set(access_log(log, "GET", "/key")) == {200}, log
    assert token not in "".join(server.output)  # the token is never logged


@pytest.mark.parametrize("fmt", [TS, CMAF])
def test_hlsjs_without_the_header_fails_with_a_key_load_error(
    chromium: Browser, server: Server, fmt: str
) -> None:
    p, _ = play(chromium, server, fmt, None)
    check_refused(p, server, chromium.pages_base)
    why = p.summary()
    assert all(r.header("authorization") is None for r in p.requests), why
    assert not p.preflights, why  # no custom header: a simple request, no preflight


def test_hlsjs_with_an_expired_token_fails_with_a_key_load_error(
    chromium: Browser, server: Server
) -> None:
    now = int(time.time())
    token = make_jwt(kid=KID, nbf=now - 7200, exp=now - 3600)
    p, log = play(chromium, server, TS, token)
    check_refused(p, server, chromium.pages_base)
    # The token went out and the preflight for it succeeded: the refusal is the token's.
    key = key_url(server)
    assert all(r.header("authorization") == f"Bearer {token}" for r in p.requests if r.url == key)
    check_key_preflight(p, server, chromium.pages_base, log)
