"""The server's protection key pair for storage encryption (AMS: GetProtectionKey): an RSA key
and its self-signed X.509 certificate, kept in ``<state_dir>/storage/``.

Whoever encrypts a source file before upload needs only the certificate (``origin
protection-cert`` prints it); the private key never leaves the server's state folder (mode
0600). Nodes that serve the same encrypted files share the folder's two files.
"""

from __future__ import annotations

import datetime
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from origin.core.crypto.storage import StorageError, load_private_key, protection_key_id

KEY_NAME = "protection.key"
CERT_NAME = "protection.crt"
RSA_BITS = 3072  # NIST SP 800-57: 128-bit security, as the AES-256 key it wraps deserves more
VALID_DAYS = 3650
# What the certificate is for: wrapping content keys, nothing else.
_KEY_WRAP_USAGE = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=True,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProtectionKey:
    private: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def id(self) -> str:
        return protection_key_id(self.cert)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def folder(state_dir: Path) -> Path:
    return state_dir / "storage"


def load(state_dir: Path) -> ProtectionKey:
    """The key pair kept in ``state_dir``; StorageError when there is none or it is unusable."""
    where = folder(state_dir)
    try:
        key_pem = (where / KEY_NAME).read_bytes()
        cert_pem = (where / CERT_NAME).read_bytes()
    except FileNotFoundError:
        raise StorageError(
            f"no protection key in {where} (`origin protection-cert` makes one)"
        ) from None
    except OSError as e:
        raise StorageError(f"{where}: cannot read the protection key: {e.strerror}") from None
    try:
        private = load_private_key(key_pem)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise StorageError(f"{where}: the protection key or certificate is not PEM") from None
    if cert.public_key() != private.public_key():
        raise StorageError(f"{where}: the certificate is not the protection key's")
    return ProtectionKey(private, cert)


@functools.lru_cache(maxsize=4)
def cached(state_dir: Path) -> ProtectionKey:
    """:func:`load`, once per process and folder (an RSA key takes a while to parse; a failure
    is not kept, so a key made later is found)."""
    return load(state_dir)


def load_or_create(state_dir: Path) -> ProtectionKey:
    """The key pair kept in ``state_dir``, made there first if there is none."""
    where = folder(state_dir)
    if (where / KEY_NAME).exists():
        return load(state_dir)
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "origin storage protection")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(_KEY_WRAP_USAGE, critical=True)
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Both files appear at once (one rename of a folder made aside), so a process that finds
    # the folder finds a matching pair; a process that loses the race uses the winner's.
    try:
        where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        aside = Path(tempfile.mkdtemp(prefix=".storage-", dir=where.parent))
        fd = os.open(aside / KEY_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        (aside / CERT_NAME).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    except OSError as e:
        raise StorageError(f"{where}: cannot keep the protection key: {e.strerror}") from None
    try:
        aside.rename(where)
    except OSError:  # made by another process meanwhile
        shutil.rmtree(aside, ignore_errors=True)
        return load(state_dir)
    return ProtectionKey(private, cert)


def load_cert(path: Path) -> x509.Certificate:
    """A protection certificate handed over as a PEM file (``origin encrypt --cert``)."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise StorageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StorageError(f"{path}: is a directory") from None
    except OSError as e:
        raise StorageError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError:
        raise StorageError(f"{path}: not a PEM X.509 certificate") from None
