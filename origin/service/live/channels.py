"""The running channels: one live index per configured channel, kept across config reloads
(a reload must not throw away a channel's window), and the looped-VOD feeders' tasks."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from aiohttp import web

from origin.core.live.channel import Channel
from origin.core.live.ingest import Header
from origin.core.live.loop import open_loop
from origin.service.config import ChannelConfig
from origin.service.live.archive import ArchiveFile
from origin.service.live.loop import run_loop
from origin.service.live.rotation import ChannelKeys
from origin.service.state import Asset, ContentKey, State

log = logging.getLogger("origin.live")


@dataclass(slots=True)
class LiveChannel:
    config: ChannelConfig
    index: Channel
    generation: int  # distinguishes a channel re-created under the same name (cache keys)
    # The CMAF header each stream sent last: a DASH-IF ingest segment POST carries none.
    headers: dict[str, Header] = field(default_factory=dict)
    archives: dict[str, ArchiveFile] = field(default_factory=dict)  # open files by stream
    task: asyncio.Task[None] | None = None
    asset: Asset | None = None  # a looped channel's source
    published: dict[str, float] = field(default_factory=dict)  # view version -> first seen
    keys: ChannelKeys | None = None  # key rotation (key_rotation_segments/_minutes)

    def publish_time(self, version: str) -> float:
        """When this process first served view ``version`` (DASH publishTime): one per version."""
        seen = self.published.get(version)
        if seen is None:
            if len(self.published) > 64:
                self.published.clear()
            seen = self.published[version] = time.time()
        return seen


class Channels:
    """Channels by name. Only the event loop touches them."""

    def __init__(self) -> None:
        self.by_name: dict[str, LiveChannel] = {}
        self._generation = 0

    def get(self, name: str) -> LiveChannel | None:
        return self.by_name.get(name)

    def sync(self, state: State) -> None:
        """Follow the config of ``state``: new channels start, removed ones stop, a channel whose
        timing or source changed starts afresh (a looped asset reloaded: its files may close);
        anything else (keys, policies) just follows."""
        wanted = {c.name: c for c in state.config.channels}
        for name in list(self.by_name):
            lc = self.by_name[name]
            new = wanted.get(name)
            replaced = (
                lc.asset is not None and state.assets.get(lc.asset.config.name) is not lc.asset
            )
            if new is None or _timing(new) != _timing(lc.config) or replaced:
                self._stop(lc)
                del self.by_name[name]
            else:
                if (new.key_rotation, new.policy) != (lc.config.key_rotation, lc.config.policy):
                    lc.keys = _rotation(new, state)
                lc.config = new
        for name, cfg in wanted.items():
            if name in self.by_name:
                continue
            asset = state.assets.get(cfg.asset) if cfg.loop and cfg.asset else None
            if cfg.loop and asset is None:
                log.error(
                    "channel %r: asset %r is not loaded; the loop does not run", name, cfg.asset
                )
                continue
            self._generation += 1
            window = Fraction(cfg.window)
            if asset is None:
                index = Channel(name, segment_duration=cfg.segment_duration, window=window)
                lc = LiveChannel(cfg, index, self._generation)
            else:
                index, schedule = open_loop(
                    name, asset.presentation, window=window, now=time.time()
                )
                lc = LiveChannel(cfg, index, self._generation, asset=asset)
                lc.task = asyncio.get_running_loop().create_task(
                    run_loop(index, asset.files, schedule, window=float(window)),
                    name=f"loop {name}",
                )
            lc.keys = _rotation(cfg, state)
            self.by_name[name] = lc

    def rotated_key(self, kid: uuid.UUID) -> ContentKey | None:
        """A rotating channel's key still deliverable, by key id."""
        for lc in self.by_name.values():
            if lc.keys is not None and (key := lc.keys.by_kid.get(kid)) is not None:
                return key
        return None

    def _stop(self, lc: LiveChannel) -> None:
        if lc.task is not None:
            lc.task.cancel()
        lc.index.stop(time.time())

    async def close(self) -> None:
        tasks = [lc.task for lc in self.by_name.values() if lc.task is not None]
        for lc in self.by_name.values():
            self._stop(lc)
        await asyncio.gather(*tasks, return_exceptions=True)
        self.by_name.clear()


def _rotation(cfg: ChannelConfig, state: State) -> ChannelKeys | None:
    return ChannelKeys.open(cfg, state.config) if cfg.key_rotation else None


def _timing(cfg: ChannelConfig) -> tuple[object, ...]:
    return (cfg.window, cfg.segment_duration, cfg.loop, cfg.asset)


CHANNELS: web.AppKey[Channels] = web.AppKey("channels", Channels)


class Holder(Protocol):
    current: State


def setup_channels(app: web.Application, holder: Holder) -> None:
    """Run the channels with the app: started on start-up, stopped on clean-up."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        channels = app[CHANNELS]
        channels.sync(holder.current)
        yield
        await channels.close()

    app[CHANNELS] = Channels()
    app.cleanup_ctx.append(lifecycle)
