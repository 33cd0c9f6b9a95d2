"""Storage encryption at rest (AMS StorageEncryption 1.0): the seed's counter layout, decryption
at any offset, the key checksum, key wrapping and the record's checks."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from origin.core.crypto import storage
from origin.core.crypto.storage import FileEncryptor, StorageCipher, StorageError, StorageRecord
from origin.service.keys.protection import ProtectionKey, load_or_create


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> ProtectionKey:
    return load_or_create(tmp_path_factory.mktemp("state"))


def _seed_keystream(key: bytes, iv: bytes, blocks: int) -> bytes:
    """The seed's definition, block by block: AES(key, IV || big-endian 64-bit block number)."""
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return b"".join(ecb.update(iv + n.to_bytes(8, "big")) for n in range(blocks))


def test_the_keystream_is_the_seeds_counter_layout_iv_then_a_64_bit_block_number() -> None:
    key, iv = os.urandom(32), os.urandom(8)
    data = os.urandom(16 * 40)
    expected = bytes(a ^ b for a, b in zip(data, _seed_keystream(key, iv, 40), strict=True))
    assert StorageCipher(key, iv).apply(0, data) == expected


@pytest.mark.parametrize(("offset", "size"), [(0, 1), (1, 15), (15, 2), (16, 16), (33, 400)])
def test_bytes_at_any_offset_decrypt_alone_as_in_the_whole_file(offset: int, size: int) -> None:
    key, iv = os.urandom(32), os.urandom(8)
    clear = os.urandom(1024)
    whole = StorageCipher(key, iv).apply(0, clear)
    piece = whole[offset : offset + size]
    assert StorageCipher(key, iv).apply(offset, piece) == clear[offset : offset + size]


def test_the_key_checksum_is_the_key_id_in_dotnet_byte_order_under_aes_ecb() -> None:
    key = bytes(range(32))
    kid = uuid.UUID("32e6efaf-5fba-4538-b115-9d1cefe43510")
    # .NET's Guid.ToByteArray: the first three fields little-endian, the rest as written.
    dotnet = bytes.fromhex("afefe632ba5f3845b1159d1cefe43510")
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    expected = base64.b64encode(ecb.update(dotnet)[:8]).decode()
    assert storage.key_checksum(key, kid) == expected


def test_an_encrypted_file_opens_with_the_protection_key_and_decrypts_to_the_original(
    pair: ProtectionKey,
) -> None:
    clear = os.urandom(5000)
    enc = FileEncryptor(pair.cert)
    cipher_text = enc.update(clear[:1234]) + enc.update(clear[1234:])
    record = StorageRecord.loads(enc.finish().dumps())
    assert cipher_text != clear and record.size == len(clear)
    cipher = storage.open_record(record, pair.private)
    assert cipher.apply(0, cipher_text) == clear
    assert record.protection_key_id == pair.id
    assert json.loads(record.dumps())["algorithm"] == "AES-256-CTR"


def test_another_servers_key_does_not_unwrap_the_content_key(pair: ProtectionKey) -> None:
    enc = FileEncryptor(pair.cert)
    enc.update(b"x" * 100)
    record = enc.finish()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(StorageError, match="does not unwrap"):
        storage.open_record(record, other)


def test_a_key_that_unwraps_but_fails_the_checksum_is_refused(pair: ProtectionKey) -> None:
    enc = FileEncryptor(pair.cert)
    record = enc.finish()
    wrong = StorageRecord.from_json({**record.to_json(), "checksum": "AAAAAAAAAAA="})
    with pytest.raises(StorageError, match="checksum"):
        storage.open_record(wrong, pair.private)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"algorithm": "AES-128-CBC"}, "algorithm must be"),
        ({"key_id": "nope"}, "key_id is not a UUID"),
        ({"iv": "18446744073709551616"}, "iv must be"),
        ({"iv": 5}, "iv must be"),
        ({"encrypted_key": "!!"}, "base64"),
        ({"checksum": "AAAA"}, "checksum must be 8 bytes"),
        ({"sha256": "ab"}, "sha256 must be"),
        ({"size": -1}, "size must be"),
        ({"size": True}, "size must be"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_a_damaged_record_names_the_field(
    pair: ProtectionKey, change: dict[str, object], reason: str
) -> None:
    good = FileEncryptor(pair.cert).finish().to_json()
    with pytest.raises(StorageError, match=reason):
        StorageRecord.from_json({**good, **change})


def test_a_record_that_is_not_json_or_lacks_a_field_is_refused(pair: ProtectionKey) -> None:
    with pytest.raises(StorageError, match="not JSON"):
        StorageRecord.loads(b"\xff{")
    good = FileEncryptor(pair.cert).finish().to_json()
    del good["sha256"]
    with pytest.raises(StorageError, match="missing field 'sha256'"):
        StorageRecord.from_json(good)
    with pytest.raises(StorageError, match="not a JSON object"):
        StorageRecord.from_json([1])


def test_no_key_material_appears_in_a_record_or_its_repr(pair: ProtectionKey) -> None:
    key = os.urandom(32)
    record = FileEncryptor(pair.cert, key=key).finish()
    text = record.dumps() + repr(record) + repr(StorageCipher(key, b"\0" * 8))
    for form in (key.hex(), base64.b64encode(key).decode()):
        assert form not in text
