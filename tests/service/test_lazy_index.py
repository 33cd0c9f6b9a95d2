"""``server.index = "lazy"``: assets indexed on their first request, not at start-up."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service import state as state_module
from origin.service.app import build_app
from origin.service.config import AssetConfig, ConfigError, load_config
from origin.service.state import Asset, build_state
from tests.support.server import SAMPLE_DIR, run_server

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

SAMPLE = SAMPLE_DIR / "sample_240p.mp4"


def _master(name: str) -> str:
    return f"/{name}.ism/manifest(format=m3u8-aapl)"


def _config(tmp_path: Path, index: str, names: list[str], path: Path = SAMPLE) -> Path:
    cfg = tmp_path / "origin.toml"
    cfg.write_text(
        f'[server]\nindex = "{index}"\n'
        + "".join(
            f'[[assets]]\nname = "{n}"\nfiles = ["{path}"]\nsegment_duration = 4.0\n' for n in names
        )
    )
    return cfg


def _count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    loads: list[str] = []
    real = state_module.load_asset

    def counted(
        cfg: AssetConfig, state_dir: Path, records: Mapping[str, str] | None = None
    ) -> Asset:
        loads.append(cfg.name)
        return real(cfg, state_dir, records)

    monkeypatch.setattr(state_module, "load_asset", counted)
    return loads


async def test_lazy_assets_are_indexed_on_first_request_with_the_bytes_of_startup_indexing(
    tmp_path: Path, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = _count_loads(monkeypatch)
    lazy = build_state(load_config(_config(tmp_path, "lazy", ["a", "b", "c"])))
    assert loads == [] and not lazy.assets and sorted(lazy.pending) == ["a", "b", "c"]
    client = await aiohttp_client(build_app(lazy))
    health = await (await client.get("/healthz")).json()
    assert health["assets"] == ["a", "b", "c"] and health["not_indexed"] == 3

    got = await client.get(_master("b"))
    assert got.status == 200
    assert loads == ["b"] and list(lazy.assets) == ["b"]
    health = await (await client.get("/healthz")).json()
    assert health["not_indexed"] == 2

    eager_dir = tmp_path / "eager"
    eager_dir.mkdir()
    eager = build_state(load_config(_config(eager_dir, "startup", ["a", "b", "c"])))
    assert not eager.pending and sorted(eager.assets) == ["a", "b", "c"]
    eager_client = await aiohttp_client(build_app(eager))
    want = await eager_client.get(_master("b"))
    assert await got.read() == await want.read()
    # Its media playlist and first segment too, from the asset indexed on the first request.
    text = await (await eager_client.get(_master("b"))).text()
    playlist = "/b.ism/" + next(ln for ln in text.splitlines() if ln and not ln.startswith("#"))
    media = await (await eager_client.get(playlist)).text()
    segment = playlist.rsplit("/", 1)[0] + "/"
    segment += next(ln for ln in media.splitlines() if ln and not ln.startswith("#"))
    for path in (playlist, segment):
        a, b = await client.get(path), await eager_client.get(path)
        assert a.status == b.status == 200 and await a.read() == await b.read()
    assert loads == ["b", "a", "b", "c"]  # the eager state's three after the lazy one's one


async def test_concurrent_first_requests_index_the_asset_once(
    tmp_path: Path, aiohttp_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = _count_loads(monkeypatch)
    client = await aiohttp_client(
        build_app(build_state(load_config(_config(tmp_path, "lazy", ["a"]))))
    )
    replies = await asyncio.gather(*(client.get(_master("a")) for _ in range(8)))
    assert [r.status for r in replies] == [200] * 8
    assert len({await r.read() for r in replies}) == 1
    assert loads == ["a"]


async def test_a_lazy_asset_that_cannot_load_is_refused_on_its_first_request_and_others_serve(
    tmp_path: Path, aiohttp_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(SAMPLE.read_bytes()[:5000])  # the moov cut short
    cfg = tmp_path / "origin.toml"
    cfg.write_text(
        '[server]\nindex = "lazy"\n'
        f'[[assets]]\nname = "bad"\nfiles = ["{damaged}"]\nsegment_duration = 4.0\n'
        f'[[assets]]\nname = "good"\nfiles = ["{SAMPLE}"]\nsegment_duration = 4.0\n'
    )
    state = build_state(load_config(cfg))
    client = await aiohttp_client(build_app(state))
    with caplog.at_level(logging.ERROR, logger="origin"):
        first = await client.get(_master("bad"))
        again = await client.get(_master("bad"))
    assert first.status == again.status == 404
    assert "could not be loaded" in await first.text()
    assert "Traceback" not in await first.text()
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
        f"asset 'bad' refused: {state.refused['bad']}"
    ]
    health = await (await client.get("/healthz")).json()
    assert health["refused"] == ["bad"] and health["not_indexed"] == 1
    assert (await client.get(_master("good"))).status == 200
    assert (await client.get(_master("nothing"))).status == 404


def test_a_reload_keeps_lazy_assets_already_indexed_and_the_rest_pending(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "lazy", ["a", "b"])
    first = build_state(load_config(cfg))
    loop = asyncio.new_event_loop()
    try:
        a = loop.run_until_complete(first.asset("a"))
    finally:
        loop.close()
    assert a is not None
    second = build_state(load_config(cfg), first)
    assert second.assets == {"a": a} and list(second.pending) == ["b"]
    second.close()


def test_a_looped_channels_asset_is_indexed_at_startup_even_when_lazy(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "lazy", ["loopme", "other"])
    cfg.write_text(cfg.read_text() + '[[channels]]\nname = "tv"\nloop = true\nasset = "loopme"\n')
    state = build_state(load_config(cfg))
    assert list(state.assets) == ["loopme"] and list(state.pending) == ["other"]
    state.close()


def test_an_unknown_index_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.index.*startup, lazy.*'sometimes'"):
        load_config(_config(tmp_path, "sometimes", ["a"]))


def test_a_lazy_catalog_of_a_thousand_assets_starts_listing_them_without_indexing(
    tmp_path: Path,
) -> None:
    # The real server: it listens at once and says how many assets wait for their first request.
    local = tmp_path / "sample.mp4"
    shutil.copyfile(SAMPLE, local)
    cfg = _config(tmp_path, "lazy", [f"a{i}" for i in range(1000)], local)
    with run_server("--config", str(cfg)) as srv:
        reply = srv.request(_master("a999"))
        assert reply.status == 200
        out = "\n".join(srv.output)
    assert "a0: indexed on its first request" in out
    assert "… and 980 more asset(s), each indexed on its first request" in out
