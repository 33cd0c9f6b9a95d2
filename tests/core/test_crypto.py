import os

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from origin.core.crypto import Aes128Cbc, decrypt, padded_size, sequence_iv


def reference_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(padded) + enc.finalize()


KEY = bytes(range(16))
SHARED = Aes128Cbc(KEY)  # one long-lived cipher across examples: the chain must be re-steered


@settings(max_examples=300)
@given(data=st.binary(max_size=5000), iv=st.binary(min_size=16, max_size=16))
def test_reused_cipher_matches_fresh_cbc_with_pkcs7_for_any_length_and_iv(
    data: bytes, iv: bytes
) -> None:
    assert bytes(SHARED.encrypt(data, iv)) == reference_encrypt(KEY, iv, data)


def test_output_size_is_the_pkcs7_padded_size() -> None:
    c = Aes128Cbc(KEY)
    for n in (0, 1, 15, 16, 17, 1 << 20):
        assert len(c.encrypt(bytes(n), bytes(16))) == padded_size(n) == (n // 16 + 1) * 16


def test_decrypt_round_trips_and_rejects_bad_padding() -> None:
    key, iv, data = os.urandom(16), os.urandom(16), os.urandom(1000)
    ct = bytes(Aes128Cbc(key).encrypt(data, iv))
    assert decrypt(key, iv, ct) == data
    with pytest.raises(ValueError, match="padding"):
        decrypt(os.urandom(16), iv, ct)


def test_sequence_iv_is_the_big_endian_media_sequence_number() -> None:
    assert sequence_iv(0) == bytes(16)
    assert sequence_iv(258) == bytes(14) + b"\x01\x02"


def test_cipher_repr_and_bad_sizes_never_show_the_key() -> None:
    key = bytes.fromhex("00112233445566778899aabbccddeeff")
    c = Aes128Cbc(key)
    assert key.hex() not in repr(c)
    with pytest.raises(ValueError) as e:
        c.encrypt(b"x", b"short")
    assert key.hex() not in str(e.value)
    with pytest.raises(ValueError):
        Aes128Cbc(b"123")


@settings(max_examples=200)
@given(
    data=st.binary(max_size=3000),
    iv=st.binary(min_size=16, max_size=16),
    slice_size=st.integers(min_value=1, max_value=1100),
)
def test_slices_join_to_the_whole_encryption(data: bytes, iv: bytes, slice_size: int) -> None:
    pieces = [bytes(p) for p in SHARED.encrypt_slices(data, iv, slice_size)]
    assert b"".join(pieces) == reference_encrypt(KEY, iv, data)
    step = max(slice_size - slice_size % 16, 16)
    assert all(len(p) == step for p in pieces[:-1])  # whole blocks: the chain carries over
    assert 1 <= len(pieces[-1]) - (len(data) - step * (len(pieces) - 1)) <= 16  # the padding


@settings(max_examples=100)
@given(
    a=st.binary(min_size=1, max_size=2000),
    b=st.binary(min_size=1, max_size=2000),
    order=st.lists(st.sampled_from("abw"), max_size=60),
)
def test_slices_of_segments_interleave_on_one_context(a: bytes, b: bytes, order: list[str]) -> None:
    """Two segments streamed at once on one shared cipher, other segments encrypted whole
    between their slices: each stream still gives its own segment's exact ciphertext."""
    iv_a, iv_b = bytes(16), bytes(range(16))
    streams = {"a": SHARED.encrypt_slices(a, iv_a, 48), "b": SHARED.encrypt_slices(b, iv_b, 32)}
    out: dict[str, list[bytes]] = {"a": [], "b": []}
    for who in [*order, *"ab" * 70]:  # then both to the end
        if who == "w":
            assert bytes(SHARED.encrypt(b"in between", iv_a)) == reference_encrypt(
                KEY, iv_a, b"in between"
            )
        else:
            piece = next(streams[who], None)
            if piece is not None:
                out[who].append(bytes(piece))
    assert b"".join(out["a"]) == reference_encrypt(KEY, iv_a, a)
    assert b"".join(out["b"]) == reference_encrypt(KEY, iv_b, b)


def test_slices_are_made_only_when_asked_for() -> None:
    c = Aes128Cbc(KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        c.encrypt_slices(b"x", b"short", 64)
    stream = c.encrypt_slices(bytes(1 << 20), bytes(16), 64 * 1024)
    first = next(stream)
    assert len(first) == 64 * 1024
    del stream  # a client gone mid-body: the rest is never encrypted
    assert bytes(c.encrypt(b"after", bytes(16))) == reference_encrypt(KEY, bytes(16), b"after")
