"""Validators a CDN in front of several origin nodes can rely on: the same ETag and Last-Modified
from every node serving the same content, and If-Modified-Since answered with 304."""

from __future__ import annotations

import os
import struct
from collections.abc import Awaitable, Callable
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.config import load_config
from origin.service.state import build_state
from tests.support import fuzzing
from tests.support.server import SAMPLE_DIR

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

MASTER = "/a.ism/manifest(format=m3u8-aapl)"
MP4_EPOCH = 2_082_844_800


def _node(tmp_path: Path, name: str, mtime: float, mvhd_time: int | None = None) -> Path:
    """A node's copy of the sample (its own folder and mtime) and a config serving it as ``a``."""
    folder = tmp_path / name
    folder.mkdir()
    copy = folder / "sample.mp4"
    data = bytearray((SAMPLE_DIR / "sample_240p.mp4").read_bytes())
    if mvhd_time is not None:  # mvhd v0: version/flags, creation, modification (1904 epoch)
        mvhd = next(b for b in fuzzing.walk(data) if b.type == "mvhd")
        struct.pack_into(">II", data, mvhd.offset + mvhd.header + 4, *(2 * [mvhd_time]))
    copy.write_bytes(data)
    os.utime(copy, (mtime, mtime))
    cfg = folder / "origin.toml"
    cfg.write_text(f'[[assets]]\nname = "a"\nfiles = ["{copy}"]\nsegment_duration = 4.0\n')
    return cfg


async def _client(aiohttp_client: MakeClient, cfg: Path) -> Client:
    return await aiohttp_client(build_app(build_state(load_config(cfg))))


async def _first_rendition_id(client: Client) -> str:
    text = await (await client.get(MASTER)).text()
    return next(ln for ln in text.splitlines() if ln and ln[0] != "#").split("QualityLevels(")[1]


async def test_two_nodes_with_copies_at_other_paths_and_mtimes_give_the_same_validators(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    when = 1_700_000_000
    one = await _client(aiohttp_client, _node(tmp_path, "one", 1_600_000_000, when + MP4_EPOCH))
    two = await _client(aiohttp_client, _node(tmp_path, "two", 1_650_000_000, when + MP4_EPOCH))
    rid = (await _first_rendition_id(one)).split(")")[0]
    media = f"/a.ism/QualityLevels({rid})/Manifest(video,format=m3u8-aapl)"
    text = await (await one.get(media)).text()
    segment = (
        "/a.ism/QualityLevels("
        + rid
        + ")/"
        + next(ln for ln in text.splitlines() if ln and ln[0] != "#")
    )
    for path in (MASTER, media, segment):
        a, b = await one.get(path), await two.get(path)
        assert a.status == b.status == 200
        assert a.headers["ETag"] == b.headers["ETag"]
        assert (
            a.headers["Last-Modified"]
            == b.headers["Last-Modified"]
            == formatdate(when, usegmt=True)
        )


async def test_other_content_gives_another_etag(tmp_path: Path, aiohttp_client: MakeClient) -> None:
    one = await _client(aiohttp_client, _node(tmp_path, "one", 1_600_000_000))
    other = tmp_path / "other.toml"
    other.write_text(
        f'[[assets]]\nname = "a"\nfiles = ["{SAMPLE_DIR / "sample_360p.mp4"}"]\n'
        "segment_duration = 4.0\n"
    )
    two = await _client(aiohttp_client, other)
    assert (await one.get(MASTER)).headers["ETag"] != (await two.get(MASTER)).headers["ETag"]


async def test_without_a_recorded_mvhd_time_last_modified_is_the_files_mtime(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    client = await _client(aiohttp_client, _node(tmp_path, "one", 1_600_000_000))
    got = await client.get(MASTER)
    assert got.headers["Last-Modified"] == formatdate(1_600_000_000, usegmt=True)


@pytest.mark.parametrize(("since", "status"), [(0, 304), (3600, 304), (-1, 200), (-86400, 200)])
async def test_if_modified_since_is_304_unless_older_than_last_modified(
    tmp_path: Path, aiohttp_client: MakeClient, since: int, status: int
) -> None:
    client = await _client(aiohttp_client, _node(tmp_path, "one", 1_600_000_000))
    modified = parsedate_to_datetime((await client.get(MASTER)).headers["Last-Modified"])
    header = formatdate(modified.timestamp() + since, usegmt=True)
    got = await client.get(MASTER, headers={"If-Modified-Since": header})
    assert got.status == status
    if status == 304:
        assert await got.read() == b"" and got.headers["ETag"]


async def test_if_none_match_wins_over_if_modified_since(
    tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    client = await _client(aiohttp_client, _node(tmp_path, "one", 1_600_000_000))
    future = formatdate(1_900_000_000, usegmt=True)
    got = await client.get(
        MASTER, headers={"If-None-Match": '"other"', "If-Modified-Since": future}
    )
    assert got.status == 200
