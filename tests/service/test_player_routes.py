"""The built-in page's routes through the app (pytest-aiohttp's in-process client): the pages
and their Content-Security-Policy, the catalog the page plays from (every way it offers streams,
what the policy blocks is not offered, no secret anywhere), the status numbers against
/metrics, the vendored players against their pins, and the switch that turns it all off."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from origin.service.app import build_app
from origin.service.config import ConfigError, load_config
from origin.service.state import build_state
from tests.browser.harness import in_ci
from tests.support.cdn import free_port
from tests.support.server import SAMPLE_KEY, SAMPLE_KID, run_server, sample_config
from tests.support.token_server import jwt_policy

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "origin" / "service" / "player" / "vendor"
NODE_MODULES = ROOT / "tests" / "browser" / "node_modules"
LIVE_KEY = "0e99dad0437e12e286a49bb41987fbe5"


async def _client(aiohttp_client: MakeClient, tmp_path: Path, **lines: str) -> Client:
    cfg = sample_config(tmp_path, **lines)
    return await aiohttp_client(build_app(build_state(load_config(cfg))))


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: MakeClient) -> Client:
    more = f"""
[[assets]]
name = "gated"
files = ["{ROOT / "origin/sample/sample_240p.mp4"}"]
segment_duration = 4.0
protection = "aes-128"
key_id = "{uuid.uuid4()}"
key = "{"ab" * 16}"
policy = "jwt"

[[assets]]
name = "broken"
files = ["{ROOT / "pyproject.toml"}"]
segment_duration = 4.0

[[channels]]
name = "tv"
loop = true
asset = "bbb"
window = 60
protection = "aes-128"
key_id = "{uuid.uuid4()}"
key = "{LIVE_KEY}"

[[channels]]
name = "push"
ingest_secret = "s3cret-ingest-password"
window = 60
{jwt_policy()}
"""
    asset = "\n".join(
        [
            'hls = ["cbc", "cbcs", "cenc"]',
            'dash = ["clear", "cenc", "cbcs"]',
            'smooth = ["clear", "cenc"]',
        ]
    )
    return await _client(aiohttp_client, tmp_path, asset=asset, more=more)


async def json_of(client: Client, path: str) -> Any:
    r = await client.get(path)
    assert r.status == 200, await r.text()
    assert r.headers["Cache-Control"] == "no-store"
    return await r.json()


@pytest.mark.parametrize("path", ["/", "/player", "/status"])
async def test_the_pages_load_nothing_from_another_host(client: Client, path: str) -> None:
    r = await client.get(path)
    assert r.status == 200 and r.content_type == "text/html"
    csp = dict(d.strip().split(" ", 1) for d in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src"):
        assert csp[directive] == "'self'", csp
    assert set(csp["media-src"].split()) == {"'self'", "blob:"}
    html = await r.text()
    # Every script and style the page names is this origin's, and is served.
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(u.startswith(("/", "data:")) for u in refs), refs
    for ref in refs:
        if ref.startswith("/player/"):
            assert (await client.get(ref)).status == 200, ref


async def test_every_way_the_page_offers_streams(client: Client) -> None:
    for kind, name in (("vod", "bbb"), ("vod", "gated"), ("live", "tv")):
        for way in (await json_of(client, f"/player/titles/{kind}/{name}.json"))["ways"]:
            r = await client.get(way["path"])
            assert r.status == 200, (name, way, await r.text())


async def test_the_offered_ways_are_the_delivery_policys(client: Client) -> None:
    bbb = await json_of(client, "/player/titles/vod/bbb.json")
    offered = {(w["format"], w["encryption"]) for w in bbb["ways"]}
    assert ("HLS (TS)", "AES-128") in offered
    assert ("HLS (TS)", "cenc (ClearKey)") not in offered  # TS carries AES-128 only
    assert ("HLS (fMP4)", "cbcs (ClearKey)") in offered
    assert ("Smooth Streaming", "cenc (ClearKey)") in offered
    assert ("Smooth Streaming", "cbcs (ClearKey)") not in offered  # PIFF: cenc only
    gated = await json_of(client, "/player/titles/vod/gated.json")
    assert {w["protocol"] for w in gated["ways"]} == {
        "hls"
    }  # AES-128 alone: DASH and Smooth blocked
    assert gated["token"] == "key"
    assert [w["default"] for w in bbb["ways"] if w["format"] == "DASH (csf)"] == [
        True,
        False,
        False,
    ]


async def test_the_list_names_each_titles_protocols_and_an_unknown_title_is_404(
    client: Client,
) -> None:
    catalog = await json_of(client, "/player/catalog.json")
    protocols = {t["name"]: t["protocols"] for t in [*catalog["assets"], *catalog["channels"]]}
    assert protocols["bbb"] == ["hls", "dash", "smooth"] and protocols["gated"] == ["hls"]
    assert "ways" not in catalog["assets"][0]  # asked for per title
    for path in ("/player/titles/vod/nothing.json", "/player/titles/live/bbb.json",
                 "/player/titles/other/bbb.json"):  # fmt: skip
        assert (await client.get(path)).status == 404, path


async def test_a_refused_asset_is_listed_with_its_reason_and_nothing_to_play(
    client: Client,
) -> None:
    catalog = await json_of(client, "/player/catalog.json")
    broken = next(a for a in catalog["assets"] if a["name"] == "broken")
    assert broken["state"] == "refused" and "pyproject.toml" in broken["reason"]
    assert broken["protocols"] == []
    assert (await json_of(client, "/player/titles/vod/broken.json"))["ways"] == []
    status = await json_of(client, "/player/status.json")
    assert [r["name"] for r in status["assets"]["refused"]] == ["broken"]
    assert status["assets"]["refused"][0]["reason"] == broken["reason"]


async def test_no_key_token_or_credential_is_in_the_page_or_its_data(client: Client) -> None:
    secrets = [SAMPLE_KEY.hex(), SAMPLE_KID, LIVE_KEY, "s3cret-ingest-password", "ab" * 16]
    for path in ("/", "/status", "/player/catalog.json", "/player/status.json", "/player/app.js",
                 "/player/titles/vod/bbb.json", "/player/titles/live/tv.json",
                 "/player/titles/live/push.json"):  # fmt: skip
        body = (await (await client.get(path)).read()).decode().lower()
        for secret in secrets:
            assert secret.lower() not in body, (path, secret)


def _metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_the_status_lists_each_channel_and_cache(client: Client) -> None:
    status = await json_of(client, "/player/status.json")
    channels = {c["name"]: c for c in status["channels"]}
    assert channels["tv"]["loop"] and not channels["push"]["loop"]
    assert channels["push"]["state"] == "idle" and channels["push"]["streams"] == []
    caches = {c["name"] for c in status["caches"]}
    assert caches == {"segments", "manifests", "routes", "answers"}


def test_the_status_numbers_are_the_metrics_of_a_real_server(tmp_path: Path) -> None:
    """Requests are counted on the server's connections: a real server, two workers (the
    status page must show every worker's numbers, as a scrape does)."""
    cfg, port = str(sample_config(tmp_path)), str(free_port())
    with run_server("--config", cfg, "--workers", "2", "--port", port) as server:
        for _ in range(6):  # several connections: both workers answer some
            assert server.request(f"/key?kid={SAMPLE_KID}").status == 200
            assert server.request("/bbb.ism/manifest(format=m3u8-aapl)").status == 200
        assert server.request("/key?kid=" + str(uuid.uuid4())).status == 404
        time.sleep(1.5)  # each worker flushes its counts every second
        status = json.loads(server.request("/player/status.json").body)
        text = server.request("/metrics").body.decode()
    assert (
        status["keys"]["delivered"]
        == 6
        == _metric(text, "origin_key_requests_total", outcome="delivered")
    )
    assert status["keys"]["unknown_key"] == 1
    manifests = next(c for c in status["caches"] if c["name"] == "manifests")
    assert manifests["hits"] + manifests["misses"] == _metric(
        text, "origin_cache_lookups_total", cache="manifests", result="hit"
    ) + _metric(text, "origin_cache_lookups_total", cache="manifests", result="miss")
    assert manifests["capacity"] == _metric(text, "origin_cache_capacity_bytes", cache="manifests")
    assert (
        status["requests"]["manifest"]["200"]
        == 6
        == _metric(text, "origin_requests_total", kind="manifest", status="200")
    )


async def test_switched_off_in_the_config_nothing_of_it_is_served(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    client = await _client(aiohttp_client, tmp_path, server="player = false")
    for path in ("/", "/player", "/status", "/player/app.js", "/player/catalog.json",
                 "/player/status.json", "/player/vendor/hls.min.js"):  # fmt: skip
        assert (await client.get(path)).status == 404, path
    assert (await client.get("/bbb.ism/manifest(format=m3u8-aapl)")).status == 200


def test_a_player_switch_that_is_not_a_boolean_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.player"):
        load_config(sample_config(tmp_path, server='player = "no"'))


@pytest.mark.parametrize(
    "path",
    ["/player/vendor/../__init__.py", "/player/..%2F__init__.py", "/player/index.html",
     "/player/listing.py", "/player/vendor/nothing.js", "/player/vendor/licenses/"],
)  # fmt: skip
async def test_nothing_but_the_page_files_is_served(client: Client, path: str) -> None:
    r = await client.get(path)
    assert r.status == 404, path


async def test_the_players_are_served_compressed_and_revalidated(client: Client) -> None:
    r = await client.get("/player/vendor/dash.all.min.js", headers={"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
    body = await r.read()  # decompressed by the client
    assert hashlib.sha256(body).hexdigest() == _pins()["dashjs"]["files"]["dash.all.min.js"]
    again = await client.get(
        "/player/vendor/dash.all.min.js", headers={"If-None-Match": r.headers["ETag"]}
    )
    assert again.status == 304


def _pins() -> dict[str, Any]:
    players: dict[str, Any] = json.loads((VENDOR / "players.json").read_text())["players"]
    return players


def test_the_vendored_players_are_their_pinned_files_with_their_licenses() -> None:
    manifest = json.loads((VENDOR / "players.json").read_text())
    lock = json.loads((ROOT / "tests/browser/package-lock.json").read_text())["packages"]
    for name, pin in manifest["players"].items():
        assert pin["version"] == lock[f"node_modules/{name}"]["version"], name
        for file, digest in pin["files"].items():
            assert hashlib.sha256((VENDOR / file).read_bytes()).hexdigest() == digest, file
    for name, pkg in manifest["packages"].items():
        assert pkg["files"], name  # every bundled package's license is kept
        assert all((VENDOR / f).is_file() for f in pkg["files"]), name
    assert {"hls.js", "dashjs", "shaka-player"} <= set(manifest["packages"])


def test_the_vendored_players_are_byte_for_byte_those_npm_installed() -> None:
    """What the browser tests run (npm ci against the lock's integrity) is what the page
    serves: re-vendor (scripts/vendor_players.py) whenever tests/browser/package.json moves."""
    if not NODE_MODULES.is_dir():
        if in_ci():
            pytest.fail("tests/browser/node_modules is missing: scripts/test.sh runs npm ci")
        pytest.skip("npm ci has not run in tests/browser")
    for name, pin in _pins().items():
        for file, source in pin["sources"].items():
            installed = (NODE_MODULES / name / source).read_bytes()
            assert installed == (VENDOR / file).read_bytes(), file
