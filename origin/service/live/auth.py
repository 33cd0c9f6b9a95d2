"""Who may push to a channel: the ingest credential and allow-list, decided from the request head.

An ingest channel has a secret (HTTP Basic password of ``ingest_user``, or the Bearer token), an
allow-list of networks, or both; then both must pass. The decision uses the headers and the peer
address only, so a refused encoder is answered before a byte of its body is read. A wrong user,
a wrong password and a wrong token get the same answer: no hint which part was wrong. The secret
is never logged or echoed.
"""

from __future__ import annotations

import binascii
import hmac
from base64 import b64decode
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from origin.service.addresses import IPNetwork, in_networks
from origin.service.auth import bearer_token, client_ip
from origin.service.config import ChannelConfig

REALM = 'Basic realm="origin ingest"'


@dataclass(frozen=True, slots=True)
class IngestDenied:
    status: int  # 401 (no or wrong credential) or 403 (address not allowed, no ingest)
    reason: str  # short, safe to send and log: never the credential
    headers: Mapping[str, str] = field(default_factory=dict)


_CHALLENGE = {"WWW-Authenticate": REALM}


def check_ingest(
    channel: ChannelConfig,
    headers: Mapping[str, str],
    peer: str | None,
    trusted_proxies: Sequence[IPNetwork],
) -> IngestDenied | None:
    """None if this request may push to ``channel``, else how to refuse it. ``headers`` is the
    request's (an aiohttp CIMultiDict, or any mapping: names are matched case-insensitively),
    ``peer`` the socket's remote address."""
    if channel.loop:
        return IngestDenied(403, f"channel {channel.name!r} loops an asset and takes no ingest")
    if channel.ingest_secret is not None or channel.generate_secret:
        authorization = _header(headers, "Authorization")
        if authorization is None:
            return IngestDenied(401, "ingest needs a credential", _CHALLENGE)
        # A generated secret not resolved yet matches nothing: closed, never open.
        if channel.ingest_secret is None or not _credential_ok(channel, authorization):
            return IngestDenied(401, "wrong ingest credential", _CHALLENGE)
    if channel.ingest_allow:
        forwarded = _header(headers, "X-Forwarded-For", join=True)
        addr = client_ip(peer, forwarded, trusted_proxies)
        if not in_networks(channel.ingest_allow, addr):
            return IngestDenied(403, "ingest is not allowed from this address")
    elif channel.ingest_secret is None and not channel.generate_secret:
        # The config refuses such a channel; a ChannelConfig built by hand stays closed too.
        return IngestDenied(403, "channel has no ingest credential")
    return None


def _credential_ok(channel: ChannelConfig, authorization: str) -> bool:
    secret = (channel.ingest_secret or "").encode()
    token = bearer_token(authorization)
    if token is not None:
        return hmac.compare_digest(token.encode(), secret)
    basic = _basic(authorization)
    if basic is None:
        return False
    user, password = basic
    # Both compared, always: which one was wrong takes no more time to tell than the answer.
    user_ok = hmac.compare_digest(user, channel.ingest_user.encode())
    password_ok = hmac.compare_digest(password, secret)
    return user_ok & password_ok


def _basic(authorization: str) -> tuple[bytes, bytes] | None:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not rest.strip():
        return None
    try:
        decoded = b64decode(rest.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _header(headers: Mapping[str, str], name: str, *, join: bool = False) -> str | None:
    """The header ``name`` (case-insensitive); with ``join``, every occurrence joined by ","
    in order, as X-Forwarded-For must be read."""
    getall = getattr(headers, "getall", None)
    if getall is not None:  # a multidict: case-insensitive already, repeated headers kept
        values = [str(v) for v in getall(name, [])]
    else:
        values = [v for k, v in headers.items() if k.lower() == name.lower()]
    if not values:
        return None
    return ",".join(values) if join else values[0]
