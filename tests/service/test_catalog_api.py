"""The management API against a real SQLite catalog and a real PostgreSQL one (Debian's,
started here), in process: the lifecycle of a key, a policy, an asset and its locators
(playable through the locator URL only, at once), locator times and revocation, channels,
storage records, master key rotation, and what is refused: no or a wrong admin key (401,
nothing changed), malformed JSON (400), wrong fields (422 with the field), unknown ids (404),
conflicts (409)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.catalog.merge import compose
from origin.service.catalog.store import Catalog
from origin.service.state import build_state
from tests.support.postgres import Postgres, postgres
from tests.support.server import SAMPLE_DIR
from tests.support.token_server import jwt_policy

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
ADMIN = "test-admin-key-0123456789abcdef"
FILES = [str(SAMPLE_DIR / f"sample_{n}.mp4") for n in ("240p", "360p")]


def write_config(where: Path, more: str = "", url: str | None = None) -> Path:
    cfg = where / "origin.toml"
    url = url or f"sqlite:///{where / 'catalog.db'}"
    cfg.write_text(
        f'[server]\nstate_dir = "{where / "state"}"\n'
        f'[catalog]\ndatabase_url = "{url}"\n'
        'admin_key_env = "ORIGIN_TEST_ADMIN"\n' + more
    )
    return cfg


async def start(aiohttp_client: MakeClient, cfg: Path, url: str) -> Client:
    catalog = await Catalog.open(url)
    snap = await catalog.snapshot()
    await catalog.close()
    return await aiohttp_client(build_app(build_state(compose(cfg, snap))))


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every API test against a SQLite file and against Debian's PostgreSQL (a database each)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server: Postgres = request.getfixturevalue("pg")
    return server.database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def api(
    tmp_path: Path, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> Client:
    monkeypatch.setenv("ORIGIN_TEST_ADMIN", ADMIN)
    cfg = write_config(tmp_path, jwt_policy("from-file"), database_url)
    return await start(aiohttp_client, cfg, database_url)


AUTH = {"Authorization": f"Bearer {ADMIN}"}


async def call(
    client: Client, method: str, path: str, body: Any = None, **kw: Any
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    headers = kw.pop("headers", AUTH)
    r = await client.request(method, f"/api/v1{path}", data=data, headers=headers, **kw)
    text = await r.text()
    return r.status, (json.loads(text) if text and r.content_type == "application/json" else text)


async def make_asset(api: Client, name: str = "movie", **more: Any) -> dict[str, Any]:
    status, key = await call(api, "POST", "/keys", {})
    assert status == 201, key
    spec = {"name": name, "files": FILES, "segment_duration": 4.0, "protection": "aes-128",
            "key_id": key["key_id"], **more}  # fmt: skip
    status, asset = await call(api, "POST", "/assets", spec)
    assert status == 201, asset
    return {"key": key, "asset": asset}


async def test_an_asset_made_through_the_api_plays_only_through_a_valid_locator(
    api: Client,
) -> None:
    made = await make_asset(api)
    assert made["asset"]["state"] == "loaded"
    assert (await api.get("/movie.ism/manifest(format=m3u8-aapl)")).status == 404
    status, loc = await call(api, "POST", "/locators", {"asset": "movie"})
    assert status == 201 and loc["valid_now"]
    master = loc["urls"]["hls"]
    path = master.split("://", 1)[1].split("/", 1)[1]
    r = await api.get("/" + path)
    assert r.status == 200, await r.text()
    text = await r.text()
    assert "#EXT-X-STREAM-INF" in text
    media = "/" + path.rsplit("/", 1)[0] + "/" + text.splitlines()[-1]
    playlist = await (await api.get(media)).text()
    key_uri = (
        next(ln for ln in playlist.splitlines() if ln.startswith("#EXT-X-KEY"))
        .split('URI="')[1]
        .split('"')[0]
    )
    assert key_uri.startswith("../../key?kid=")  # under the locator: /{locator}/key
    key = await api.get(f"/{loc['id']}/key?kid={made['key']['key_id']}")
    assert key.status == 200 and len(await key.read()) == 16
    assert (await api.get(f"/key?kid={made['key']['key_id']}")).status == 404  # not without it
    other = uuid.uuid4()
    r = await api.get(f"/{other}/movie.ism/manifest(format=m3u8-aapl)")
    assert r.status == 404 and r.headers["Cache-Control"] == "public, max-age=5"


async def test_a_deleted_locator_stops_manifests_and_keys_at_once(api: Client) -> None:
    made = await make_asset(api)
    _, loc = await call(api, "POST", "/locators", {"asset": "movie"})
    url = f"/{loc['id']}/movie.ism/manifest(format=m3u8-aapl)"
    assert (await api.get(url)).status == 200
    assert (await api.get(url)).status == 200  # cached now
    status, _ = await call(api, "DELETE", f"/locators/{loc['id']}")
    assert status == 204
    assert (await api.get(url)).status == 404
    assert (await api.get(f"/{loc['id']}/key?kid={made['key']['key_id']}")).status == 404
    assert (await call(api, "GET", f"/locators/{loc['id']}"))[0] == 404


async def test_a_locator_serves_only_between_its_start_and_end_and_caches_no_longer(
    api: Client,
) -> None:
    await make_asset(api)
    now = time.time()
    _, later = await call(api, "POST", "/locators", {"asset": "movie", "starts_at": now + 3600})
    _, past = await call(api, "POST", "/locators", {"asset": "movie", "ends_at": now - 1})
    _, soon = await call(api, "POST", "/locators", {"asset": "movie", "ends_at": now + 120})
    for loc in (later, past):
        assert not loc["valid_now"]
        assert (await api.get(f"/{loc['id']}/movie.ism/manifest")).status == 404
    r = await api.get(f"/{soon['id']}/movie.ism/manifest(format=m3u8-aapl)")
    assert r.status == 200
    age = int(r.headers["Cache-Control"].split("max-age=")[1])
    assert 110 <= age <= 120


async def test_no_or_a_wrong_admin_key_is_401_and_changes_nothing(api: Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {ADMIN}"}):
        status, body = await call(api, "POST", "/keys", {}, headers=headers)
        assert status == 401, body
        status, _ = await call(api, "GET", "/assets", headers=headers)
        assert status == 401
    _, keys = await call(api, "GET", "/keys")
    assert keys == {"keys": []}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        ({"name": "m", "files": "a.mp4"}, 422, "files"),
        ({"name": "m", "files": FILES, "segment_duration": "six"}, 422, "segment_duration"),
        ({"name": "m", "files": FILES, "colour": "blue"}, 422, "colour"),
        ({"name": "m", "files": ["/no/such.mp4"]}, 422, "files[0]"),
        ({"name": "m", "files": FILES, "key": "00" * 16}, 422, "key"),
        (
            {"name": "m", "files": FILES, "protection": "aes-128", "key_id": str(uuid.uuid4())},
            422,
            "key_id",
        ),
        ({"name": "m", "files": FILES, "policy": "nope"}, 422, "policy"),
        ({"files": FILES}, 422, "name"),
        ({"name": "bad name", "files": FILES}, 422, "name"),
    ],
)
async def test_a_bad_asset_is_refused_with_the_field(
    api: Client, body: Any, status: int, field: str
) -> None:
    got, answer = await call(api, "POST", "/assets", body)
    assert (got, answer["field"]) == (status, field), answer
    assert (await call(api, "GET", "/assets"))[1] == {"assets": []}


async def test_unknown_ids_are_404_and_conflicts_409(api: Client) -> None:
    made = await make_asset(api)
    assert (await call(api, "GET", "/assets/nope"))[0] == 404
    assert (await call(api, "DELETE", "/assets/nope"))[0] == 404
    assert (await call(api, "GET", f"/keys/{uuid.uuid4()}"))[0] == 404
    assert (await call(api, "DELETE", f"/locators/{uuid.uuid4()}"))[0] == 404
    assert (await call(api, "POST", "/locators", {"asset": "nope"}))[0] == 404
    status, _ = await call(api, "POST", "/assets", {"name": "movie", "files": FILES})
    assert status == 409
    status, body = await call(api, "DELETE", f"/keys/{made['key']['key_id']}")
    assert status == 409 and "used by asset 'movie'" in body["error"]
    status, body = await call(api, "PUT", "/policies/from-file", {"options": [{"type": "open"}]})
    assert status == 409 and "config file" in body["error"]


async def test_keys_are_made_or_imported_and_never_returned(api: Client) -> None:
    imported = "0f" * 16
    kid = str(uuid.uuid4())
    status, made = await call(api, "POST", "/keys", {"key_id": kid, "key": imported})
    assert status == 201 and made["key_id"] == kid
    status, _ = await call(api, "POST", "/keys", {"key_id": kid})
    assert status == 409
    status, body = await call(api, "POST", "/keys", {"key": "short"})
    assert status == 422 and body["field"] == "key" and "short" not in json.dumps(body)
    _, listed = await call(api, "GET", "/keys")
    text = json.dumps(listed) + json.dumps(await call(api, "GET", f"/keys/{kid}"))
    assert imported not in text and "0F0F0F0F" not in text.upper().replace("-", "")
    status, _ = await call(
        api, "POST", "/assets",
        {"name": "imp", "files": FILES, "protection": "aes-128", "key_id": kid},
    )  # fmt: skip
    assert status == 201
    _, loc = await call(api, "POST", "/locators", {"asset": "imp"})
    r = await api.get(f"/{loc['id']}/key?kid={kid}")
    assert await r.read() == bytes.fromhex(imported)


async def test_a_policy_made_through_the_api_guards_the_key(api: Client) -> None:
    status, _ = await call(api, "PUT", "/policies/premium", json.loads(json.dumps(_jwt_table())))
    assert status == 201
    made = await make_asset(api, policy="premium")
    _, loc = await call(api, "POST", "/locators", {"asset": "movie"})
    assert (await api.get(f"/{loc['id']}/key?kid={made['key']['key_id']}")).status == 401
    status, body = await call(api, "DELETE", "/policies/premium")
    assert status == 409 and "used by asset" in body["error"]
    status, body = await call(api, "PUT", "/policies/other", {"options": [{"type": "tokn"}]})
    assert status == 422 and body["field"].startswith("options[0]")


def _jwt_table() -> dict[str, Any]:
    import tomllib  # noqa: PLC0415

    return tomllib.loads(jwt_policy("x"))["policies"]["x"]


async def test_everything_survives_a_restart_from_the_database(
    tmp_path: Path, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("ORIGIN_TEST_ADMIN", ADMIN)
    url = database_url
    cfg = write_config(tmp_path, url=url)
    first = await start(aiohttp_client, cfg, url)
    made = await make_asset(first)
    _, loc = await call(first, "POST", "/locators", {"asset": "movie"})
    await first.close()
    second = await start(aiohttp_client, cfg, url)
    r = await second.get(f"/{loc['id']}/key?kid={made['key']['key_id']}")
    assert r.status == 200
    assert (await second.get(f"/{loc['id']}/movie.ism/manifest(format=m3u8-aapl)")).status == 200


async def test_the_openapi_description_lists_every_route_and_needs_no_key(api: Client) -> None:
    r = await api.get("/api/v1/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    ops = {(m, p) for p, methods in doc["paths"].items() for m in methods}
    assert ("post", "/api/v1/locators") in ops and ("delete", "/api/v1/keys/{kid}") in ops
    assert len(ops) == 25
    for p, methods in doc["paths"].items():
        for m, op in methods.items():
            assert {"401", "422"} <= set(op["responses"]), (m, p)
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in api.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1/")
        and not route.resource.canonical.endswith("openapi.json")
        and route.method != "HEAD"
    }
    assert routed == ops


async def test_master_key_rotation_reseals_every_key_and_the_keys_do_not_change(
    api: Client, tmp_path: Path
) -> None:
    from origin.service.keys.kms import rotate_file  # noqa: PLC0415
    from origin.service.served import STATE  # noqa: PLC0415

    made = await make_asset(api)
    _, loc = await call(api, "POST", "/locators", {"asset": "movie"})
    before = await (await api.get(f"/{loc['id']}/key?kid={made['key']['key_id']}")).read()
    master = tmp_path / "state" / "master.keys"
    assert rotate_file(master) == "m2"
    live = api.app[STATE]
    assert live.reloader is not None
    await live.reloader.reload()  # SIGHUP: the new master key is current
    status, body = await call(api, "POST", "/keys/reseal")
    assert (status, body) == (200, {"resealed": 1, "master_key": "m2"})
    _, listed = await call(api, "GET", "/keys")
    assert [k["master_key"] for k in listed["keys"]] == ["m2"]
    after = await (await api.get(f"/{loc['id']}/key?kid={made['key']['key_id']}")).read()
    assert after == before and len(after) == 16


async def test_files_encrypted_at_rest_through_the_api_or_elsewhere_load_from_catalog_records(
    api: Client, tmp_path: Path
) -> None:
    from origin.service.keys import commands, protection  # noqa: PLC0415
    from origin.service.storage import record_path  # noqa: PLC0415

    # On the server, through the API: the record goes into the catalog.
    out = tmp_path / "enc" / "a.mp4"
    out.parent.mkdir()
    status, made = await call(
        api, "POST", "/storage/encrypt", {"input": FILES[0], "output": str(out)}
    )
    assert status == 201 and made["record"]["algorithm"] == "AES-256-CTR", made
    assert (await call(api, "POST", "/storage/encrypt", {"input": FILES[0], "output": str(out)}))[
        0
    ] == 409
    # Elsewhere, with the server's certificate: only the record is handed over (no sidecar).
    cert = protection.load(tmp_path / "state").cert
    other = tmp_path / "enc" / "b.mp4"
    commands.encrypt_file(SAMPLE_DIR / "sample_360p.mp4", other, cert)
    record = json.loads(record_path(other).read_text())
    record_path(other).unlink()
    bad = {**record, "iv": "x"}
    status, body = await call(api, "POST", "/storage/records", {"path": str(other), "record": bad})
    assert status == 422 and body["field"] == "record" and "iv must be" in body["error"]
    status, _ = await call(api, "POST", "/storage/records", {"path": str(other), "record": record})
    assert status == 201
    record_path(out).unlink()  # the catalog's copy alone opens it
    status, asset = await call(
        api,
        "POST",
        "/assets",
        {"name": "rest", "files": [str(out), str(other)], "segment_duration": 4.0},
    )
    assert status == 201 and asset["state"] == "loaded", asset
    _, loc = await call(api, "POST", "/locators", {"asset": "rest"})
    r = await api.get(f"/{loc['id']}/rest.ism/manifest(format=m3u8-aapl)")
    assert r.status == 200
    _, listed = await call(api, "GET", "/storage/records")
    assert sorted(x["path"] for x in listed["records"]) == sorted([str(out), str(other)])
    assert "encrypted_key" in listed["records"][0]["record"]
    status, body = await call(
        api, "POST", "/storage/encrypt", {"input": "rel.mp4", "output": str(out)}
    )
    assert status == 422 and body["field"] == "input"


async def test_a_live_channel_made_through_the_api_takes_ingest_and_plays(
    api: Client, tmp_path: Path
) -> None:
    import base64  # noqa: PLC0415

    from tests.support.media import make_mp4  # noqa: PLC0415

    secret = "catalog-ingest-secret-0123456789"
    spec = {"window": 12, "segment_duration": 4, "ingest_user": "enc", "ingest_secret": secret}
    status, made = await call(api, "PUT", "/channels/news", spec)
    assert status == 201 and made["ingest_secret"] == "(set, not shown)"
    assert secret not in json.dumps(await call(api, "GET", "/channels"))
    ismv = make_mp4(
        tmp_path / "live.ismv", seconds=8, faststart=False,
        extra=("-f", "ismv", "-movflags", "isml+frag_keyframe"),
    ).read_bytes()  # fmt: skip
    basic = {"Authorization": "Basic " + base64.b64encode(f"enc:{secret}".encode()).decode()}
    r = await api.post("/news.isml/Streams(s1)", data=ismv, headers=basic)
    assert r.status == 200, await r.text()
    r = await api.get("/news.isml/manifest(format=m3u8-aapl)")
    assert r.status == 200 and "#EXT-X-STREAM-INF" in await r.text()
    status, body = await call(api, "PUT", "/channels/bad", {"window": 12, "segment_duration": 4})
    assert status == 422 and "ingest" in body["error"], body
    status, body = await call(api, "PUT", "/channels/bad", {**spec, "window": 1})
    assert status == 422 and body["field"] == "window", body
    status, _ = await call(api, "DELETE", "/channels/news")
    assert status == 204
    assert (await api.get("/news.isml/manifest(format=m3u8-aapl)")).status == 404


async def test_envelope_key_uris_of_catalog_assets_stay_under_their_locator(
    tmp_path: Path, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORIGIN_TEST_ADMIN", ADMIN)
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    cfg = write_config(tmp_path, url=url)
    cfg.write_text(cfg.read_text().replace("[server]\n", "[server]\nenvelope_keys = true\n"))
    api = await start(aiohttp_client, cfg, url)
    await make_asset(api)
    _, loc = await call(api, "POST", "/locators", {"asset": "movie"})
    master = f"/{loc['id']}/movie.ism/manifest(format=m3u8-aapl)"
    text = await (await api.get(master)).text()
    media = f"/{loc['id']}/movie.ism/" + text.splitlines()[-1]
    playlist = await (await api.get(media)).text()
    uri = playlist.split('#EXT-X-KEY:METHOD=AES-128,URI="', 1)[1].split('"', 1)[0]
    assert uri.startswith("../../key?kid=") and "&edk=" in uri
    query = uri.split("?", 1)[1]
    r = await api.get(f"/{loc['id']}/key?{query}")
    assert r.status == 200 and len(await r.read()) == 16
    assert (await api.get(f"/key?{query}")).status == 404  # the envelope alone is not enough
    edk = query.split("edk=", 1)[1]
    flipped = query.replace(edk, edk[:-3] + ("A" if edk[-3] != "A" else "B") + edk[-2:])
    assert (await api.get(f"/{loc['id']}/key?{flipped}")).status == 403


async def test_catalogs_opened_at_once_in_one_process_migrate_one_at_a_time(tmp_path: Path) -> None:
    import asyncio  # noqa: PLC0415

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    opened = await asyncio.gather(*(Catalog.open(url) for _ in range(4)))
    try:
        assert [await c.version() for c in opened] == [0, 0, 0, 0]
    finally:
        for c in opened:
            await c.close()


async def test_the_player_page_lists_a_catalog_asset_as_needing_its_locator(api: Client) -> None:
    """The page lists the title, never its locators (access grants): the viewer types one in,
    and each way it offers then plays under that locator."""
    await make_asset(api)
    status, loc = await call(api, "POST", "/locators", {"asset": "movie"})
    assert status == 201
    r = await api.get("/player/catalog.json")
    assert r.status == 200
    text = await r.text()
    assert loc["id"].lower() not in text.lower()
    assert next(a for a in json.loads(text)["assets"] if a["name"] == "movie")["locator"] is True
    r = await api.get("/player/titles/vod/movie.json")
    text = await r.text()
    assert loc["id"].lower() not in text.lower()
    movie = json.loads(text)
    assert movie["locator"] is True and movie["ways"]
    for way in movie["ways"]:
        assert (await api.get(way["path"])).status == 404  # not without the locator
        r = await api.get(f"/{loc['id']}{way['path']}")
        assert r.status == 200, (way, await r.text())
