from fractions import Fraction

import m3u8

from origin.core.manifest import common, hls


def _segments(durations: list[Fraction]) -> list[hls.Segment]:
    return [hls.Segment(d, f"seg{i}.ts") for i, d in enumerate(durations)]


def test_target_duration_is_the_ceiling_of_the_longest_segment() -> None:
    segs = _segments([Fraction(4), Fraction(4001, 1000), Fraction(2)])
    text = hls.media_playlist(segs)
    assert "#EXT-X-TARGETDURATION:5\n" in text
    assert hls.target_duration(_segments([Fraction(4), Fraction(4)])) == 4


def test_media_playlist_is_vod_with_endlist_and_parses_with_m3u8() -> None:
    segs = _segments([Fraction(4), Fraction(4), Fraction(2)])
    text = hls.media_playlist(segs, key=hls.Key("../../key?kid=abc"))
    pl = m3u8.loads(text)
    assert pl.playlist_type == "vod"
    assert pl.is_endlist
    assert pl.media_sequence == 0
    assert [s.duration for s in pl.segments] == [4.0, 4.0, 2.0]
    assert pl.keys[-1].method == "AES-128"
    assert pl.keys[-1].uri == "../../key?kid=abc"
    assert pl.keys[-1].iv is None
    assert pl.version == 3


def test_fixed_iv_is_written_as_hex_and_fmp4_needs_version_6() -> None:
    iv = bytes.fromhex("D7" * 16)
    text = hls.media_playlist(_segments([Fraction(6)]), key=hls.Key("k", iv), map_uri="init.mp4")
    pl = m3u8.loads(text)
    assert pl.keys[-1].iv == "0x" + "D7" * 16
    assert pl.version == 6
    assert pl.segment_map[0].uri == "init.mp4"


def test_map_precedes_key_so_the_init_segment_stays_clear() -> None:
    text = hls.media_playlist(_segments([Fraction(6)]), key=hls.Key("k"), map_uri="init.mp4")
    assert text.index("#EXT-X-MAP") < text.index("#EXT-X-KEY")


def test_extinf_keeps_microseconds() -> None:
    assert hls.extinf(Fraction(8425708, 1000000)) == "8.425708"


def test_master_lists_variants_with_codecs_resolution_and_audio_group() -> None:
    text = hls.master_playlist(
        [
            hls.Variant(
                "v1.m3u8", 500000, 400000, ["avc1.4d401e", "mp4a.40.2"], (640, 360), 24.0, "aud"
            ),
            hls.Variant("a.m3u8", 70000, 66000, ["mp4a.40.2"], audio_group="aud"),
        ],
        [hls.AudioRendition("aud", "en", "a.m3u8", "en", 2)],
    )
    pl = m3u8.loads(text)
    assert pl.is_variant
    v = pl.playlists[0].stream_info
    assert (v.bandwidth, v.average_bandwidth, v.resolution) == (500000, 400000, (640, 360))
    assert v.codecs == "avc1.4d401e,mp4a.40.2"
    assert v.frame_rate == 24.0
    assert pl.media[0].type == "AUDIO" and pl.media[0].language == "en"
    assert pl.media[0].channels == "2"


def test_language_tags_prefer_two_letters_and_drop_und() -> None:
    assert common.language_tag("eng") == "en"
    assert common.language_tag("und") is None
    assert common.language_tag("tlh") == "tlh"
