"""The manifest proxy (seed 003): token propagation into HLS playlists, and its SSRF guards.

The upstream is a second real ``origin`` (the built-in AES-128 sample) plus a small aiohttp helper
on 127.0.0.1 for what a well-behaved origin never does (redirects, slowness, huge or non-playlist
bodies, a key service that insists on a token). The proxy itself is ``origin serve`` with a
``[proxy]`` config. Nothing leaves 127.0.0.1: off-list targets are refused before any lookup.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import aiohttp
import m3u8
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from origin.service.config import load_config
from origin.service.config.proxy import parse_proxy_config
from origin.service.proxy.fetch import fetch_playlist, new_session
from origin.service.proxy.guard import address_allowed, vet
from origin.service.proxy.playlist_rewrite import (
    Rewriter,
    proxy_link,
    rewrite,
    rewrite_playlist,
    with_param,
)
from origin.service.proxy.settings import HostRule, ProxyConfig
from origin.service.proxy.target import ProxyError, parse_target
from tests.support.media import FFMPEG
from tests.support.proxy_upstream import (
    FORMATS,
    MAX_BYTES,
    RICH_MASTER,
    RICH_MEDIA,
    TOKEN,
    Helper,
    run_helper,
)
from tests.support.server import SAMPLE_KEY, SAMPLE_KID, Reply, Server, fetch, run_server


@dataclass
class Setup:
    upstream: Server
    helper: Helper
    proxy: Server

    def url(self, playback: str, token: str = TOKEN) -> str:
        q = f"playbackUrl={quote(playback, safe='')}&token={quote(token, safe='')}"
        return f"{self.proxy.base}/proxy/manifest?{q}"

    def get(self, playback: str, token: str = TOKEN) -> Reply:
        return fetch(self.url(playback, token))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with run_server() as upstream, run_helper(upstream.base) as helper:
        up = urlsplit(upstream.base).port
        hp = urlsplit(helper.base).port
        cfg = tmp_path_factory.mktemp("proxy") / "proxy.toml"
        cfg.write_text(
            f"""
[proxy]
enabled = true
allow_hosts = ["127.0.0.1:{up}", "127.0.0.1:{hp}", "localhost:{up}"]
timeout = 2
max_bytes = {MAX_BYTES}
"""
        )
        with run_server("--config", str(cfg)) as proxy:
            yield Setup(upstream, helper, proxy)


def sample_master(s: Setup, fmt: str) -> str:
    return f"{s.upstream.base}/sample.ism/manifest(format={fmt})"


def load(reply: Reply, uri: str) -> m3u8.M3U8:
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type") == "application/vnd.apple.mpegurl"
    assert reply.header("Cache-Control") == "private, no-store"
    assert reply.header("Access-Control-Allow-Origin") == "*"
    return m3u8.loads(reply.body.decode(), uri=uri)


def proxied(s: Setup, link: str) -> tuple[str, str]:
    """(playbackUrl, token) of a link back to the proxy, after checking it is one."""
    parts = urlsplit(link)
    assert link.startswith(s.proxy.base + "/proxy/manifest?"), link
    q = parse_qs(parts.query, strict_parsing=True)
    assert set(q) == {"playbackUrl", "token"} and all(len(v) == 1 for v in q.values())
    return q["playbackUrl"][0], q["token"][0]


# ---------------------------------------------------------------------------------------------
# Rewriting, end to end


@pytest.mark.parametrize("fmt", FORMATS)
def test_master_variants_point_back_through_the_proxy(setup: Setup, fmt: str) -> None:
    upstream_url = sample_master(setup, fmt)
    original = m3u8.loads(fetch(upstream_url).body.decode(), uri=upstream_url)
    url = setup.url(upstream_url)
    master = load(fetch(url), url)
    assert len(master.playlists) == len(original.playlists) == 4
    assert len(master.media) == len(original.media)
    children = [
        (p.absolute_uri, o.uri) for p, o in zip(master.playlists, original.playlists, strict=True)
    ]
    children += [
        (m.absolute_uri, o.uri) for m, o in zip(master.media, original.media, strict=True) if o.uri
    ]
    for link, uri in children:
        playback, token = proxied(setup, link)
        assert playback == urljoin(upstream_url, uri)
        assert token == TOKEN
    for p, o in zip(master.playlists, original.playlists, strict=True):
        assert p.stream_info.codecs == o.stream_info.codecs
        assert p.stream_info.bandwidth == o.stream_info.bandwidth


@pytest.mark.parametrize("fmt", FORMATS)
def test_media_playlist_key_carries_the_token_and_segments_are_upstream(
    setup: Setup, fmt: str
) -> None:
    url = setup.url(sample_master(setup, fmt))
    for variant in load(fetch(url), url).playlists:
        playback, _ = proxied(setup, variant.absolute_uri)
        media = load(fetch(variant.absolute_uri), variant.absolute_uri)
        [key] = [k for k in media.keys if k]
        key_url = urlsplit(key.uri)
        assert f"{key_url.scheme}://{key_url.netloc}" == setup.upstream.base
        assert key_url.path == "/key"
        assert parse_qs(key_url.query) == {"kid": [SAMPLE_KID], "token": [TOKEN]}
        assert fetch(key.uri).body == SAMPLE_KEY  # the real key service ignores the extra param
        assert media.segments
        for seg in media.segments:
            assert seg.uri.startswith(setup.upstream.base + "/sample.ism/QualityLevels(")
            assert seg.uri == urljoin(playback, seg.uri.rpartition("/")[2])
            assert TOKEN not in seg.uri  # segments_carry_token is off
        if fmt == "m3u8-cmaf":
            assert media.segment_map[0].uri.startswith(setup.upstream.base + "/sample.ism/")
        assert fetch(media.segments[0].uri).status == 200


@pytest.mark.parametrize("fmt", FORMATS)
def test_ffmpeg_plays_the_proxied_master_end_to_end(setup: Setup, fmt: str) -> None:
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", setup.url(sample_master(setup, fmt)),
         "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""


def _ffmpeg(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", url,
         "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_token_reaches_a_key_service_that_requires_it(setup: Setup) -> None:
    """The Safari case: the player cannot add the token; only the rewritten playlist carries it."""
    master = f"{setup.helper.base}/tokened/sample.ism/manifest(format=m3u8-aapl)"
    direct = _ffmpeg(master)
    assert direct.returncode != 0 or direct.stderr.strip() != ""  # 401 from the key service
    setup.helper.hits.clear()
    via_proxy = _ffmpeg(setup.url(master))
    assert via_proxy.returncode == 0, via_proxy.stderr
    assert via_proxy.stderr.strip() == ""
    keys = [h for h in setup.helper.hits if h.startswith("/tokened/key")]
    assert keys and all(f"token={quote(TOKEN, safe='')}" in h for h in keys)
    # Segments went from the player to the upstream directly, not through the proxy.
    assert any("/Fragments(" in h for h in setup.helper.hits)


def test_unusual_playlists_keep_every_tag_in_order(setup: Setup) -> None:
    # The reason for rewriting line by line: m3u8's own dumps() loses and reorders tags.
    dumped = m3u8.loads(RICH_MEDIA).dumps()
    assert "#EXT-VENDOR-CUE" not in dumped and "#EXT-X-MEDIA-SEQUENCE" not in dumped
    assert "#EXT-FOO-VENDOR" not in m3u8.loads(RICH_MASTER).dumps()

    for name, original in (("master.m3u8", RICH_MASTER), ("media.m3u8", RICH_MEDIA)):
        upstream_url = f"{setup.helper.base}/{name}"
        url = setup.url(upstream_url)
        reply = fetch(url)
        out = load(reply, url)
        text = reply.body.decode()
        before = [ln.split(":")[0] for ln in original.splitlines() if ln.startswith("#")]
        after = [ln.split(":")[0] for ln in text.splitlines() if ln.startswith("#")]
        assert after == before
        src = m3u8.loads(original, uri=upstream_url)
        assert len(out.segments) == len(src.segments)
        assert len(out.playlists) == len(src.playlists)
        assert len(out.iframe_playlists) == len(src.iframe_playlists)
        assert len(out.media) == len(src.media)
        assert len(out.keys) == len(src.keys)

    h = setup.helper.base
    master = fetch(setup.url(f"{h}/master.m3u8")).body.decode()
    assert '#EXT-X-CONTENT-STEERING:SERVER-URI="' + h + '/steer.json",PATHWAY-ID="a"' in master
    assert f'#EXT-X-SESSION-KEY:METHOD=AES-128,URI="{h}/keys/s?kid=1&token=' in master
    # A quoted value holding ',URI=' is not mistaken for the URI attribute.
    assert 'NAME="a,URI=",DEFAULT=YES,URI="manifest?playbackUrl=' in master
    assert '#EXT-X-SESSION-DATA:DATA-ID="com.example.title",VALUE="x,URI="\n' in master
    assert '#EXT-FOO-VENDOR:whatever,URI="untouched.bin"\n' in master  # unknown: verbatim
    m = m3u8.loads(master, uri=setup.proxy.base + "/proxy/manifest")
    assert proxied(setup, m.playlists[0].absolute_uri)[0] == f"{h}/video/low.m3u8?x=1"
    assert proxied(setup, m.playlists[1].absolute_uri)[0] == "https://cdn.example/video/high.m3u8"
    assert proxied(setup, m.iframe_playlists[0].absolute_uri)[0] == f"{h}/video/iframes.m3u8"

    media = fetch(setup.url(f"{h}/media.m3u8")).body.decode()
    assert f'#EXT-X-MAP:URI="{h}/init.mp4",BYTERANGE="700@0"' in media
    assert f'URI="{h}/keys/k?kid=7&token={TOKEN}",IV=0x0000' in media  # stale token replaced
    assert 'URI="skd://asset-7"' in media  # FairPlay asset ids are not URLs: left alone
    # A key server on neither allow_hosts nor token_hosts never sees the token.
    assert '#EXT-X-KEY:METHOD=AES-128,URI="https://keys.elsewhere.example/k?kid=9"\n' in media
    assert "token withheld from hosts not listed: keys.elsewhere.example" in "".join(
        setup.proxy.output
    )
    segs = [s.uri for s in m3u8.loads(media).segments]
    assert segs == [f"{h}/seg0.m4s", f"{h}/abs/seg1.m4s?sig=abc", "http://other.example/seg2.m4s"]


def test_redirects_within_the_allow_list_are_followed(setup: Setup) -> None:
    url = setup.url(f"{setup.helper.base}/redirect/upstream")
    master = load(fetch(url), url)
    # Children resolve against the final (redirected-to) URL, as a player would.
    playback, _ = proxied(setup, master.playlists[0].absolute_uri)
    assert playback.startswith(setup.upstream.base + "/sample.ism/QualityLevels(")
    assert fetch(setup.url(f"{setup.helper.base}/chain/3")).status == 200  # 3 hops are fine


# ---------------------------------------------------------------------------------------------
# Refusals


def _refusals(s: Setup) -> list[tuple[str, int, str]]:
    up = urlsplit(s.upstream.base).port
    h = s.helper.base
    sample = "/sample.ism/manifest(format=m3u8-aapl)"
    return [
        ("http://origin.invalid/x.m3u8", 403, "not on the proxy allow-list: origin.invalid"),
        ("http://127.0.0.1:1/x.m3u8", 403, "not on the proxy allow-list: 127.0.0.1"),
        (f"http://localhost:{up}{sample}", 403, "localhost resolves to an address"),
        (f"http://LocalHost.:{up}{sample}", 403, "localhost resolves to an address"),
        (f"http://0.0.0.0:{up}{sample}", 403, "allow-list"),
        (f"http://[::1]:{up}{sample}", 403, "allow-list"),
        (f"http://[::ffff:127.0.0.1]:{up}{sample}", 403, "allow-list"),
        (f"http://2130706433:{up}{sample}", 403, "allow-list"),
        (f"http://127.1:{up}{sample}", 403, "allow-list"),
        ("file:///etc/passwd", 400, "scheme must be http or https"),
        (f"ftp://127.0.0.1:{up}/x", 400, "scheme must be http or https"),
        ("gopher://127.0.0.1:70/_x", 400, "scheme must be http or https"),
        (f"http://user:pw@127.0.0.1:{up}{sample}", 400, "must not carry credentials"),
        (f"http://127.0.0.1:{up}@origin.invalid/", 400, "must not carry credentials"),
        (sample, 400, "must be an absolute http(s) URL"),
        (f"//127.0.0.1:{up}{sample}", 400, "must be an absolute http(s) URL"),
        (f"http://127.0.0.1:{up}/a b", 400, "not a valid"),
        (f"http:\\\\127.0.0.1:{up}{sample}", 400, "not a valid"),
        (f"{h}/redirect/off", 403, "redirected to a host not on the allow-list: 127.0.0.1"),
        (f"{h}/redirect/offhost", 403, "redirected to a host not on the allow-list"),
        (f"{h}/redirect/file", 403, "upstream redirect scheme must be http or https"),
        (f"{h}/redirect/creds", 403, "must not carry credentials"),
        (f"{h}/redirect/loop", 502, "redirected more than 3 times"),
        (f"{h}/chain/4", 502, "redirected more than 3 times"),
        (f"{h}/big", 502, f"larger than {MAX_BYTES} bytes"),
        (f"{h}/big-declared", 502, f"larger than {MAX_BYTES} bytes"),
        (f"{h}/html", 502, "not an HLS playlist"),
        (f"{h}/missing", 502, "upstream answered 404"),
        (f"{h}/gzip", 502, "compressed"),
        (f"{h}/slow", 504, "did not answer in time"),
    ]


def test_refusals_are_exact_and_never_echo_the_token(setup: Setup) -> None:
    failures = []
    for playback, status, reason in _refusals(setup):
        r = setup.get(playback)
        text = r.body.decode()
        if r.status != status or reason not in text:
            failures.append((playback, status, reason, r.status, text))
        assert TOKEN not in text and quote(TOKEN, safe="") not in text
        assert r.header("Cache-Control") == "no-store"
        assert r.header("Access-Control-Allow-Origin") == "*"  # CORS on errors too
    assert not failures, failures


def test_bad_parameters_are_400(setup: Setup) -> None:
    good = quote(sample_master(setup, "m3u8-aapl"), safe="")
    base = setup.proxy.base + "/proxy/manifest"
    cases = {
        f"?token={TOKEN}": "missing playbackUrl",
        f"?playbackUrl={good}": "missing token",
        f"?playbackUrl={good}&token=": "missing token",
        f"?playbackUrl=&token={TOKEN}": "missing playbackUrl",
        f"?playbackUrl={good}&playbackUrl={good}&token={TOKEN}": "more than once",
        f"?playbackUrl={good}&token=a&token=b": "more than once",
        f"?playbackUrl={good}&token=a%01b": "printable ASCII",
        f"?playbackUrl={good}&token=%C3%A9": "printable ASCII",
        f"?playbackUrl={good}&token={'t' * 5000}": "too long",
        f"?playbackUrl={quote('http://x/' + 'a' * 5000, safe='')}&token=t": "too long",
    }
    for query, reason in cases.items():
        r = fetch(base + query)
        assert (r.status, reason in r.body.decode()) == (400, True), (query, r.body)


def test_the_token_is_never_logged(setup: Setup) -> None:
    # Runs after the refusals above, which log every 5xx at WARNING.
    log = "".join(setup.proxy.output)
    assert "manifest proxy 50" in log
    assert TOKEN not in log and quote(TOKEN, safe="") not in log


# ---------------------------------------------------------------------------------------------
# Units: config, target parsing, address policy, rewriting


def test_proxy_config_defaults_and_full_table() -> None:
    cfg, problems = parse_proxy_config({}, where="proxy")
    assert problems == [] and cfg == ProxyConfig() and not cfg.enabled
    assert (cfg.token_param, cfg.max_bytes, cfg.timeout) == ("token", 2 * 1024 * 1024, 5.0)
    cfg, problems = parse_proxy_config(
        {
            "enabled": True,
            "allow_hosts": ["Origin.Example.", "127.0.0.1:8081", "[::1]:9000", "bücher.example"],
            "allow_addresses": ["10.0.0.0/8", "192.168.1.7"],
            "allow_private": True,
            "token_hosts": ["keys.example"],
            "token_param": "MtsHlsUriToken",
            "segments_carry_token": True,
            "max_bytes": 4096,
            "timeout": 1,
            "connect_timeout": 3.5,
        },
        where="proxy",
    )
    assert problems == []
    assert cfg.allow_hosts == (
        HostRule("origin.example", None),
        HostRule("127.0.0.1", 8081),
        HostRule("::1", 9000),
        HostRule("xn--bcher-kva.example", None),
    )
    assert cfg.allow_addresses[1] == ipaddress.ip_network("192.168.1.7/32")
    assert cfg.timeout == 1.0 and cfg.connect_timeout == 1.0  # never longer than the total
    assert cfg.host_allowed("origin.example", 443, "https")
    assert cfg.host_allowed("origin.example", 80, "http")
    assert not cfg.host_allowed("origin.example", 8080, "http")  # port-less: default port only
    assert not cfg.host_allowed("127.0.0.1", 80, "http")
    assert cfg.token_allowed("https://keys.example/k?kid=1")
    assert cfg.token_allowed("http://127.0.0.1:8081/key")
    assert not cfg.token_allowed("https://keys.example:8443/k")
    assert not cfg.token_allowed("https://elsewhere.example/k")
    assert not cfg.host_allowed("keys.example", 443, "https")  # never fetched by the proxy


async def test_fetch_connects_to_the_vetted_address_and_keeps_the_name(setup: Setup) -> None:
    hp = urlsplit(setup.helper.base).port
    assert hp is not None
    cfg = ProxyConfig(
        enabled=True,
        allow_hosts=(HostRule("localhost", hp),),
        allow_addresses=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    session = new_session(cfg)
    try:
        url = f"http://localhost:{hp}/echo-host.m3u8"
        up = await fetch_playlist(session, cfg, parse_target(url))
        assert up.url == url
        assert f"#X-HOST:localhost:{hp}\n" in up.text  # dialled 127.0.0.1, named localhost
        # The session's connector never resolves a name itself: nothing bypasses the vetting.
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(url)
    finally:
        await session.close()


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(("cert_name", "ok"), [("localhost", True), ("other.example", False)])
async def test_https_is_verified_against_the_name_while_dialling_the_address(
    tmp_path: Path, cert_name: str, ok: bool
) -> None:
    cert, key = _self_signed(tmp_path, cert_name)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def playlist(request: web.Request) -> web.Response:
        return web.Response(text="#EXTM3U\n")

    app = web.Application()
    app.router.add_get("/a.m3u8", playlist)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
    port = runner.addresses[0][1]
    cfg = ProxyConfig(
        enabled=True,
        allow_hosts=(HostRule("localhost", port),),
        allow_addresses=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    session = new_session(cfg, ssl_context=ssl.create_default_context(cafile=str(cert)))
    try:
        target = parse_target(f"https://localhost:{port}/a.m3u8")
        if ok:
            assert (await fetch_playlist(session, cfg, target)).text == "#EXTM3U\n"
        else:
            with pytest.raises(ProxyError) as e:
                await fetch_playlist(session, cfg, target)
            assert e.value.status == 502 and "cannot connect" in e.value.reason
    finally:
        await session.close()
        await runner.cleanup()


def test_proxy_config_problems_name_the_field() -> None:
    _, problems = parse_proxy_config(
        {
            "enabled": "yes",
            "allow_hosts": ["*.example", "https://a.example/", "a:0", "::1", "0.0.0.0", 7, "a_b"],
            "allow_addresses": ["10.0.0.0/33"],
            "token_param": "to ken",
            "max_bytes": 10,
            "timeout": 0,
            "surprise": 1,
        },
        where="proxy",
    )
    expected = [
        "proxy.surprise: unknown field",
        "proxy.enabled: must be bool, got str",
        "proxy.allow_hosts[0]: wildcards are not supported",
        "proxy.allow_hosts[1]: must be a host or host:port, not a URL",
        "proxy.allow_hosts[2]: port must be 1..65535",
        "proxy.allow_hosts[3]: write IPv6 addresses in brackets",
        "proxy.allow_hosts[4]: an unspecified or multicast address",
        "proxy.allow_hosts[5]: must be a string",
        "proxy.allow_hosts[6]: not a host name or IP address",
        "proxy.allow_addresses[0]: must be an IP address or CIDR",
        "proxy.token_param: must be 1-64 characters",
        "proxy.max_bytes: must be 1024..67108864",
        "proxy.timeout: must be > 0",
    ]
    assert len(problems) == len(expected), problems
    for got, want in zip(problems, expected, strict=True):
        assert got.startswith(want), (got, want)
    _, problems = parse_proxy_config({"enabled": True}, where="proxy")
    assert problems == [
        "proxy.allow_hosts: an enabled proxy needs at least one allowed upstream host"
    ]
    assert parse_proxy_config([], where="proxy")[1] == ["proxy: must be a table"]


def test_config_file_carries_the_proxy_section(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[proxy]\nenabled = true\nallow_hosts = ["origin.example"]\n')
    assert load_config(p).proxy.allow_hosts == (HostRule("origin.example", None),)
    p.write_text('[proxy]\nenabled = true\nallow_hosts = ["*"]\n')
    with pytest.raises(Exception, match=r"c\.toml: proxy\.allow_hosts\[0\]: wildcards"):
        load_config(p)


def test_parse_target_normalizes_the_host_and_keeps_path_and_query() -> None:
    t = parse_target("HTTPS://Origin.Example.:8443/a/b(1)/M(video,format=m3u8-aapl)?x=1#frag")
    assert (t.scheme, t.host, t.port) == ("https", "origin.example", 8443)
    assert str(t.url).endswith("/a/b(1)/M(video,format=m3u8-aapl)?x=1")
    assert parse_target("http://[::1]/x").host == "::1"
    assert parse_target("http://bücher.example/").host == "xn--bcher-kva.example"
    for bad in ("http://h:99999/", "http:///x", "http://@h/", "mailto:a@b", "", "http://h\n/"):
        with pytest.raises(ProxyError) as e:
            parse_target(bad)
        assert e.value.status == 400


@pytest.mark.parametrize(
    ("address", "default", "private"),
    [
        ("93.184.216.34", True, True),
        ("2606:4700::1", True, True),
        ("127.0.0.1", False, True),
        ("10.1.2.3", False, True),
        ("100.64.0.1", False, True),  # carrier-grade NAT
        ("fc00::1", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),  # IPv4-mapped
        ("64:ff9b::7f00:1", False, True),  # NAT64 of 127.0.0.1
        ("169.254.169.254", False, False),  # metadata service: only by explicit address
        ("fe80::1", False, False),
        ("0.0.0.0", False, False),
        ("224.0.1.1", False, False),
        ("240.0.0.1", False, True),
    ],
)
def test_address_policy(address: str, default: bool, private: bool) -> None:
    addr = ipaddress.ip_address(address)
    assert address_allowed(ProxyConfig(), addr) is default
    assert address_allowed(ProxyConfig(allow_private=True), addr) is private


def test_explicit_addresses_and_literals_override_the_private_rule() -> None:
    nets = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("10.0.0.0/8"))
    cfg = ProxyConfig(allow_addresses=nets)
    assert address_allowed(cfg, ipaddress.ip_address("169.254.169.254"))
    assert address_allowed(cfg, ipaddress.ip_address("::ffff:10.9.9.9"))
    assert not address_allowed(cfg, ipaddress.ip_address("192.168.0.1"))
    assert address_allowed(cfg, ipaddress.ip_address("192.168.0.1"), listed_literal=True)
    assert not address_allowed(cfg, ipaddress.ip_address("0.0.0.0"), listed_literal=True)


async def test_vet_resolves_names_and_pins_only_allowed_addresses() -> None:
    target = parse_target("http://localhost:8081/a.m3u8")
    listed = (HostRule("localhost", 8081),)
    with pytest.raises(ProxyError) as e:
        await vet(ProxyConfig(allow_hosts=listed), target)
    assert e.value.status == 403 and "resolves to an address that is not allowed" in e.value.reason
    loopback4 = (ipaddress.ip_network("127.0.0.0/8"),)
    addrs = await vet(ProxyConfig(allow_hosts=listed, allow_addresses=loopback4), target)
    assert addrs and all(str(a).startswith("127.") for a in addrs)  # ::1 filtered out
    assert await vet(ProxyConfig(allow_hosts=listed, allow_private=True), target)
    # Listing the name does not list its address, nor the other way round.
    with pytest.raises(ProxyError) as e:
        await vet(ProxyConfig(allow_hosts=listed), parse_target("http://127.0.0.1:8081/a"))
    assert e.value.status == 403 and "allow-list" in e.value.reason
    with pytest.raises(ProxyError) as e:
        await vet(ProxyConfig(allow_hosts=listed), target, redirected=True)
    assert e.value.status == 403 and "resolves to" in e.value.reason


def _rw(carry: bool = False, param: str = "token") -> Rewriter:
    return Rewriter(
        base="http://o.example/a/b/media.m3u8?sig=1",
        token="t k/=&",
        token_param=param,
        segments_carry_token=carry,
        link=lambda child: proxy_link("manifest", child, "t k/=&"),
        token_ok=lambda url: "elsewhere" not in url,
    )


def test_with_param_keeps_the_query_and_replaces_a_stale_value() -> None:
    assert with_param("http://k/?kid=1", "token", "a b") == "http://k/?kid=1&token=a%20b"
    assert with_param("http://k/", "token", "x") == "http://k/?token=x"
    assert with_param("http://k/?token=old&kid=1#f", "token", "x") == "http://k/?kid=1&token=x#f"
    assert with_param("http://k/?tokens=1", "token", "x") == "http://k/?tokens=1&token=x"


def test_rewriter_options_and_non_http_uris() -> None:
    media = (
        '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:METHOD=AES-128,URI="data:text/plain;base64,'
        'AAAAAAAAAAAAAAAAAAAAAA=="\n#EXT-X-MAP:URI="../init.mp4"\n#EXTINF:4,\ns.ts\n'
    )
    out = rewrite(media, _rw(carry=True, param="MtsHlsUriToken"), master=False)
    assert 'URI="data:text/plain;base64,AAAAAAAAAAAAAAAAAAAAAA=="' in out
    assert '#EXT-X-MAP:URI="http://o.example/a/init.mp4?MtsHlsUriToken=t%20k%2F%3D%26"' in out
    assert "\nhttp://o.example/a/b/s.ts?MtsHlsUriToken=t%20k%2F%3D%26\n" in out
    rw = _rw(carry=True)
    out = rewrite(media.replace("s.ts", "http://elsewhere.example/s.ts"), rw, master=False)
    assert "\nhttp://elsewhere.example/s.ts\n" in out and rw.withheld == {"elsewhere.example"}
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
    link = rewrite_playlist(master, _rw()).splitlines()[2]
    assert link == (
        "manifest?playbackUrl=http%3A%2F%2Fo.example%2Fa%2Fb%2Fv.m3u8&token=t%20k%2F%3D%26"
    )
    assert "://" not in link  # no player may take the relative link for an absolute URL
    assert m3u8.loads(rewrite_playlist(master, _rw())).playlists[0].uri == link


def test_malformed_playlists_are_refused() -> None:
    bad_attrs = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:METHOD=AES-128,URI="unterminated\n'
    with pytest.raises(ValueError, match="URI is not a quoted string in #EXT-X-KEY"):
        rewrite(bad_attrs, _rw(), master=False)
    with pytest.raises(ValueError, match="malformed attribute list in #EXT-X-MAP"):
        rewrite('#EXTM3U\n#EXT-X-MAP:URI="a",,\n', _rw(), master=False)
    mixed = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n#EXTINF:4,\ns.ts\n"
    with pytest.raises(ValueError, match="mixes master and media"):
        rewrite_playlist(mixed, _rw())
