"""End to end: key delivery only to authorized players, token propagation, rotation by reload."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode, urljoin

import jwt
import m3u8
import pytest

from tests.support.media import FFMPEG
from tests.support.server import SAMPLE_KEY, Server, fetch, run_server
from tests.support.token_server import (
    ALTERNATE,
    AUDIENCE,
    CK_CLAIM,
    ISSUER,
    KID,
    OTHER_KID,
    PRIMARY,
    b64,
    config_text,
    make_jwt,
    make_swt,
)


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("tokens") / "origin.toml"
    p.write_text(config_text())
    return p


@pytest.fixture(scope="module")
def server(cfg_path: Path) -> Iterator[Server]:
    with run_server("--config", str(cfg_path)) as s:
        yield s


def key_url(kid: uuid.UUID = KID) -> str:
    return f"/key?kid={kid}"


def none_alg_token() -> str:
    def seg(obj: bytes) -> str:
        return base64.urlsafe_b64encode(obj).rstrip(b"=").decode()

    now = int(time.time())
    payload = (
        f'{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{now + 3 * 3600},'
        f'"{CK_CLAIM}":"{KID}","role":"premium"}}'
    )
    return seg(b'{"alg":"none","typ":"JWT"}') + "." + seg(payload.encode()) + "."


NOW = int(time.time())
# (name, token, status, reason fragment): the README's table of refusals, against the server.
CASES = [
    ("missing token", None, 401, "missing token"),
    ("valid HS256", make_jwt(), 200, ""),
    ("valid, signed with the alternate key", make_jwt(ALTERNATE), 200, ""),
    ("valid SWT", make_swt(), 200, ""),
    ("bad signature", make_jwt(b"x" * 64), 401, "bad signature"),
    ("alg none", none_alg_token(), 401, ""),
    ("expired", make_jwt(exp=NOW - 3600), 401, "expired"),
    ("not yet valid", make_jwt(nbf=NOW + 3600), 401, "not yet valid"),
    ("no exp", make_jwt(exp=None), 401, "exp"),
    ("wrong issuer", make_jwt(iss="http://evil"), 401, "issuer"),
    ("wrong audience", make_jwt(aud="urn:other"), 401, "audience"),
    ("missing required claim", make_jwt(role=None), 401, "role"),
    ("wrong claim value", make_jwt(role="free"), 401, "role"),
    ("token for another key", make_jwt(kid=OTHER_KID), 401, "another key"),
    ("malformed", "not.a.token", 401, "malformed"),
    ("oversized", "a" * 8200, 401, "too large"),
    ("SWT expired", make_swt(expires=NOW - 3600), 401, ""),
    ("SWT wrong issuer", make_swt(issuer="http://evil"), 401, ""),
]


@pytest.mark.parametrize(("name", "token", "status", "reason"), CASES, ids=[c[0] for c in CASES])
def test_key_requests_are_refused_exactly(
    server: Server, name: str, token: str | None, status: int, reason: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = server.request(key_url(), headers=headers)
    assert r.status == status, (name, r.body)
    if status == 200:
        assert r.body == SAMPLE_KEY
        assert r.header("Cache-Control") == "no-store"
        return
    challenge = r.header("WWW-Authenticate") or ""
    assert challenge.startswith("Bearer"), name
    if token is None:
        assert "error=" not in challenge
    else:
        assert 'error="invalid_token"' in challenge
    assert reason.lower() in r.body.decode().lower(), (name, r.body)
    assert SAMPLE_KEY not in r.body


def test_a_header_too_large_to_parse_never_echoes_the_token(server: Server) -> None:
    token = "eyJ" + "s3cr3t" * 3000  # past the 16 KiB header limit
    r = server.request(key_url(), headers={"Authorization": f"Bearer {token}"})
    assert r.status == 400
    assert b"s3cr3t" not in r.body
    assert server.request("/healthz").status == 200  # and the server keeps serving


def test_an_algorithm_the_key_does_not_allow_is_refused(server: Server) -> None:
    """HS512 is fine for a symmetric key; RS256 claims an RSA key the policy does not have."""
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = server.request(
        key_url(), headers={"Authorization": f"Bearer {make_jwt(private, alg='RS256')}"}
    )
    assert r.status == 401 and 'error="invalid_token"' in (r.header("WWW-Authenticate") or "")


@pytest.mark.parametrize("param", ["token", "MtsHlsUriToken"])
def test_tokens_are_taken_from_the_query_too(server: Server, param: str) -> None:
    r = server.request(key_url() + "&" + urlencode({param: make_jwt()}))
    assert r.status == 200 and r.body == SAMPLE_KEY


def test_unknown_key_is_404_and_post_works(server: Server) -> None:
    assert (
        server.request(
            key_url(uuid.uuid4()), headers={"Authorization": f"Bearer {make_jwt()}"}
        ).status
        == 404
    )
    r = server.request(
        key_url(), method="POST", body=b"", headers={"Authorization": f"Bearer {make_jwt()}"}
    )
    assert r.status == 200 and r.body == SAMPLE_KEY


def test_ip_option_uses_x_forwarded_for_only_from_trusted_proxies(server: Server) -> None:
    # 127.0.0.1 is a trusted proxy in this config, so its X-Forwarded-For counts.
    ok = server.request(key_url(), headers={"X-Forwarded-For": "203.0.113.9"})
    assert ok.status == 200
    spoofed = server.request(key_url(), headers={"X-Forwarded-For": "203.0.113.9, 192.0.2.1"})
    assert spoofed.status == 401  # rightmost untrusted hop is 192.0.2.1: no option is met


def test_a_valid_token_from_a_refused_address_is_403(server: Server) -> None:
    headers = {"Authorization": f"Bearer {make_jwt(kid=OTHER_KID)}", "X-Forwarded-For": "192.0.2.7"}
    r = server.request(key_url(OTHER_KID), headers=headers)
    assert r.status == 403, r.body


def _all_uris(url: str) -> list[str]:
    text = fetch(url).body.decode()
    pl = m3u8.loads(text, uri=url)
    uris = [p.uri for p in pl.playlists] + [m.uri for m in pl.media if m.uri]
    uris += [s.uri for s in pl.segments] + [k.uri for k in pl.keys if k]
    uris += [m.uri for m in pl.segment_map]
    return uris


@pytest.mark.parametrize("fmt", ["m3u8-aapl", "m3u8-cmaf"])
def test_a_tokenized_master_propagates_the_token_to_every_url(server: Server, fmt: str) -> None:
    token = make_jwt()
    master = f"{server.base}/secure.ism/manifest(format={fmt})?token={quote(token, safe='')}"
    r = fetch(master)
    assert r.status == 200
    assert r.header("Cache-Control") == "private, no-store"
    children = _all_uris(master)
    assert children and all(f"token={token}" in u for u in children)
    media = urljoin(master, children[0])
    pl = m3u8.loads(fetch(media).body.decode(), uri=media)
    assert f"token={token}" in pl.keys[-1].uri
    if fmt == "m3u8-cmaf":
        assert f"token={token}" in pl.segment_map[0].uri
    # token_segments is off for this asset: segments stay shareable by CDNs.
    assert all("token=" not in s.uri for s in pl.segments)
    plain = fetch(f"{server.base}/secure.ism/manifest(format={fmt})")
    assert "public" in (plain.header("Cache-Control") or "")
    assert "token=" not in plain.body.decode()


def test_mts_token_name_is_kept_when_propagating(server: Server) -> None:
    token = make_jwt()
    master = f"{server.base}/secure.ism/manifest(format=m3u8-aapl)?MtsHlsUriToken={quote(token)}"
    assert all(f"MtsHlsUriToken={token}" in u for u in _all_uris(master))


@pytest.mark.parametrize("fmt", ["m3u8-aapl", "m3u8-cmaf"])
def test_ffmpeg_plays_from_one_tokenized_url_and_fails_without_it(server: Server, fmt: str) -> None:
    url = f"{server.base}/secure.ism/manifest(format={fmt})"
    ok = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", f"{url}?token={quote(make_jwt(), safe='')}",
         "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0 and ok.stderr.strip() == "", ok.stderr
    bad = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", url, "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "key" in bad.stderr.lower() and bad.returncode != 0


def test_playlists_can_require_a_token_and_segments_carry_it(server: Server) -> None:
    master = "/gated.ism/manifest(format=m3u8-aapl)"
    r = server.request(master)
    assert r.status == 401 and (r.header("WWW-Authenticate") or "").startswith("Bearer")
    assert server.request(master + "?token=garbage").status == 401
    token = make_jwt(kid=OTHER_KID)
    url = f"{server.base}{master}?token={quote(token, safe='')}"
    assert fetch(url).status == 200
    media = urljoin(url, _all_uris(url)[0])
    assert fetch(media).status == 200
    assert all(f"token={token}" in u for u in _all_uris(media))  # segments too (token_segments)
    header = server.request(master, headers={"Authorization": f"Bearer {token}"})
    assert header.status == 200 and "token=" not in header.body.decode()
    # Gated manifests are never shared by caches, even when the token came in a header.
    assert header.header("Cache-Control") == "private, no-store"


def test_ffmpeg_plays_a_gated_asset_through_its_signed_segment_urls_and_none_open_without(
    cfg_path: Path,
) -> None:
    with run_server("--config", str(cfg_path), env={"ORIGIN_LOG_LEVEL": "INFO"}) as server:
        _play_gated(server)
    logged = "\n".join(server.output)
    assert "Fragments(" in logged  # the access log is on, and names the segments
    assert "__token__" not in logged and "hmac=" not in logged  # never their signatures


def _play_gated(server: Server) -> None:
    token = make_jwt(kid=OTHER_KID)
    url = f"{server.base}/gated.ism/manifest(format=m3u8-aapl)?token={quote(token, safe='')}"
    ok = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", url, "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0 and ok.stderr.strip() == "", ok.stderr
    media = urljoin(url, _all_uris(url)[0])
    segment = next(u for u in _all_uris(media) if "Fragments(" in u)
    assert "__token__=" in segment and fetch(urljoin(media, segment)).status == 200
    # The viewer's own token on a segment URL is not enough, nor is no query at all.
    bare = urljoin(media, segment.split("?")[0])
    assert fetch(f"{bare}?token={quote(token, safe='')}").status == 403
    assert fetch(bare).status == 403


def test_rotation_removing_an_alternate_key_by_reload_stops_its_tokens(cfg_path: Path) -> None:
    old = make_jwt(ALTERNATE)
    with run_server("--config", str(cfg_path)) as s:
        auth = {"Authorization": f"Bearer {old}"}
        assert s.request(key_url(), headers=auth).status == 200
        cfg_path.write_text(config_text(alternate=False))
        try:
            s.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and s.request(key_url(), headers=auth).status == 200:
                time.sleep(0.1)
            assert s.request(key_url(), headers=auth).status == 401
            assert (
                s.request(key_url(), headers={"Authorization": f"Bearer {make_jwt()}"}).status
                == 200
            )
        finally:
            cfg_path.write_text(config_text())
        out = "".join(s.output)
    for secret in (old, b64(PRIMARY), b64(ALTERNATE), SAMPLE_KEY.hex()):
        assert secret not in out


def test_origin_token_prints_a_token_and_a_playable_url(server: Server, cfg_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "origin", "token", "--config", str(cfg_path), "--asset", "secure",
         "--ttl", "120", "--claim", "role=premium"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    token, url = proc.stdout.split()
    assert url.endswith("?token=" + quote(token, safe=""))
    claims = jwt.decode(token, PRIMARY, algorithms=["HS256"], audience=AUDIENCE)
    assert claims[CK_CLAIM] == str(KID) and claims["exp"] - claims["nbf"] == 120
    assert server.request(key_url(), headers={"Authorization": f"Bearer {token}"}).status == 200
    swt = subprocess.run(
        [sys.executable, "-m", "origin", "token", "--config", str(cfg_path), "--asset", "secure",
         "--type", "swt"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert swt.returncode == 0, swt.stderr
    assert (
        server.request(key_url() + "&" + urlencode({"token": swt.stdout.split()[0]})).status == 200
    )
