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
