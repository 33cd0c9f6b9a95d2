"""Envelope keys (seed 002): a content key sealed with its key id and policy by a master key,
deterministic, and refused when changed, truncated or opened with another master key."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from origin.core.crypto import envelope
from origin.core.crypto.envelope import EnvelopeError

MASTER = bytes(range(32))
KID = uuid.UUID("da3813af-55e6-48e7-aa9f-a4d6031f7b4d")
KEY = bytes.fromhex("3c9f2bd4a1e0475e8a7f6b2c1d0e9f8a")


def _raw(token: str) -> bytearray:
    return bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _token(raw: bytes | bytearray) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_sealed_key_opens_to_its_key_id_key_and_policy() -> None:
    token = envelope.seal(MASTER, "m1", KID, KEY, "jwt")
    env = envelope.parse(token)
    assert env.master_id == "m1"
    opened = envelope.open_envelope(MASTER, env)
    assert (opened.kid, opened.key, opened.policy) == (KID, KEY, "jwt")
    assert (
        envelope.open_envelope(
            MASTER, envelope.parse(envelope.seal(MASTER, "m1", KID, KEY, None))
        ).policy
        is None
    )


def test_sealing_is_deterministic_so_every_node_writes_the_same_uri() -> None:
    assert envelope.seal(MASTER, "m1", KID, KEY, "p") == envelope.seal(MASTER, "m1", KID, KEY, "p")
    assert envelope.seal(MASTER, "m1", KID, KEY, "p") != envelope.seal(MASTER, "m1", KID, KEY, "q")


def test_the_token_is_url_safe_and_carries_no_key_in_the_clear() -> None:
    token = envelope.seal(MASTER, "m1", KID, KEY, "jwt")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    raw = bytes(_raw(token))
    assert KEY not in raw and KID.bytes not in raw and b"jwt" not in raw


@pytest.mark.parametrize("at", [2 + 2, 10, -1])
def test_any_changed_byte_of_the_wrap_does_not_open(at: int) -> None:
    raw = _raw(envelope.seal(MASTER, "m1", KID, KEY, "jwt"))
    raw[at] ^= 0x40
    with pytest.raises(EnvelopeError) as e:
        envelope.open_envelope(MASTER, envelope.parse(_token(raw)))
    assert not e.value.malformed


def test_another_master_key_does_not_open_it() -> None:
    env = envelope.parse(envelope.seal(MASTER, "m1", KID, KEY, None))
    with pytest.raises(EnvelopeError, match="does not open with master key 'm1'"):
        envelope.open_envelope(os.urandom(32), env)


@pytest.mark.parametrize(
    "token",
    ["", "!!!!", _token(b"\x02\x02m1" + bytes(40)), _token(b"\x01\x02m1" + bytes(8)),
     _token(b"\x01\x05m1"), _token(b"\x01\x02m\xff" + bytes(40)), "A" * 600],
)  # fmt: skip
def test_what_is_not_an_envelope_is_malformed(token: str) -> None:
    with pytest.raises(EnvelopeError) as e:
        envelope.parse(token)
    assert e.value.malformed


def test_a_master_key_id_must_be_short_and_url_safe() -> None:
    with pytest.raises(ValueError, match="master key id"):
        envelope.seal(MASTER, "m 1", KID, KEY, None)
