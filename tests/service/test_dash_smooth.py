"""End to end: DASH and Smooth Streaming from the same sources, over HTTP, decoded by ffmpeg."""

from __future__ import annotations

import itertools
import re
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.support.dash_check import assert_valid_mpd
from tests.support.media import FFMPEG, decode_errors
from tests.support.server import ROOT, SAMPLE_KEY, SAMPLE_KID, Server, fetch, run_server
from tests.support.smooth_client import client_init, read_chunks, read_levels

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
DASH_FORMATS = ["mpd-time-csf", "mpd-time-cmaf"]
SAMPLE_SECONDS = Fraction(10021333, 1000000)  # the sample's audio runs to 10.0213 s


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with run_server() as s:
        yield s


def mpd_url(server: Server, fmt: str) -> str:
    return f"{server.base}/sample.ism/manifest(format={fmt})"


def get_mpd(server: Server, fmt: str) -> ET.Element:
    r = fetch(mpd_url(server, fmt))
    assert r.status == 200
    assert r.header("Content-Type") == "application/dash+xml"
    assert_valid_mpd(r.body.decode())
    return ET.fromstring(r.body)


def _segment_urls(server: Server, fmt: str) -> dict[str, list[str]]:
    """Every Representation's init + media segment URLs, expanded from the SegmentTimeline."""
    root = get_mpd(server, fmt)
    base = mpd_url(server, fmt)
    out: dict[str, list[str]] = {}
    for aset in root.iterfind(".//d:AdaptationSet", NS):
        tmpl = aset.find("d:SegmentTemplate", NS)
        assert tmpl is not None
        times = []
        t = 0
        for s in tmpl.iterfind(".//d:S", NS):
            t = int(s.get("t", t))
            for _ in range(int(s.get("r", "0")) + 1):
                times.append(t)
                t += int(s.get("d", "0"))
        for rep in aset.iterfind("d:Representation", NS):
            rid = rep.get("id", "")
            init = tmpl.get("initialization", "").replace("$RepresentationID$", rid)
            media = tmpl.get("media", "").replace("$RepresentationID$", rid)
            out[rid] = [urljoin(base, init)] + [
                urljoin(base, media.replace("$Time$", str(t))) for t in times
            ]
    return out


@pytest.mark.parametrize("fmt", DASH_FORMATS)
def test_mpd_is_static_with_one_video_and_one_audio_set_and_exact_attributes(
    server: Server, fmt: str
) -> None:
    root = get_mpd(server, fmt)
    assert root.get("type") == "static"
    profiles = root.get("profiles", "")
    assert "urn:mpeg:dash:profile:isoff-live:2011" in profiles
    assert ("urn:mpeg:dash:profile:cmaf:2019" in profiles) == (fmt == "mpd-time-cmaf")
    sets = root.findall(".//d:AdaptationSet", NS)
    assert [a.get("contentType") for a in sets] == ["video", "audio"]
    video, audio = sets
    assert video.get("segmentAlignment") == "true" and video.get("startWithSAP") == "1"
    reps = video.findall("d:Representation", NS)
    assert [(r.get("width"), r.get("height")) for r in reps] == [
        ("426", "240"), ("640", "360"), ("854", "480"),
    ]  # fmt: skip
    assert [r.get("codecs") for r in reps] == ["avc1.4d4015", "avc1.4d401e", "avc1.4d401e"]
    assert all(r.get("frameRate") == "24" and r.get("sar") == "1:1" for r in reps)
    assert audio.get("lang") == "en"
    arep = audio.find("d:Representation", NS)
    assert arep is not None
    assert arep.get("codecs") == "mp4a.40.2" and arep.get("audioSamplingRate") == "48000"
    chan = arep.find("d:AudioChannelConfiguration", NS)
    assert chan is not None and chan.get("value") == "2"


@pytest.mark.parametrize("fmt", DASH_FORMATS)
def test_every_dash_segment_of_every_representation_decodes(
    server: Server, fmt: str, tmp_path: Path
) -> None:
    for rid, urls in _segment_urls(server, fmt).items():
        bodies = []
        for u in urls:
            r = fetch(u)
            assert r.status == 200, u
            assert r.header("Content-Type") in ("video/mp4", "audio/mp4")
            bodies.append(r.body)
        init, media = bodies[0], bodies[1:]
        assert init[4:8] == b"ftyp" and b"mvex" in init
        assert all(m[4:8] == b"styp" for m in media)  # clear: AES-128 is HLS-only
        f = tmp_path / f"{rid}.mp4"
        f.write_bytes(b"".join(bodies))
        assert decode_errors(str(f)) == "", rid


@pytest.mark.parametrize("fmt", DASH_FORMATS)
def test_ffmpeg_plays_the_dash_stream_over_http(server: Server, fmt: str) -> None:
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "warning", "-i", mpd_url(server, fmt),
         "-map", "0:v:2", "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def _smooth(server: Server) -> str:
    r = server.request("/sample.ism/manifest")
    assert r.status == 200
    assert r.header("Content-Type") == "application/vnd.ms-sstr+xml"
    return r.body.decode()


def _tfxd(fragment: bytes) -> tuple[int, int]:
    """(FragmentAbsoluteTime, FragmentDuration) of a Smooth fragment's tfxd box."""
    uuid = bytes.fromhex("6D1D9B0542D544E680E2141DAFF757B2")
    i = fragment.index(uuid)
    version = fragment[i + 16]
    if version == 1:
        return struct.unpack(">QQ", fragment[i + 20 : i + 36])
    return struct.unpack(">II", fragment[i + 20 : i + 28])


def test_smooth_manifest_describes_every_level_exactly(server: Server) -> None:
    text = _smooth(server)
    root = ET.fromstring(text)
    assert (root.get("MajorVersion"), root.get("TimeScale")) == ("2", "10000000")
    levels = read_levels(text)
    video = [lv for lv in levels if lv.stream_type == "video"]
    audio = [lv for lv in levels if lv.stream_type == "audio"]
    assert [(v.width, v.height) for v in video] == [(426, 240), (640, 360), (854, 480)]
    assert all(v.fourcc == "H264" and v.codec_private_data.startswith("00000001") for v in video)
    assert len(audio) == 1 and audio[0].fourcc == "AACL" and audio[0].sampling_rate == 48000
    for kind in ("video", "audio"):
        chunks = read_chunks(text, kind)
        total = Fraction(sum(d for _, d in chunks), 10_000_000)
        assert abs(total - SAMPLE_SECONDS) <= Fraction(1, 24), kind  # within one frame
        assert all(t2 == t1 + d1 for (t1, d1), (t2, _) in itertools.pairwise(chunks))


def test_smooth_fragments_play_from_codec_private_data_alone(
    server: Server, tmp_path: Path
) -> None:
    """What a Smooth client does: build the decoder from the manifest, append fragments, play."""
    text = _smooth(server)
    root = ET.fromstring(text)
    for level in read_levels(text):
        stream = root.find(f"StreamIndex[@Type='{level.stream_type}']")
        assert stream is not None
        template = stream.get("Url", "")
        chunks = read_chunks(text, level.stream_type)
        data = [client_init(level)]
        for t, d in chunks:
            path = template.replace("{bitrate}", str(level.bitrate)).replace("{start time}", str(t))
            r = server.request(f"/sample.ism/{path}")
            assert r.status == 200, path
            assert r.body[4:8] == b"moof"
            time, duration = _tfxd(r.body)
            assert time == t, "tfxd time must equal the manifest's t"
            assert abs(duration - d) <= 1
            data.append(r.body)
        f = tmp_path / f"{level.stream_type}_{level.bitrate}.mp4"
        f.write_bytes(b"".join(data))
        assert decode_errors(str(f)) == "", (level.stream_type, level.bitrate)
        frames = subprocess.run(
            [FFMPEG, "-nostdin", "-v", "error", "-i", str(f), "-map", "0:0", "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert frames.returncode == 0


def test_cmaf_segments_are_shared_by_hls_fmp4_and_dash(server: Server) -> None:
    hls = fetch(
        f"{server.base}/sample.ism/QualityLevels(64664)/"
        "Fragments(audio=40320000,format=m3u8-cmaf).m4s"
    )
    dash = fetch(
        f"{server.base}/sample.ism/QualityLevels(64664)/"
        "Fragments(audio=40320000,format=mpd-time-cmaf).m4s"
    )
    assert dash.status == 200
    # Same bytes once HLS's per-request AES-128 is undone.
    from origin.core.crypto import decrypt, sequence_iv  # noqa: PLC0415

    assert decrypt(SAMPLE_KEY, sequence_iv(1), hls.body) == dash.body
    assert SAMPLE_KID


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/sample.ism/manifest(format=mpd-time-csf,encryption=cbc)", 400),
        ("/sample.ism/manifest(format=mpd-time-csf,audio-only=false)", 400),
        ("/sample.ism/QualityLevels(64664)/Fragments(audio=i)", 400),
        ("/sample.ism/QualityLevels(64664)/Fragments(audio=1)", 404),
        ("/sample.ism/QualityLevels(1)/Fragments(video=0)", 404),
        ("/sample.ism/QualityLevels(64664)/Manifest(audio,format=mpd-time-csf)", 400),
    ],
)
def test_bad_dash_and_smooth_urls(server: Server, path: str, status: int) -> None:
    r = server.request(path)
    assert r.status == status, r.body


def test_dash_and_smooth_responses_revalidate_and_range(server: Server) -> None:
    for path in ("/sample.ism/manifest", "/sample.ism/manifest(format=mpd-time-csf)",
                 "/sample.ism/QualityLevels(64664)/Fragments(audio=0)"):  # fmt: skip
        r = server.request(path)
        etag = r.header("ETag")
        assert etag and server.request(path, headers={"If-None-Match": etag}).status == 304
        part = server.request(path, headers={"Range": "bytes=0-9"})
        assert part.status == 206 and part.body == r.body[:10]
        assert server.request(path, method="HEAD").header("Content-Length") == str(len(r.body))
        assert r.header("Access-Control-Allow-Origin") == "*"


def _protected_config(tmp_path: Path, extra: str = "") -> Path:
    sample = ROOT / "origin" / "sample"
    files = ", ".join(f'"{sample / f"sample_{n}.mp4"}"' for n in ("240p", "360p", "480p"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[[assets]]\nname = "p"\nfiles = [{files}]\nsegment_duration = 4.0\n'
        f'protection = "aes-128"\nkey_id = "{SAMPLE_KID}"\nkey = "{SAMPLE_KEY.hex()}"\n{extra}'
        f'[[assets]]\nname = "c"\nfiles = [{files}]\nsegment_duration = 4.0\n'
    )
    return cfg


def test_protocols_outside_an_aes_asset_delivery_policy_are_refused(tmp_path: Path) -> None:
    with run_server("--config", str(_protected_config(tmp_path))) as s:
        for path in ("/p.ism/manifest(format=mpd-time-csf)", "/p.ism/manifest",
                     "/p.ism/QualityLevels(64664)/Fragments(audio=0)"):  # fmt: skip
            r = s.request(path)
            assert r.status == 403, path
            assert b"delivery policy" in r.body
        assert s.request("/p.ism/manifest(format=m3u8-aapl)").status == 200
        # An asset with no protection at all streams every protocol in the clear.
        assert s.request("/c.ism/manifest(format=mpd-time-csf)").status == 200
        assert s.request("/c.ism/manifest").status == 200


def test_dash_clear_opens_dash_only(tmp_path: Path) -> None:
    with run_server("--config", str(_protected_config(tmp_path, 'dash = "clear"\n'))) as s:
        assert s.request("/p.ism/manifest(format=mpd-time-cmaf)").status == 200
        assert s.request("/p.ism/manifest").status == 403


def test_inspect_lists_dash_and_smooth_timelines() -> None:
    import sys  # noqa: PLC0415

    out = subprocess.run(
        [sys.executable, "-m", "origin", "inspect",
         str(ROOT / "origin" / "sample" / "sample_240p.mp4"), "--segment-duration", "4"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert re.search(r"DASH/Smooth video .*t=0 d=40000000", out), out
    assert re.search(r"DASH/Smooth audio .*t=0 d=40320000", out), out


@pytest.fixture(scope="module")
def fragmented_ladders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """The sample ladder remuxed as Smooth .ismv (tfxd, mfra) and as CMAF-style fMP4 (no mfra).

    One packaging per ladder: ffmpeg's empty_moov fMP4 drops the edit list, so its video starts
    two frames later than the .ismv remux, and mixing both in one ladder misaligns renditions.
    """
    out = tmp_path_factory.mktemp("fragmented")
    kinds = {
        "ismv": ["-f", "ismv"],
        "cmaf": ["-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"],
    }
    ladders: dict[str, list[Path]] = {}
    for kind, args in kinds.items():
        ladders[kind] = []
        for name in ("240p", "360p", "480p"):
            dst = out / f"{name}.{kind}"
            subprocess.run(
                [FFMPEG, "-nostdin", "-v", "error", "-i",
                 str(ROOT / "origin" / "sample" / f"sample_{name}.mp4"), "-c", "copy", *args,
                 str(dst)],
                check=True,
            )  # fmt: skip
            ladders[kind].append(dst)
    return ladders


@pytest.mark.parametrize("kind", ["ismv", "cmaf"])
def test_fragmented_sources_stream_in_every_protocol(
    fragmented_ladders: dict[str, list[Path]], kind: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    names = ", ".join(f'"{f}"' for f in fragmented_ladders[kind])
    cfg.write_text(f'[[assets]]\nname = "frag"\nfiles = [{names}]\nsegment_duration = 4.0\n')
    with run_server("--config", str(cfg)) as s:
        for fmt in ("m3u8-aapl", "m3u8-cmaf", "mpd-time-csf"):
            proc = subprocess.run(
                [FFMPEG, "-nostdin", "-v", "warning", "-i",
                 f"{s.base}/frag.ism/manifest(format={fmt})", "-f", "null", "-"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0 and proc.stderr.strip() == "", (fmt, proc.stderr)
        r = s.request("/frag.ism/manifest")
        assert r.status == 200, r.body
        text = r.body.decode()
        levels = read_levels(text)
        assert sorted(lv.height for lv in levels if lv.stream_type == "video") == [240, 360, 480]
        for level in levels:
            data = [client_init(level)]
            for t, _ in read_chunks(text, level.stream_type):
                data.append(s.request(f"/frag.ism/{level.fragment_url(t)}").body)
            f = tmp_path / f"smooth_{level.bitrate}.mp4"
            f.write_bytes(b"".join(data))
            assert decode_errors(str(f)) == "", level
