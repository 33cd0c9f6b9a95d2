"""``/player/catalog.json``: what the page offers to play, for each asset and live channel.

Each title lists its ways to stream (each format with each encryption its delivery policy
allows) with the manifest URL, built here by the URL grammar's own functions, so the page never
composes one.
Nothing secret is listed: no key, key id, token, ingest credential or streaming locator id (a
catalog title is marked as needing a locator, which the viewer types in).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from origin.core import pipeline, urls
from origin.core.encryption import Scheme
from origin.core.urls import Format, Protocol
from origin.service import delivery
from origin.service.config import AssetConfig
from origin.service.live.channels import Channels, LiveChannel
from origin.service.state import Asset, State

Uri = Callable[[Format | None], str]  # a title's master manifest path for a format

# The formats, in the order the page offers them, with the words it shows.
FORMATS: tuple[tuple[Format | None, str], ...] = (
    (Format.HLS_TS, "HLS (TS)"),
    (Format.HLS_CMAF, "HLS (fMP4)"),
    (Format.DASH_CSF, "DASH (csf)"),
    (Format.DASH_CMAF, "DASH (cmaf)"),
    (None, "Smooth Streaming"),
)
_SCHEME_WORDS = {
    None: "clear",
    Scheme.AES_128: "AES-128",
    Scheme.CENC: "cenc (ClearKey)",
    Scheme.CBCS: "cbcs (ClearKey)",
}


def ways(cfg: delivery.Delivered, uri: Uri) -> list[dict[str, Any]]:
    """Every (format, encryption) ``cfg``'s policy allows, each with its manifest path; ``uri``
    makes the master manifest's path for a format (:func:`urls.master_uri` or channel_uri)."""
    out = []
    for fmt, label in FORMATS:
        protocol = urls.protocol_of(fmt)
        for offer in pipeline.offered(fmt, delivery.allowed(cfg, protocol)):
            path = uri(fmt)
            if offer.option is not None:
                path = _with_option(path, f"encryption={offer.option}")
            out.append(
                {
                    "format": label,
                    "protocol": protocol.value,
                    "encryption": _SCHEME_WORDS[offer.scheme],
                    "scheme": offer.scheme.value if offer.scheme else "clear",
                    "default": offer.option is None,
                    "path": path,
                }
            )
    return out


def _with_option(path: str, option: str) -> str:
    if path.endswith(")"):
        return path[:-1] + "," + option + ")"
    return f"{path}({option})"


def listing(state: State, channels: Channels) -> dict[str, Any]:
    """The page's list: assets (loaded, waiting for their first request, refused) and channels,
    each with its protocols and what a viewer must bring (a token, a streaming locator). Cheap
    per title (a catalog has thousands): the ways to play one come from :func:`title`."""
    now = time.time()
    return {
        "assets": [_asset(state, cfg, full=False) for cfg in state.config.assets],
        "channels": [_channel(state, lc, now, full=False) for lc in channels.by_name.values()],
    }


def title(state: State, channels: Channels, kind: str, name: str) -> dict[str, Any] | None:
    """One title with its media and every way to play it; None: there is no such title."""
    if kind == "live":
        lc = channels.by_name.get(name)
        return None if lc is None else _channel(state, lc, time.time(), full=True)
    cfg = next((a for a in state.config.assets if a.name == name), None) if kind == "vod" else None
    return None if cfg is None else _asset(state, cfg, full=True)


def _protocols(cfg: delivery.Delivered) -> list[str]:
    return [p.value for p in Protocol if delivery.allowed(cfg, p)]


def _asset(state: State, cfg: AssetConfig, *, full: bool) -> dict[str, Any]:
    name = cfg.name
    entry: dict[str, Any] = {
        "name": name,
        "kind": "vod",
        "protection": cfg.protection,
        "protocols": _protocols(cfg),
        "token": _token(state, cfg.policy, cfg.require_token),
        "locator": name in state.config.published.assets,
    }
    asset = state.assets.get(name)
    if name in state.refused:
        entry["state"] = "refused"
        entry["reason"] = state.refused[name]
        entry["protocols"] = []
    elif asset is not None:
        entry["state"] = "loaded"
    else:
        entry["state"] = "not indexed"  # index = "lazy": on the first request
    if full:
        if asset is not None:
            entry.update(_media(asset))
        entry["ways"] = [] if name in state.refused else ways(cfg, _asset_uri(name))
    return entry


def _channel(state: State, lc: LiveChannel, now: float, *, full: bool) -> dict[str, Any]:
    ch = lc.config
    entry: dict[str, Any] = {
        "name": ch.name,
        "kind": "live",
        "source": f"loop of {ch.asset}" if ch.loop else "ingest",
        "state": lc.index.status(now).state,
        "window": float(ch.window),
        "protection": ch.protection,
        "protocols": _protocols(ch),
        "token": _token(state, ch.policy, ch.require_token),
        "locator": False,
    }
    if full:
        entry["ways"] = ways(ch, _channel_uri(ch.name))
    return entry


def _asset_uri(name: str) -> Uri:
    return lambda fmt: "/" + urls.master_uri(name, fmt)


def _channel_uri(name: str) -> Uri:
    return lambda fmt: "/" + urls.channel_uri(name, fmt)


def _token(state: State, policy: str | None, require_token: bool) -> str | None:
    """What a viewer needs: "manifest" (every manifest asks for a token), "key" (keys and
    licenses do), or None."""
    if require_token:
        return "manifest"
    found = state.config.policies.get(policy) if policy else None
    if found is not None and any(o.token is not None for o in found.options):
        return "key"
    return None


def _media(asset: Asset) -> dict[str, Any]:
    p = asset.presentation
    video: Sequence[dict[str, Any]] = [
        {
            "width": r.track.width,
            "height": r.track.height,
            "bitrate": r.id,
            "codec": r.track.codec_string,
        }
        for r in p.video
    ]
    return {
        "duration": round(float(p.duration), 3),
        "video": list(video),
        "audio": p.audio.track.codec_string if p.audio is not None else None,
    }
