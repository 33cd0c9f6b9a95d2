"""The master keys that wrap content keys, behind a small KMS interface.

:class:`Kms` is what the server asks: seal a content key into an envelope (with the current
master key) and open one (with whichever master key it names). :class:`LocalKms` keeps AES-256
master keys from a file or an environment variable. A remote KMS fits the same two calls: Vault
transit with ``convergent_encryption`` (deterministic, as envelopes must be for byte-identical
playlists) or AWS KMS ``Encrypt``/``Decrypt`` with the envelope kept in the catalog; the key
service caches what it opens, so a remote call is made once per key and process.

Master key text (file or variable): one key per line, ``ID HEX`` (64 hex digits), ``#`` starts a
comment; the LAST key is the current one, the others still open what they sealed. Rotation
appends a key and re-seals every content key with it (``origin master-key rotate``); retired
lines can go once nothing sealed with them is left (old envelopes in cached playlists included).
"""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from origin.core.crypto import envelope
from origin.core.crypto.envelope import MASTER_ID, MASTER_KEY_BYTES, EnvelopeError, Opened

MASTER_KEYS_FILE = "master.keys"


class KmsError(ValueError):
    """The master keys cannot be read or used; the reason names no key."""


class Kms(Protocol):
    @property
    def current(self) -> str: ...

    def seal(self, kid: uuid.UUID, key: bytes, policy: str | None) -> str: ...

    def open(self, token: str) -> Opened: ...


@dataclass(frozen=True, slots=True)
class LocalKms:
    masters: dict[str, bytes] = field(repr=False)
    current: str

    def seal(self, kid: uuid.UUID, key: bytes, policy: str | None) -> str:
        return envelope.seal(self.masters[self.current], self.current, kid, key, policy)

    def open(self, token: str) -> Opened:
        env = envelope.parse(token)
        master = self.masters.get(env.master_id)
        if master is None:
            raise EnvelopeError(f"no master key {env.master_id!r} on this node", malformed=False)
        return envelope.open_envelope(master, env)


def parse_master_keys(text: str, where: str) -> LocalKms:
    masters: dict[str, bytes] = {}
    last = None
    for n, raw in enumerate(text.splitlines(), 1):
        parts = raw.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) != 2 or not MASTER_ID.fullmatch(parts[0]):
            raise KmsError(f"{where}: line {n}: must be `ID HEX` (ID: 1-32 of A-Za-z0-9_-)")
        try:
            key = bytes.fromhex(parts[1])
        except ValueError:
            key = b""
        if len(key) != MASTER_KEY_BYTES:
            raise KmsError(f"{where}: line {n}: the key must be {MASTER_KEY_BYTES * 2} hex digits")
        if parts[0] in masters:
            raise KmsError(f"{where}: line {n}: master key id {parts[0]!r} appears twice")
        masters[parts[0]] = key
        last = parts[0]
    if last is None:
        raise KmsError(f"{where}: no master key")
    return LocalKms(masters, last)


def key_line(master_id: str) -> str:
    return f"{master_id} {secrets.token_hex(MASTER_KEY_BYTES)}\n"


def load_local(path: Path | None, env: str | None, state_dir: Path) -> LocalKms:
    """The master keys from the variable ``env``, else the file ``path``, else
    ``<state_dir>/master.keys`` (made with one fresh key on first use, mode 0600)."""
    if env is not None:
        text = os.environ.get(env)
        if text is None:
            raise KmsError(f"the environment variable {env} (server.master_key_env) is not set")
        return parse_master_keys(text, f"${env}")
    if path is None:
        path = state_dir / MASTER_KEYS_FILE
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as e:
            raise KmsError(f"{path}: cannot keep the master keys: {e.strerror or e}") from None
        else:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write("# origin master keys: ID HEX, the last one current\n" + key_line("m1"))
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not ASCII text"
        raise KmsError(f"{path}: cannot read the master keys: {reason}") from None
    return parse_master_keys(text, str(path))


def rotate_file(path: Path) -> str:
    """Append a fresh master key to ``path`` and return its id (the next ``mN``)."""
    kms = parse_master_keys(path.read_text(encoding="ascii"), str(path))
    n = len(kms.masters) + 1
    while f"m{n}" in kms.masters:
        n += 1
    with path.open("a", encoding="ascii") as f:
        f.write(key_line(f"m{n}"))
    return f"m{n}"
