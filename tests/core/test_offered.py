"""pipeline.offered: every delivery a URL may ask for under a policy, the default first."""

from __future__ import annotations

from origin.core import pipeline
from origin.core.encryption import Scheme
from origin.core.urls import Encryption, Format


def pairs(fmt: Format | None, allowed: list[str]) -> list[tuple[Encryption | None, Scheme | None]]:
    return [(o.option, o.scheme) for o in pipeline.offered(fmt, allowed)]


def test_ts_is_offered_only_what_ts_carries() -> None:
    assert pairs(Format.HLS_TS, ["cbc", "cbcs", "cenc"]) == [(None, Scheme.AES_128)]


def test_the_default_comes_first_and_is_not_offered_again() -> None:
    assert pairs(Format.HLS_CMAF, ["cbcs", "cbc"]) == [
        (None, Scheme.CBCS),
        (Encryption.CBC, Scheme.AES_128),
    ]


def test_a_clear_default_still_offers_the_schemes_a_url_may_ask_for() -> None:
    assert pairs(None, ["clear", "cenc", "cbcs"]) == [(None, None), (Encryption.CENC, Scheme.CENC)]


def test_a_blocked_protocol_offers_nothing() -> None:
    assert pairs(Format.DASH_CSF, []) == []
    assert pairs(Format.HLS_TS, ["cenc"]) == []  # no scheme the policy allows fits TS
