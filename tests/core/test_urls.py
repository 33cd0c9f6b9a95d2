import uuid

import pytest

from origin.core import urls
from origin.core.urls import Encryption, Format, UrlError


def test_master_options_parse_in_any_order() -> None:
    p = urls.parse_path("/bbb.ism/manifest(audio-only=false,encryption=cbc,format=m3u8-aapl)")
    assert isinstance(p, urls.MasterPath)
    assert p.asset == "bbb" and p.locator is None
    assert p.options == urls.Options(Format.HLS_TS, Encryption.CBC, audio_only=False)


def test_locator_prefix_must_be_a_uuid() -> None:
    loc = str(uuid.uuid4())
    p = urls.parse_path(f"/{loc}/bbb.ism/manifest(format=m3u8-cmaf)")
    assert isinstance(p, urls.MasterPath) and p.locator == loc
    with pytest.raises(UrlError, match="locator"):
        urls.parse_path("/not-a-uuid/bbb.ism/manifest(format=m3u8-cmaf)")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/bbb.ism/manifest(format=m3u8-foo)", "unknown value 'm3u8-foo'"),
        ("/bbb.ism/manifest(format=m3u8-aapl,colour=red)", "unknown option 'colour'"),
        ("/bbb.ism/manifest(format=m3u8-aapl,format=m3u8-aapl)", "given twice"),
        ("/bbb.ism/manifest(encryption=cens)", "unknown value 'cens'"),
        ("/bbb.ism/manifest(format=m3u8-aapl,encryption=cenc)", "not a scheme for format=m3u8"),
        ("/bbb.ism/manifest(encryption=cbc)", "not a scheme for Smooth"),
        ("/bbb.ism/manifest(format=mpd-time-csf,encryption=cbc)", "not a scheme for format=mpd"),
        ("/bbb.ism/QualityLevels(1)/Manifest(video)", "needs format="),
        (
            "/bbb.ism/QualityLevels(1)/Manifest(video,format=m3u8-aapl,audio-only=false)",
            "not allowed",
        ),
        ("/bbb.ism/QualityLevels(x)/Manifest(video,format=m3u8-aapl)", "malformed"),
    ],
)
def test_bad_options_name_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(UrlError, match=message):
        urls.parse_path(path)


def test_fragment_and_media_urls_round_trip() -> None:
    opts = urls.Options(Format.HLS_CMAF, Encryption.CBC)
    media = urls.parse_path("/a.ism/" + urls.media_uri(123, "video", opts))
    assert media == urls.MediaPath(None, "a", 123, "video", opts)
    frag = urls.parse_path(
        "/a.ism/QualityLevels(123)/" + urls.fragment_uri("audio", 40000000, opts)
    )
    assert frag == urls.FragmentPath(None, "a", 123, "audio", 40000000, opts)
    init = urls.parse_path(
        "/a.ism/QualityLevels(123)/" + urls.fragment_uri("video", urls.INIT, opts)
    )
    assert isinstance(init, urls.FragmentPath) and init.time == urls.INIT


@pytest.mark.parametrize("fmt", [*Format, None])
def test_master_urls_round_trip(fmt: Format | None) -> None:
    master = urls.parse_path("/" + urls.master_uri("a", fmt))
    assert master == urls.MasterPath(None, "a", urls.Options(format=fmt))


def test_root_url_brackets_an_ipv6_host() -> None:
    assert urls.root_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert urls.root_url("::1", 8080) == "http://[::1]:8080"


def test_non_stream_paths_are_not_ours() -> None:
    assert urls.parse_path("/favicon.ico") is None


def test_key_uri_climbs_to_the_root_from_the_playlist_folder() -> None:
    kid = uuid.UUID("da3813af-55e6-48e7-aa9f-a4d6031f7b4d")
    assert urls.key_uri(kid, depth=2) == f"../../key?kid={kid}"
    assert (
        urls.key_uri(kid, depth=3, base_url="https://o.example/")
        == f"https://o.example/key?kid={kid}"
    )
