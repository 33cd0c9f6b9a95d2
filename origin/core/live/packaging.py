"""Live packaging: everything that turns a :class:`ChannelView` into bytes, in two modules by
concern: manifests (:mod:`origin.core.live.manifests`) and segments
(:mod:`origin.core.live.segments`). Pure functions of the view; the service caches on
``view.version``."""

from origin.core.errors import NotYetAvailable, SlidOut
from origin.core.live.manifests import (
    available_at,
    dash_manifest,
    master_playlist,
    media_playlist,
    next_available,
    smooth_manifest,
)
from origin.core.live.segments import find_segment, init_segment, media_segment, segment_ref

__all__ = [
    "NotYetAvailable",
    "SlidOut",
    "available_at",
    "dash_manifest",
    "find_segment",
    "init_segment",
    "master_playlist",
    "media_playlist",
    "media_segment",
    "next_available",
    "segment_ref",
    "smooth_manifest",
]
