"""The encryption stage of the pipeline: which scheme per protocol, which segment stays clear,
which IV, and the EXT-X-KEY of an encrypted media playlist."""

from fractions import Fraction

import m3u8
import pytest

from origin.core import pipeline, urls
from origin.core.crypto import Aes128Cbc, decrypt
from origin.core.mp4 import parse_bytes
from origin.core.urls import Format, Options

KEY = bytes(range(16))
CLEAR = bytes(range(256)) * 40


def ref(fmt: Format | None, index: int) -> pipeline.SegmentRef:
    return pipeline.SegmentRef(fmt, "video", 1, index)


@pytest.mark.parametrize(
    ("fmt", "scheme"),
    [
        (Format.HLS_TS, pipeline.Scheme.AES_128),
        (Format.HLS_CMAF, pipeline.Scheme.AES_128),
        (Format.DASH_CSF, None),
        (Format.DASH_CMAF, None),
        (None, None),  # Smooth Streaming
    ],
)
def test_aes_128_is_the_scheme_of_hls_only(fmt: Format | None, scheme: object) -> None:
    assert pipeline.scheme_for(fmt) is scheme


def test_media_segment_without_a_configured_iv_uses_its_sequence_number() -> None:
    body, iv = pipeline.encrypt_segment(ref(Format.HLS_TS, 7), CLEAR, Aes128Cbc(KEY), None)
    assert iv == (7).to_bytes(16, "big")
    assert decrypt(KEY, iv, bytes(body)) == CLEAR


def test_media_segment_uses_the_configured_iv() -> None:
    fixed = bytes.fromhex("00112233445566778899aabbccddeeff")
    body, iv = pipeline.encrypt_segment(ref(Format.HLS_CMAF, 7), CLEAR, Aes128Cbc(KEY), fixed)
    assert iv == fixed
    assert decrypt(KEY, fixed, bytes(body)) == CLEAR


def test_init_segment_stays_clear() -> None:
    body, iv = pipeline.encrypt_segment(
        ref(Format.HLS_CMAF, urls.INIT), CLEAR, Aes128Cbc(KEY), None
    )
    assert body == CLEAR
    assert iv == b""


def test_media_playlist_key_tag_carries_the_token_and_the_fixed_iv_after_the_map(
    fuzz_inputs: dict[str, bytes],
) -> None:
    p = pipeline.prepare("a", [parse_bytes(fuzz_inputs["progressive.mp4"])], Fraction(2))
    fixed = bytes(range(16))
    text = pipeline.media_playlist(
        p,
        "video",
        p.video[0].id,
        Options(format=Format.HLS_CMAF),
        key_uri="../../key?kid=k1",
        iv=fixed,
        query="token=t",
    )
    playlist = m3u8.loads(text)
    (key,) = playlist.keys
    assert key.method == "AES-128"
    assert key.uri == "../../key?kid=k1&token=t"
    assert key.iv == "0x" + fixed.hex().upper()
    assert text.index("#EXT-X-MAP") < text.index("#EXT-X-KEY")


def test_media_playlist_without_a_key_uri_is_clear(fuzz_inputs: dict[str, bytes]) -> None:
    p = pipeline.prepare("a", [parse_bytes(fuzz_inputs["progressive.mp4"])], Fraction(2))
    text = pipeline.media_playlist(p, "video", p.video[0].id, Options(format=Format.HLS_TS))
    assert "#EXT-X-KEY" not in text


def test_deferred_body_knows_its_size_and_iv_and_makes_the_same_bytes_whole_or_sliced() -> None:
    cipher = Aes128Cbc(KEY)
    body, iv = pipeline.encrypted_body(ref(Format.HLS_TS, 7), CLEAR, cipher, None)
    assert isinstance(body, pipeline.Encrypted)
    assert iv == (7).to_bytes(16, "big")
    whole = bytes(body.whole())
    assert len(body) == len(whole) == (len(CLEAR) // 16 + 1) * 16
    assert b"".join(bytes(p) for p in body.slices(1000)) == whole
    assert (bytes(pipeline.encrypt_segment(ref(Format.HLS_TS, 7), CLEAR, cipher, None)[0])) == whole
    assert pipeline.encrypted_body(ref(Format.HLS_CMAF, urls.INIT), CLEAR, cipher, None) == (
        CLEAR,
        b"",
    )
