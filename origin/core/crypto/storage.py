"""Storage encryption at rest, as AMS's StorageEncryption 1.0: a whole source file under AES-CTR
with a per-file content key and IV, the key wrapped with RSA-OAEP by the server's certificate.

The counter block is the seed's: the 8-byte IV in bytes 0-7 and a 64-bit big-endian block
number in bytes 8-15, starting at zero. A file is far shorter than 2^64 blocks, so the low half
never wraps and this is plain 128-bit CTR from ``IV || 0``; any byte offset is then reached by
starting at block ``offset // 16`` and skipping ``offset % 16`` keystream bytes, which is what
lets a segment request read (and decrypt) only its own byte ranges.

The key is AES-256, as the seed recommends ("encrypt your content locally using AES-256"):
the file's confidentiality rests on it alone, with no per-segment re-keying. OAEP uses SHA-256
for its hash and MGF1 (the .NET SDK's RSACryptoServiceProvider used SHA-1, which RFC 8017 keeps
only for compatibility). The record keeps two checks: the seed's key checksum (the key id
encrypted with the content key under AES-ECB, 8 bytes) proves an unwrapped key is the right
one, and the SHA-256 of the encrypted file proves the file is the one that was encrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SCHEME = "StorageEncryption"
VERSION = "1.0"
ALGORITHM = "AES-256-CTR"
KEY_BYTES = 32
IV_BYTES = 8
BLOCK = 16
CHECKSUM_BYTES = 8
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_FIELDS = (
    "scheme", "version", "algorithm", "key_id", "iv", "encrypted_key", "protection_key_id",
    "checksum", "sha256", "size",
)  # fmt: skip


class StorageError(ValueError):
    """A storage-encryption record or key that cannot be used, with the reason (never a key)."""


def counter_block(iv: bytes, offset: int) -> bytes:
    """The counter block of the block holding byte ``offset``."""
    return iv + (offset // BLOCK).to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class StorageCipher:
    """AES-CTR over one file: :meth:`apply` en- or decrypts the bytes found at any offset."""

    key: bytes = field(repr=False)
    iv: bytes

    def _at(self, offset: int) -> Any:
        counter = modes.CTR(counter_block(self.iv, offset))
        ctx = Cipher(algorithms.AES(self.key), counter).encryptor()
        skip = offset % BLOCK
        if skip:
            ctx.update(bytes(skip))  # the keystream bytes before ``offset`` in its block
        return ctx

    def apply(self, offset: int, data: bytes | bytearray | memoryview) -> bytes:
        """The bytes found at ``offset``, en- or decrypted (a new object)."""
        ctx = self._at(offset)
        return ctx.update(data) + ctx.finalize()  # type: ignore[no-any-return]

    def apply_in_place(self, offset: int, buf: bytearray) -> None:
        """Decrypt (or encrypt) ``buf``, read at ``offset``, where it lies: a new object of a
        segment's size costs three times the AES itself (its pages are faulted in anew)."""
        self._at(offset).update_into(buf, buf)


def key_checksum(key: bytes, kid: uuid.UUID) -> str:
    """The seed's checksum: the key id (in .NET's Guid byte order) encrypted with the content
    key under AES-ECB, its first 8 bytes in base64."""
    ctx = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return base64.b64encode((ctx.update(kid.bytes_le) + ctx.finalize())[:CHECKSUM_BYTES]).decode()


def protection_key_id(cert: x509.Certificate) -> str:
    """The certificate's identity in a record: its SHA-256 fingerprint, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def wrap_key(cert: x509.Certificate, key: bytes) -> bytes:
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise StorageError("the protection certificate's key is not RSA")
    return public.encrypt(key, _OAEP)


def unwrap_key(private: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    try:
        return private.decrypt(wrapped, _OAEP)
    except ValueError:
        raise StorageError(
            "the content key does not unwrap with this server's protection key"
        ) from None


@dataclass(frozen=True, slots=True)
class StorageRecord:
    """What is recorded of one encrypted file (AMS: the AssetFile's encryption fields and the
    content key's EncryptedContentKey/ProtectionKeyId/Checksum), all of it public."""

    key_id: uuid.UUID
    iv: bytes
    encrypted_key: bytes
    protection_key_id: str
    checksum: str
    sha256: str  # of the encrypted file
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "scheme": SCHEME,
            "version": VERSION,
            "algorithm": ALGORITHM,
            "key_id": str(self.key_id),
            # AMS writes the IV as the decimal of its 8 bytes read as an unsigned integer.
            "iv": str(int.from_bytes(self.iv, "big")),
            "encrypted_key": base64.b64encode(self.encrypted_key).decode(),
            "protection_key_id": self.protection_key_id,
            "checksum": self.checksum,
            "sha256": self.sha256,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, raw: object) -> StorageRecord:
        """Read a record back; StorageError names the first field that is wrong."""
        if not isinstance(raw, dict):
            raise StorageError("the record is not a JSON object")
        unknown = sorted(set(raw) - set(_FIELDS))
        if unknown:
            raise StorageError(f"unknown field {unknown[0]!r}")
        for name in _FIELDS:
            if name not in raw:
                raise StorageError(f"missing field {name!r}")
        for name, want in (("scheme", SCHEME), ("version", VERSION), ("algorithm", ALGORITHM)):
            if raw[name] != want:
                raise StorageError(f"{name} must be {want!r}")
        try:
            kid = uuid.UUID(str(raw["key_id"]))
        except ValueError:
            raise StorageError("key_id is not a UUID") from None
        iv_text = raw["iv"]
        if not isinstance(iv_text, str) or not iv_text.isdigit() or int(iv_text) >= 1 << 64:
            raise StorageError("iv must be the decimal of an unsigned 64-bit integer")
        try:
            wrapped = base64.b64decode(str(raw["encrypted_key"]), validate=True)
            if len(base64.b64decode(str(raw["checksum"]), validate=True)) != CHECKSUM_BYTES:
                raise StorageError("checksum must be 8 bytes in base64")
        except binascii.Error:
            raise StorageError("encrypted_key and checksum must be base64") from None
        digest = raw["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
            raise StorageError("sha256 must be 64 hex digits")
        size = raw["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise StorageError("size must be a non-negative integer")
        pkid = raw["protection_key_id"]
        if not isinstance(pkid, str) or not _is_hex(pkid):
            raise StorageError("protection_key_id must be hex")
        return cls(
            kid, int(iv_text).to_bytes(8, "big"), wrapped, pkid, str(raw["checksum"]), digest, size
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def loads(cls, text: str | bytes) -> StorageRecord:
        try:
            return cls.from_json(json.loads(text))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise StorageError("the record is not JSON") from None


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def open_record(record: StorageRecord, private: rsa.RSAPrivateKey) -> StorageCipher:
    """The file's cipher, once its key unwraps and matches the record's checksum."""
    key = unwrap_key(private, record.encrypted_key)
    if len(key) != KEY_BYTES or key_checksum(key, record.key_id) != record.checksum:
        raise StorageError("the unwrapped content key does not match the record's checksum")
    return StorageCipher(key, record.iv)


class FileEncryptor:
    """Encrypts one file from its start, chunk by chunk, under a fresh key and IV (or given ones),
    and makes its record at the end; the key leaves it only wrapped."""

    def __init__(
        self,
        cert: x509.Certificate,
        key_id: uuid.UUID | None = None,
        *,
        key: bytes | None = None,
        iv: bytes | None = None,
    ) -> None:
        self._key = key if key is not None else os.urandom(KEY_BYTES)
        if len(self._key) != KEY_BYTES:
            raise StorageError(f"a storage key is {KEY_BYTES} bytes")
        self._iv = iv if iv is not None else os.urandom(IV_BYTES)
        self._kid = key_id or uuid.uuid4()
        self._cert = cert
        self._wrapped = wrap_key(cert, self._key)  # before any byte: a bad certificate fails now
        aes = algorithms.AES(self._key)
        self._ctx = Cipher(aes, modes.CTR(counter_block(self._iv, 0))).encryptor()
        self._sha = hashlib.sha256()
        self._size = 0

    def update(self, chunk: bytes) -> bytes:
        out = self._ctx.update(chunk)
        self._sha.update(out)
        self._size += len(out)
        return out

    def finish(self) -> StorageRecord:
        self._ctx.finalize()
        return StorageRecord(
            self._kid,
            self._iv,
            self._wrapped,
            protection_key_id(self._cert),
            key_checksum(self._key, self._kid),
            self._sha.hexdigest(),
            self._size,
        )


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise StorageError("the protection key is not an RSA private key")
    return key
