"""Authorizing requests: where a token comes from, who the client is, and what to answer.

Tokens arrive as ``Authorization: Bearer <token>`` (hls.js ``xhrSetup``, Shaka request filters),
or in the query as ``token=`` (the Safari convention of the AMS blog) or ``MtsHlsUriToken=``
(Alibaba). A token that came in a manifest's query is propagated by the caller into every URL
that manifest writes, under the same parameter name, so native players that cannot add headers
(Safari/AVPlayer, ExoPlayer, ffmpeg) carry it all the way to the key service.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from origin.service import http
from origin.service.policy import Decision, Policy, authorize, bearer_token, client_ip

QUERY_PARAMS = ("token", "MtsHlsUriToken")
NIL_KID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    param: str | None  # the query parameter it came in, None for a header

    def query(self) -> str:
        """The encoded ``name=value`` that carries it on in URLs ('' for header tokens)."""
        return urlencode({self.param: self.value}) if self.param else ""


def request_token(request: web.Request) -> Token | None:
    header = bearer_token(request.headers.get("Authorization"))
    if header:
        return Token(header, None)
    for name in QUERY_PARAMS:
        value = request.query.get(name)
        if value:
            return Token(value, name)
    return None


def decide(
    request: web.Request,
    policy: Policy,
    kid: uuid.UUID | None,
    trusted_proxies: tuple[object, ...],
) -> Decision:
    token = request_token(request)
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", [])) or None
    return authorize(
        policy,
        kid=kid or NIL_KID,
        token=token.value if token else None,
        client_ip=client_ip(request.remote, forwarded, trusted_proxies),  # type: ignore[arg-type]
        now=time.time(),
    )


def refusal_response(decision: Decision) -> web.Response:
    headers = {"WWW-Authenticate": decision.www_authenticate} if decision.www_authenticate else None
    prefix = "unauthorized" if decision.status == 401 else "forbidden"
    return http.error_response(decision.status, f"{prefix}: {decision.reason}", headers)
