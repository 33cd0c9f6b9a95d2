from base64 import b64encode
from dataclasses import replace
from fractions import Fraction
from ipaddress import ip_network

import pytest
from multidict import CIMultiDict

from origin.service.config import ChannelConfig
from origin.service.live.auth import REALM, check_ingest

SECRET = "Zx8-ingest-secret-Qw3_9f0aLk2mN4pR"
NETS = (ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"))
PROXIES = (ip_network("192.0.2.0/24"),)
BASE = ChannelConfig(name="live", window=Fraction(120), segment_duration=Fraction(4))
SECRET_ONLY = replace(BASE, ingest_secret=SECRET)
ALLOW_ONLY = replace(BASE, ingest_allow=NETS)
BOTH = replace(BASE, ingest_secret=SECRET, ingest_allow=NETS)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_credential_is_challenged_with_basic_for_the_ingest_realm() -> None:
    denied = check_ingest(SECRET_ONLY, {}, "203.0.113.5", ())
    assert denied is not None and denied.status == 401
    assert denied.headers["WWW-Authenticate"] == REALM == 'Basic realm="origin ingest"'


def test_the_right_basic_credential_and_bearer_token_are_let_in() -> None:
    assert check_ingest(SECRET_ONLY, basic("origin", SECRET), "203.0.113.5", ()) is None
    assert check_ingest(SECRET_ONLY, bearer(SECRET), "203.0.113.5", ()) is None
    lower = {"authorization": basic("origin", SECRET)["Authorization"]}
    assert check_ingest(SECRET_ONLY, lower, None, ()) is None


@pytest.mark.parametrize(
    "headers",
    [
        basic("origin", SECRET + "x"),
        basic("someone", SECRET),
        basic("origin", ""),
        bearer(SECRET[:-1]),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + b64encode(SECRET.encode()).decode()},  # no "user:"
        {"Authorization": f"Digest {SECRET}"},
        {"Authorization": ""},
    ],
)
def test_a_wrong_credential_gets_the_same_401_whatever_part_is_wrong(
    headers: dict[str, str],
) -> None:
    denied = check_ingest(SECRET_ONLY, headers, "127.0.0.1", ())
    assert denied is not None and denied.status == 401
    assert denied.headers == {"WWW-Authenticate": REALM}
    assert denied.reason == "wrong ingest credential"  # no hint which part
    assert SECRET not in denied.reason


def test_a_custom_ingest_user_is_the_only_basic_user() -> None:
    ch = replace(SECRET_ONLY, ingest_user="enc1")
    assert check_ingest(ch, basic("enc1", SECRET), None, ()) is None
    denied = check_ingest(ch, basic("origin", SECRET), None, ())
    assert denied is not None and denied.status == 401


def test_an_allow_list_alone_admits_its_networks_only() -> None:
    assert check_ingest(ALLOW_ONLY, {}, "10.1.2.3", ()) is None
    assert check_ingest(ALLOW_ONLY, {}, "127.0.0.1", ()) is None
    assert check_ingest(ALLOW_ONLY, {}, "::ffff:10.9.9.9", ()) is None  # dual-stack socket
    denied = check_ingest(ALLOW_ONLY, {}, "203.0.113.5", ())
    assert denied is not None and denied.status == 403 and not denied.headers
    denied = check_ingest(ALLOW_ONLY, {}, None, ())
    assert denied is not None and denied.status == 403


def test_with_both_the_credential_and_the_address_must_pass() -> None:
    assert check_ingest(BOTH, basic("origin", SECRET), "10.0.0.7", ()) is None
    right_key_wrong_place = check_ingest(BOTH, basic("origin", SECRET), "203.0.113.5", ())
    assert right_key_wrong_place is not None and right_key_wrong_place.status == 403
    wrong_key_right_place = check_ingest(BOTH, basic("origin", "nope"), "10.0.0.7", ())
    assert wrong_key_right_place is not None and wrong_key_right_place.status == 401
    no_key_right_place = check_ingest(BOTH, {}, "10.0.0.7", ())
    assert no_key_right_place is not None and no_key_right_place.status == 401


def test_x_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    xff = {"X-Forwarded-For": "10.0.0.9"}
    assert check_ingest(ALLOW_ONLY, xff, "192.0.2.10", PROXIES) is None
    untrusted = check_ingest(ALLOW_ONLY, xff, "203.0.113.5", PROXIES)
    assert untrusted is not None and untrusted.status == 403
    # A trusted proxy forwarding an outside client: the client's address decides.
    outside = check_ingest(ALLOW_ONLY, {"X-Forwarded-For": "203.0.113.5"}, "192.0.2.10", PROXIES)
    assert outside is not None and outside.status == 403
    # An allowed address the client wrote itself, left of what the proxy appended, is not believed.
    spoofed = {"X-Forwarded-For": "10.0.0.9, 203.0.113.5"}
    denied = check_ingest(ALLOW_ONLY, spoofed, "192.0.2.10", PROXIES)
    assert denied is not None and denied.status == 403


def test_repeated_x_forwarded_for_headers_are_read_in_order() -> None:
    headers = CIMultiDict([("X-Forwarded-For", "203.0.113.5"), ("x-forwarded-for", "10.0.0.9")])
    assert check_ingest(ALLOW_ONLY, headers, "192.0.2.10", PROXIES) is None
    headers = CIMultiDict([("X-Forwarded-For", "10.0.0.9"), ("X-Forwarded-For", "203.0.113.5")])
    denied = check_ingest(ALLOW_ONLY, headers, "192.0.2.10", PROXIES)
    assert denied is not None and denied.status == 403


def test_an_unresolved_generated_secret_admits_nobody() -> None:
    ch = replace(BASE, generate_secret=True)
    for headers in ({}, basic("origin", ""), bearer("generate")):
        denied = check_ingest(ch, headers, "127.0.0.1", ())
        assert denied is not None and denied.status == 401


def test_a_channel_with_no_credential_or_a_looped_one_takes_no_ingest() -> None:
    for ch in (BASE, replace(BASE, loop=True, asset="vod", ingest_secret=SECRET)):
        denied = check_ingest(ch, bearer(SECRET), "127.0.0.1", ())
        assert denied is not None and denied.status == 403
