"""Real players decrypt the origin's Common Encryption in headless Chromium, with the key from the
origin's own ClearKey license service behind a JWT policy, the token in an ``Authorization``
header, from another origin (the page's port; tests/browser/harness.py).

- DASH ``cenc`` (both MPD formats) and ``cbcs``: Shaka and dash.js find the license URL in the
  MPD (``dashif:Laurl``) and POST the key ids the init segment names to ``/clearkey``.
- HLS fMP4 ``cbcs`` (``SAMPLE-AES``) and ``cenc`` (``SAMPLE-AES-CTR``): Shaka, which fetches the
  raw key from the playlist's key URI (KEYFORMAT identity) and plays it through ClearKey EME.
  hls.js cannot: it plays ClearKey only with ``KEYFORMAT="org.w3.clearkey"`` and a license URL
  configured in the page, and takes an identity key for software TS SAMPLE-AES.
- Smooth ``cenc`` (PIFF) is not played here: dash.js's MSS parser makes PlayReady and Widevine
  descriptors only (from the ``<ProtectionHeader>``), so it never selects ClearKey, and Shaka
  4.16 asks Chromium's ``decodingInfo`` about its pseudo type ``mss/video/mp4``, which Chromium
  refuses: it plays no Smooth here, clear (4032) or encrypted (6001, whatever ``drm.clearKeys``).
  Its bytes are checked in Python against the spec instead (tests/core/test_cenc.py).

Each plays >= 12 s of media with no error, and a screenshot of the video element is neither
black nor flat: frames were decrypted (undecryptable media shows nothing). Without the token the
license service refuses and playback fails. The 24 s ladder of test_browser_dash_smooth.py
(B-frames, AAC) is reused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import Browser, Playback, missing_prerequisites
from tests.service.test_browser_dash_smooth import (
    FPS,
    RATE,
    chromium,
    chromium_head_abort,
    long_ladder,
)
from tests.support.server import Server, run_server
from tests.support.token_server import jwt_policy, make_jwt

__all__ = ["chromium", "long_ladder"]  # the fixtures, used here by name

ASSET = "secure"
KID = uuid.UUID("2f6b8f0e-3c1d-4e5a-9b7c-1d2e3f4a5b6c")
KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
UNTIL = 12.0
PLAYREADY_LA = "https://playready.example/rightsmanager.asmx"
# The token goes to key and license requests only (dash.js's license requests are matched by
# the page under the name "license").
LICENSE_REQUESTS = r"/key\?kid=|/clearkey|^license$"

_skip = next(
    (s for s in (missing_prerequisites(p)[0] for p in ("dashjs", "shaka")) if s is not None), None
)
pytestmark = pytest.mark.skipif(_skip is not None, reason=_skip or "")


@pytest.fixture(scope="module")
def server(
    long_ladder: list[Path], chromium: Browser, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    files = ", ".join(f'"{f}"' for f in long_ladder)
    cfg = tmp_path_factory.mktemp("cenc_config") / "cenc.toml"
    cfg.write_text(
        f"""
[server]
cors_origins = ["{chromium.pages_base}"]

[[assets]]
name = "{ASSET}"
files = [{files}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{KID}"
key = "{KEY.hex()}"
policy = "jwt"
hls = ["cbc", "cbcs", "cenc"]
dash = ["cenc", "cbcs"]
smooth = "cenc"
"""
        + jwt_policy()
        + f"""
[policies.jwt.drm]
playready_la_url = "{PLAYREADY_LA}"
widevine = true
"""
    )
    with run_server("--config", str(cfg), env={"ORIGIN_LOG_LEVEL": "INFO"}) as s:
        yield s


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {make_jwt(kid=KID)}"}


def check_decrypted(p: Playback, server: Server, pages_base: str) -> None:
    """>= 12 s played cleanly from another origin, and the picture is not black."""
    why = p.summary()
    assert not p.timed_out, why
    assert p.reached and p.current_time >= UNTIL, why
    assert not p.fatal_errors and not p.nonfatal_errors and not p.page_errors, why
    assert p.video["decodedFrames"] >= 10 * FPS, why
    to_origin = [r for r in p.requests if r.is_from(server.base)]
    for r in to_origin:
        if chromium_head_abort(r, to_origin):
            continue
        assert r.status is not None and 200 <= r.status < 400, f"{r}\n{why}"
        # Cross-origin, and allowed: (Chromium does not always list the Origin it sent.)
        assert r.origin in (None, pages_base) and pages_base != server.base, f"{r}\n{why}"
        assert r.allow_origin == pages_base, f"{r}\n{why}"
    mean, spread = p.picture()
    assert mean > 20 and spread > 8, (
        f"black or flat picture: mean {mean:.1f}, sd {spread:.1f}\n{why}"
    )


def url(server: Server, options: str) -> str:
    if options.startswith("encryption"):  # Smooth: no format
        return f"{server.base}/{ASSET}.ism/manifest({options})"
    return f"{server.base}/{ASSET}.ism/manifest(format={options})"


def play_with_token(chromium: Browser, server: Server, player: str, options: str) -> Playback:
    p = chromium.play(
        url(server, options),
        player=player,
        until=UNTIL,
        rate=RATE,
        headers=bearer(),
        headers_for=LICENSE_REQUESTS,
        timeout=40,
    )
    print(p.summary())
    check_decrypted(p, server, chromium.pages_base)
    return p


def license_posts(p: Playback, server: Server) -> list[int | None]:
    return [
        r.status
        for r in p.requests
        if r.is_from(server.base) and r.method == "POST" and "/clearkey" in r.url
    ]


@pytest.mark.parametrize(
    ("player", "options"),
    [
        ("shaka", "mpd-time-csf,encryption=cenc"),
        ("shaka", "mpd-time-cmaf,encryption=cbcs-aapl"),
        ("dashjs", "mpd-time-cmaf,encryption=cenc"),
        ("dashjs", "mpd-time-csf,encryption=cbcs-aapl"),
    ],
)
def test_dash_common_encryption_plays_with_the_license_from_the_mpd(
    chromium: Browser, server: Server, player: str, options: str
) -> None:
    p = play_with_token(chromium, server, player, options)
    if player == "shaka":  # what Shaka's DASH parser read of every system's signalling
        drm = p.report["drm"]
        assert drm["keySystem"] == "org.w3.clearkey", drm
        infos: dict[str, list[dict[str, Any]]] = {}
        for d in drm["drmInfos"]:  # ClearKey twice: the DASH-IF descriptor and the Common PSSH
            infos.setdefault(d["keySystem"], []).append(d)
        licenses = {d["licenseServerUri"] for d in infos["org.w3.clearkey"]}
        assert f"{server.base}/clearkey" in licenses, infos
        assert [d["licenseServerUri"] for d in infos["com.microsoft.playready"]] == [PLAYREADY_LA]
        assert all(KID.hex in d["keyIds"] for ds in infos.values() for d in ds), infos
        schemes = {d["encryptionScheme"] for ds in infos.values() for d in ds}
        assert schemes == {options.rsplit("=", maxsplit=1)[-1][:4]}, infos
    assert license_posts(p, server) and set(license_posts(p, server)) == {200}, p.summary()
    auth = [r for r in p.requests if "/clearkey" in r.url and r.method == "POST"]
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in auth)


@pytest.mark.parametrize("options", ["m3u8-cmaf,encryption=cbcs-aapl", "m3u8-cmaf,encryption=cenc"])
def test_hls_fmp4_common_encryption_plays_in_shaka_with_the_identity_key(
    chromium: Browser, server: Server, options: str
) -> None:
    p = play_with_token(chromium, server, "shaka", options)
    keys = [r for r in p.requests if r.is_from(server.base) and "/key?kid=" in r.url]
    assert keys and all(r.status == 200 for r in keys), p.summary()


@pytest.mark.parametrize(
    ("player", "options"), [("shaka", "mpd-time-csf"), ("dashjs", "mpd-time-cmaf")]
)
def test_without_a_token_the_license_is_refused_and_nothing_plays(
    chromium: Browser, server: Server, player: str, options: str
) -> None:
    p = chromium.play(url(server, options), player=player, until=UNTIL, rate=RATE, timeout=20)
    posts = license_posts(p, server)
    assert posts and set(posts) == {401}, p.summary()
    assert p.current_time < 2.0 or p.fatal_errors, p.summary()
