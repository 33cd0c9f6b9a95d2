"""End to end: the real server on a free port, real playlists, keys, segments, ffmpeg."""

from __future__ import annotations

import math
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import m3u8
import pytest

from origin.core.crypto import decrypt, sequence_iv
from tests.support.media import FFMPEG, FFPROBE, decode_errors
from tests.support.server import (
    ROOT,
    SAMPLE_DIR,
    SAMPLE_KEY,
    SAMPLE_KID,
    Server,
    fetch,
    run_server,
    sample_config,
)

FORMATS = ["m3u8-aapl", "m3u8-cmaf"]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server() as s:  # the built-in sample, exactly as the README's first command
        yield s


def master_url(server: Server, fmt: str, opts: str = "") -> str:
    return f"{server.base}/sample.ism/manifest(format={fmt}{opts})"


def load(url: str) -> m3u8.M3U8:
    r = fetch(url)
    assert r.status == 200, (url, r.body)
    assert r.header("Content-Type") == "application/vnd.apple.mpegurl"
    return m3u8.loads(r.body.decode(), uri=url)


def media_playlists(server: Server, fmt: str) -> list[str]:
    url = master_url(server, fmt)
    master = load(url)
    uris = {urljoin(url, p.uri) for p in master.playlists}
    uris |= {urljoin(url, m.uri) for m in master.media if m.uri}
    return sorted(uris)


def ffprobe_json(path: Path) -> str:
    return subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-of", "compact", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def test_master_lists_every_rendition_with_exact_codecs(server: Server) -> None:
    for fmt in FORMATS:
        master = load(master_url(server, fmt))
        video = [p for p in master.playlists if p.stream_info.resolution]
        assert [p.stream_info.resolution for p in video] == [(426, 240), (640, 360), (854, 480)]
        for p in video:
            info = p.stream_info
            # 240p is Main@2.1, the others Main@3.0 (x264's choice for these sizes).
            level = "15" if info.resolution == (426, 240) else "1e"
            assert info.codecs == f"avc1.4d40{level},mp4a.40.2"
            assert info.frame_rate == 24.0
            assert info.bandwidth >= info.average_bandwidth > 0
        audio_only = [p for p in master.playlists if not p.stream_info.resolution]
        assert len(audio_only) == 1 and audio_only[0].stream_info.codecs == "mp4a.40.2"
        if fmt == "m3u8-cmaf":
            assert master.media[0].type == "AUDIO" and master.media[0].language == "en"
            assert all(p.stream_info.audio == "audio" for p in master.playlists)


def test_audio_only_false_drops_the_audio_only_variant(server: Server) -> None:
    master = load(master_url(server, "m3u8-aapl", ",audio-only=false"))
    assert all(p.stream_info.resolution for p in master.playlists)


def test_media_playlists_are_vod_with_key_and_keyframe_aligned_segments(server: Server) -> None:
    for fmt in FORMATS:
        boundaries = set()
        for url in media_playlists(server, fmt):
            pl = load(url)
            assert pl.playlist_type == "vod" and pl.is_endlist
            assert pl.version == (6 if fmt == "m3u8-cmaf" else 3)
            # The ceiling of the longest: 4 for video; audio's first segment also holds the
            # AAC priming frame (4.021 s), so its playlist says 5.
            assert pl.target_duration == math.ceil(max(s.duration for s in pl.segments))
            key = pl.keys[-1]
            assert key.method == "AES-128" and key.iv is None
            assert urljoin(url, key.uri) == f"{server.base}/key?kid={SAMPLE_KID}"
            durations = [s.duration for s in pl.segments]
            assert abs(sum(durations) - 10.0) < 0.05
            if "video" in url:
                assert durations == [4.0, 4.0, 2.0]
                boundaries.add(tuple(s.uri.split(",")[0] for s in pl.segments))
            if fmt == "m3u8-cmaf":
                assert pl.segment_map[0].uri.endswith(".mp4")
        assert len(boundaries) == 1, "every video rendition must share segment boundaries"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_key_service_returns_the_raw_key_uncached(server: Server, method: str) -> None:
    r = server.request(
        f"/key?kid={SAMPLE_KID}", method=method, body=b"" if method == "POST" else None
    )
    assert r.status == 200
    assert r.body == SAMPLE_KEY
    assert r.header("Content-Type") == "application/octet-stream"
    assert r.header("Cache-Control") == "no-store"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/key?kid={uuid.uuid4()}", 404),
        ("/key?kid=not-a-uuid", 400),
        ("/key", 400),
    ],
)
def test_key_service_refuses_bad_or_unknown_kids(server: Server, path: str, status: int) -> None:
    r = server.request(path)
    assert r.status == status
    assert SAMPLE_KEY.hex() not in r.body.decode()


def _segments_of(url: str) -> tuple[m3u8.M3U8, list[str]]:
    pl = load(url)
    return pl, [urljoin(url, s.uri) for s in pl.segments]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_segment_decrypts_with_the_key_and_decodes_cleanly(
    server: Server, fmt: str, tmp_path: Path
) -> None:
    key = server.request(f"/key?kid={SAMPLE_KID}").body
    for n, url in enumerate(media_playlists(server, fmt)):
        pl, segs = _segments_of(url)
        init = b""
        if fmt == "m3u8-cmaf":
            r = fetch(urljoin(url, pl.segment_map[0].uri))
            assert r.status == 200 and r.header("Content-Type") in ("video/mp4", "audio/mp4")
            init = r.body  # clear: EXT-X-MAP precedes EXT-X-KEY
            assert init[4:8] == b"ftyp"
        for seq, seg_url in enumerate(segs):
            r = fetch(seg_url)
            assert r.status == 200
            expected_type = (
                "video/mp2t"
                if fmt == "m3u8-aapl"
                else ("audio/mp4" if "audio" in url else "video/mp4")
            )
            assert r.header("Content-Type") == expected_type
            assert len(r.body) % 16 == 0
            clear = decrypt(key, sequence_iv(seq), r.body)
            if fmt == "m3u8-aapl":
                assert clear[0] == 0x47 and len(clear) % 188 == 0
            else:
                assert clear[4:8] in (b"styp", b"moof")
            f = tmp_path / f"{n}_{seq}.{'ts' if fmt == 'm3u8-aapl' else 'mp4'}"
            f.write_bytes(init + clear)
            assert decode_errors(str(f)) == "", seg_url


@pytest.mark.parametrize("fmt", FORMATS)
def test_ffmpeg_plays_the_whole_encrypted_stream_over_http(server: Server, fmt: str) -> None:
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", master_url(server, fmt),
         "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""


def test_ts_variants_decode_as_one_continuous_stream(server: Server, tmp_path: Path) -> None:
    """Concatenated decrypted segments: no continuity-counter or timestamp complaints."""
    key = server.request(f"/key?kid={SAMPLE_KID}").body
    for url in media_playlists(server, "m3u8-aapl"):
        _, segs = _segments_of(url)
        data = b"".join(decrypt(key, sequence_iv(i), fetch(u).body) for i, u in enumerate(segs))
        f = tmp_path / "all.ts"
        f.write_bytes(data)
        proc = subprocess.run(
            [FFMPEG, "-nostdin", "-v", "warning", "-i", str(f), "-f", "null", "-"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.stderr.strip() == "", (url, proc.stderr)


def _first_segment(server: Server, fmt: str = "m3u8-aapl") -> str:
    url = media_playlists(server, fmt)[0]
    return _segments_of(url)[1][0]


def test_range_requests_return_exact_slices_and_416_when_unsatisfiable(server: Server) -> None:
    url = _first_segment(server)
    whole = fetch(url).body
    r = fetch(url, headers={"Range": "bytes=100-299"})
    assert r.status == 206
    assert r.body == whole[100:300]
    assert r.header("Content-Range") == f"bytes 100-299/{len(whole)}"
    assert r.header("Content-Length") == "200"
    r = fetch(url, headers={"Range": "bytes=-16"})
    assert r.status == 206 and r.body == whole[-16:]
    r = fetch(url, headers={"Range": f"bytes={len(whole)}-"})
    assert r.status == 416
    assert r.header("Content-Range") == f"bytes */{len(whole)}"


def test_etag_revalidation_answers_304(server: Server) -> None:
    for url in (_first_segment(server), master_url(server, "m3u8-aapl")):
        r = fetch(url)
        etag = r.header("ETag")
        assert etag and etag.startswith('"') and not etag.startswith("W/")
        assert r.header("Last-Modified")
        again = fetch(url, headers={"If-None-Match": etag})
        assert again.status == 304 and again.body == b""
        assert fetch(url, headers={"If-None-Match": '"other"'}).status == 200


def test_head_matches_get_without_a_body(server: Server) -> None:
    url = _first_segment(server)
    get = fetch(url)
    head = fetch(url, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(len(get.body))
    assert head.header("ETag") == get.header("ETag")


def test_cache_headers_let_cdns_keep_media_and_never_keys(server: Server) -> None:
    seg = fetch(_first_segment(server))
    assert "max-age=31536000" in (seg.header("Cache-Control") or "")
    assert seg.header("Accept-Ranges") == "bytes"
    man = fetch(master_url(server, "m3u8-aapl"))
    assert "public" in (man.header("Cache-Control") or "")
    key = server.request(f"/key?kid={SAMPLE_KID}")
    assert key.header("Cache-Control") == "no-store"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/nope.ism/manifest(format=m3u8-aapl)", 404),
        ("/sample.ism/QualityLevels(1)/Manifest(video,format=m3u8-aapl)", 404),
        ("/sample.ism/QualityLevels(615678)/Fragments(video=123,format=m3u8-aapl).ts", 404),
        ("/sample.ism/QualityLevels(615678)/Fragments(video=i,format=m3u8-aapl).ts", 404),
        ("/sample.ism/manifest(format=m3u8-bogus)", 400),
        ("/sample.ism/manifest(format=m3u8-aapl,bogus=1)", 400),
        ("/not-a-uuid/sample.ism/manifest(format=m3u8-aapl)", 400),
        ("/sample.ism/QualityLevels(615678)/Fragments(video=0,format=m3u8-aapl).m4s", 400),
        ("/whatever", 404),
    ],
)
def test_bad_urls_get_exact_statuses_and_a_reason(server: Server, path: str, status: int) -> None:
    r = server.request(path)
    assert r.status == status, r.body
    assert r.body and b"Traceback" not in r.body
    assert r.header("Access-Control-Allow-Origin") == "*"


def test_unknown_option_is_named_in_the_400(server: Server) -> None:
    r = server.request("/sample.ism/manifest(format=m3u8-aapl,colour=red)")
    assert r.status == 400 and b"colour" in r.body


def test_locator_prefix_serves_the_same_stream(server: Server) -> None:
    loc = str(uuid.uuid4())
    url = f"{server.base}/{loc}/sample.ism/manifest(format=m3u8-cmaf)"
    master = load(url)
    child = urljoin(url, master.playlists[0].uri)
    assert f"/{loc}/sample.ism/" in child
    pl = load(child)
    assert urljoin(child, pl.keys[-1].uri) == f"{server.base}/key?kid={SAMPLE_KID}"
    assert fetch(urljoin(child, pl.segments[0].uri)).status == 200


def test_cors_wildcard_on_simple_requests_errors_and_preflight(server: Server) -> None:
    origin = {"Origin": "https://player.example"}
    for path in ("/sample.ism/manifest(format=m3u8-aapl)", f"/key?kid={SAMPLE_KID}", "/nope"):
        r = server.request(path, headers=origin)
        assert r.header("Access-Control-Allow-Origin") == "*"
        expose = r.header("Access-Control-Expose-Headers") or ""
        assert {"Content-Length", "Content-Range", "ETag"} <= {h.strip() for h in expose.split(",")}
    pre = server.request(
        f"/key?kid={SAMPLE_KID}",
        method="OPTIONS",
        headers={**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,range"},
    )  # fmt: skip
    assert pre.status == 204
    allowed = (pre.header("Access-Control-Allow-Headers") or "").lower()
    assert all(h in allowed for h in ("authorization", "range", "content-type"))
    assert "POST" in (pre.header("Access-Control-Allow-Methods") or "")
    assert int(pre.header("Access-Control-Max-Age") or 0) > 0


# --- servers with their own configs -------------------------------------------------------------


def test_cors_allow_list_reflects_listed_origins_with_credentials(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path, 'cors_origins = ["https://player.example"]')
    with run_server("--config", str(cfg)) as s:
        ok = s.request(
            "/bbb.ism/manifest(format=m3u8-aapl)", headers={"Origin": "https://player.example"}
        )
        assert ok.header("Access-Control-Allow-Origin") == "https://player.example"
        assert ok.header("Access-Control-Allow-Credentials") == "true"
        assert "Origin" in (ok.header("Vary") or "")
        other = s.request(
            "/bbb.ism/manifest(format=m3u8-aapl)", headers={"Origin": "https://evil.example"}
        )
        assert other.header("Access-Control-Allow-Origin") is None
        assert "Origin" in (other.header("Vary") or "")
        pre = s.request(
            f"/key?kid={SAMPLE_KID}", method="OPTIONS",
            headers={"Origin": "https://player.example", "Access-Control-Request-Method": "GET"},
        )  # fmt: skip
        assert pre.status == 204
        assert pre.header("Access-Control-Allow-Origin") == "https://player.example"
        assert pre.header("Access-Control-Allow-Credentials") == "true"


def test_fixed_iv_is_written_to_playlists_and_used_for_every_segment(tmp_path: Path) -> None:
    iv = bytes.fromhex("D7" * 16)
    cfg = sample_config(tmp_path, asset=f'iv = "0x{iv.hex().upper()}"')
    with run_server("--config", str(cfg)) as s:
        url = f"{s.base}/bbb.ism/manifest(format=m3u8-aapl)"
        child = urljoin(url, load(url).playlists[0].uri)
        pl = load(child)
        assert pl.keys[-1].iv == "0x" + "D7" * 16
        for u in [urljoin(child, seg.uri) for seg in pl.segments]:
            clear = decrypt(SAMPLE_KEY, iv, fetch(u).body)
            assert clear[0] == 0x47


def test_clear_asset_streams_in_the_clear_unless_encryption_cbc_is_asked(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path)
    cfg.write_text(cfg.read_text().replace('protection = "aes-128"', 'protection = "clear"'))
    with run_server("--config", str(cfg)) as s:
        url = f"{s.base}/bbb.ism/manifest(format=m3u8-aapl)"
        child = urljoin(url, load(url).playlists[0].uri)
        pl = load(child)
        assert not [k for k in pl.keys if k]
        assert fetch(urljoin(child, pl.segments[0].uri)).body[0] == 0x47
        url = f"{s.base}/bbb.ism/manifest(format=m3u8-aapl,encryption=cbc)"
        child = urljoin(url, load(url).playlists[0].uri)
        assert "encryption=cbc" in child
        pl = load(child)
        assert pl.keys[-1].method == "AES-128"
        body = fetch(urljoin(child, pl.segments[0].uri)).body
        assert decrypt(SAMPLE_KEY, sequence_iv(0), body)[0] == 0x47


def test_base_url_forces_absolute_urls(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path, 'base_url = "https://cdn.example/origin"')
    with run_server("--config", str(cfg)) as s:
        master = load(f"{s.base}/bbb.ism/manifest(format=m3u8-cmaf)")
        assert all(
            p.uri.startswith("https://cdn.example/origin/bbb.ism/") for p in master.playlists
        )
        child = s.request("/bbb.ism/" + master.playlists[0].uri.split("/bbb.ism/")[1])
        pl = m3u8.loads(child.body.decode())
        assert pl.keys[-1].uri == f"https://cdn.example/origin/key?kid={SAMPLE_KID}"
        assert pl.segments[0].uri.startswith("https://cdn.example/origin/bbb.ism/QualityLevels(")


def test_a_broken_source_is_refused_at_start_and_the_other_assets_still_load(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((SAMPLE_DIR / "sample_240p.mp4").read_bytes()[:5000])
    text = tmp_path / "text.mp4"
    text.write_text("this is not an mp4 file at all\n" * 10)
    more = (
        f'[[assets]]\nname = "truncated"\nfiles = ["{broken}"]\n'
        f'[[assets]]\nname = "notmp4"\nfiles = ["{text}"]\n'
    )
    cfg = sample_config(tmp_path, more=more)
    with run_server("--config", str(cfg)) as s:
        # The summary's lines after the first arrive through the output-draining thread.
        assert _wait_for(lambda: "notmp4: REFUSED" in "".join(s.output)), "".join(s.output)
        out = "".join(s.output)
        assert "truncated: REFUSED" in out and "broken.mp4" in out
        assert "notmp4: REFUSED" in out and "text.mp4" in out
        assert s.request("/bbb.ism/manifest(format=m3u8-aapl)").status == 200
        r = s.request("/truncated.ism/manifest(format=m3u8-aapl)")
        assert r.status == 404 and b"could not be loaded" in r.body


def test_a_damaged_moov_a_missing_file_and_a_directory_refuse_their_assets_and_the_rest_serve(
    tmp_path: Path,
) -> None:
    data = bytearray((SAMPLE_DIR / "sample_240p.mp4").read_bytes())
    elst = data.rindex(b"elst") - 4  # the audio track's
    # The audio edit's media_time far past the track (its audio is the asset's: listed first).
    data[elst + 20 : elst + 24] = (0x00BD0400).to_bytes(4, "big")
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data)
    (tmp_path / "folder.mp4").mkdir()
    more = "".join(
        f'[[assets]]\nname = "{name}"\nfiles = ["{path}", "{SAMPLE_DIR / "sample_360p.mp4"}"]\n'
        for name, path in (
            ("damaged", damaged),
            ("missing", tmp_path / "gone.mp4"),
            ("folder", tmp_path / "folder.mp4"),
        )
    )
    cfg = sample_config(tmp_path, more=more)
    check = subprocess.run(
        [*_origin(), "check-config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 1  # still errors to fix, listed together
    assert "assets[2].files[0]: no such file" in check.stderr
    assert "assets[3].files[0]: is a directory" in check.stderr
    with run_server("--config", str(cfg)) as s:
        assert _wait_for(lambda: "folder: REFUSED" in "".join(s.output)), "".join(s.output)
        out = "".join(s.output)
        assert "damaged: REFUSED" in out
        assert "missing: REFUSED" in out and "gone.mp4: no such file" in out
        assert "folder: REFUSED" in out and "is a directory" in out
        health = s.request("/healthz").body.decode()
        assert '"assets": ["bbb"]' in health
        assert '"refused": ["damaged", "folder", "missing"]' in health
        master = master_url_of(s, "bbb")
        pl = load(urljoin(master, load(master).playlists[0].uri))
        for seg in pl.segments:  # the good asset serves every segment
            assert fetch(urljoin(pl.base_uri or master, seg.uri)).status == 200
        for name in ("damaged", "missing", "folder"):
            assert s.request(f"/{name}.ism/manifest(format=m3u8-aapl)").status == 404


def master_url_of(s: Server, name: str) -> str:
    return f"{s.base}/{name}.ism/manifest(format=m3u8-aapl)"


def test_serve_refuses_a_bad_config_with_every_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nport = -1\n[[assets]]\nname = "x"\nfiles = ["missing.mp4"]\n')
    proc = subprocess.run(
        [*_origin(), "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "server.port" in proc.stderr and "assets[0].files[0]" in proc.stderr


def _origin() -> list[str]:
    import sys  # noqa: PLC0415

    return [sys.executable, "-m", "origin"]


def test_check_config_accepts_the_shipped_configs_and_names_errors(tmp_path: Path) -> None:
    shipped = sorted((ROOT / "config").glob("*.toml"))
    assert len(shipped) >= 3
    for cfg in [*shipped, ROOT / "origin" / "sample" / "sample.toml"]:
        ok = subprocess.run(
            [*_origin(), "check-config", str(cfg)], capture_output=True, text=True, timeout=60
        )
        assert ok.returncode == 0, (cfg, ok.stderr)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[assets]]\nname = "x"\nfiles = []\nprotection = "aes-128"\n')
    proc = subprocess.run(
        [*_origin(), "check-config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert f"{bad}: assets[0].key:" in proc.stderr


def test_inspect_prints_tracks_and_the_segment_plan() -> None:
    proc = subprocess.run(
        [*_origin(), "inspect", str(SAMPLE_DIR / "sample_480p.mp4"), "--segment-duration", "4"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "avc1.4d401e" in out and "854x480" in out and "24.000 fps" in out
    assert "mp4a.40.2" in out and "48000 Hz" in out
    assert "3 segments [4.000, 4.000, 2.000]" in out


def test_workers_share_one_port(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with run_server("--workers", "2", "--port", str(port)) as s:
        for _ in range(10):
            assert s.request("/sample.ism/manifest(format=m3u8-aapl)").status == 200


def _wait_for(predicate: object, timeout: float = 20.0) -> bool:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_sighup_reloads_the_config_and_a_bad_one_is_refused_and_the_old_kept(
    tmp_path: Path,
) -> None:
    import http.client  # noqa: PLC0415
    import signal  # noqa: PLC0415

    cfg = sample_config(tmp_path)
    with run_server("--config", str(cfg)) as s:
        assert s.request("/bbb.ism/manifest(format=m3u8-aapl)").status == 200
        assert s.request("/more.ism/manifest(format=m3u8-aapl)").status == 404
        port = int(s.base.rsplit(":", 1)[1])
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        kept.request("GET", "/bbb.ism/manifest(format=m3u8-aapl)")
        assert kept.getresponse().read()
        files = f'"{SAMPLE_DIR / "sample_240p.mp4"}"'
        cfg.write_text(cfg.read_text() + f'[[assets]]\nname = "more"\nfiles = [{files}]\n')
        s.proc.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: s.request("/more.ism/manifest(format=m3u8-aapl)").status == 200), (
            "".join(s.output)
        )
        # A connection opened before the reload is still served (no dropped connections).
        kept.request("GET", "/more.ism/manifest(format=m3u8-aapl)")
        assert kept.getresponse().status == 200
        kept.close()
        cfg.write_text(cfg.read_text().replace('name = "more"', 'name = "bad name"'))
        s.proc.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: "reload refused" in "".join(s.output)), "".join(s.output)
        assert "assets[1].name" in "".join(s.output)
        assert s.request("/more.ism/manifest(format=m3u8-aapl)").status == 200
        assert s.request("/bbb.ism/manifest(format=m3u8-aapl)").status == 200


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_serving(tmp_path: Path) -> None:
    import os  # noqa: PLC0415
    import re  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with run_server("--workers", "2", "--port", str(port)) as s:
        # The pids line follows the address line, which run_server returns on: wait for it.
        assert _wait_for(lambda: any("worker processes (pids" in ln for ln in s.output))
        line = next(ln for ln in s.output if "worker processes (pids" in ln)
        pids = [int(p) for p in re.findall(r"\d+", line.split("pids", 1)[1])]
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        assert _wait_for(lambda: any("started in its place" in ln for ln in s.output))
        replaced = next(ln for ln in s.output if "started in its place" in ln)
        assert f"worker {pids[0]} exited (status -9)" in replaced
        new = int(replaced.rsplit("worker ", 1)[1].split()[0])
        assert new not in pids
        for _ in range(20):  # new connections land on both workers, the new one included
            assert s.request("/sample.ism/manifest(format=m3u8-aapl)").status == 200
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=30) == 0
        assert not any("started in its place" in ln for ln in s.output if ln is not replaced)
