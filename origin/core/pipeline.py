"""The one facade the service calls: prepare an asset once, then build manifests and segments.

Only the pipeline knows the whole chain (index → segmenter → muxer → encryption, and manifest):
:mod:`~origin.core.presentation` computes at load everything per asset that can be known before
a request (segment boundaries, codec strings, per-segment sizes and so bandwidths);
:mod:`~origin.core.manifests` describes it to the HLS, DASH and Smooth builders. A segment
request is then: :func:`resolve` the URL, :func:`plan_reads` (which byte ranges of which files),
the service reads them, :func:`build_segment` muxes them (:mod:`~origin.core.plan`), and
:func:`encrypt_segment` applies the delivery's scheme (:mod:`~origin.core.encryption`;
:func:`encrypted_body` defers it, for a body written a slice at a time).

Live channels: the ``live_*`` functions build the same manifests and segments from a channel
index's :class:`~origin.core.live.model.ChannelView` (:mod:`~origin.core.live.packaging`);
:func:`live_segment_ref` gives :func:`encrypt_segment` the segment's channel-wide sequence number.
"""

from origin.core.encryption import (
    POLICY_VALUES,
    Encrypted,
    Offer,
    Protected,
    Refused,
    Scheme,
    SegmentCipher,
    choose,
    encrypt_segment,
    encrypted_body,
    hls_key,
    offered,
    option_of,
    protected_body,
    protected_init,
    protection_plan,
    scheme_for,
    subsample_map,
    track_parameter_sets,
    track_protection,
)
from origin.core.live.packaging import NotYetAvailable, SlidOut
from origin.core.live.packaging import available_at as live_available_at
from origin.core.live.packaging import dash_manifest as live_dash_manifest
from origin.core.live.packaging import init_segment as live_init_segment
from origin.core.live.packaging import master_playlist as live_master_playlist
from origin.core.live.packaging import media_playlist as live_media_playlist
from origin.core.live.packaging import media_segment as live_segment
from origin.core.live.packaging import next_available as live_next_available
from origin.core.live.packaging import segment_ref as live_segment_ref
from origin.core.live.packaging import smooth_manifest as live_smooth_manifest
from origin.core.manifests import (
    UnsupportedError,
    dash_manifest,
    master_playlist,
    media_playlist,
    smooth_manifest,
)
from origin.core.plan import (
    ReadPlan,
    SegmentRef,
    Span,
    build_segment,
    plan_reads,
    resolve,
    segment_bytes,
)
from origin.core.presentation import Bandwidth, Presentation, Rendition, frame_rate, prepare

__all__ = [
    "POLICY_VALUES",
    "Bandwidth",
    "Encrypted",
    "NotYetAvailable",
    "Offer",
    "Presentation",
    "Protected",
    "ReadPlan",
    "Refused",
    "Rendition",
    "Scheme",
    "SegmentCipher",
    "SegmentRef",
    "SlidOut",
    "Span",
    "UnsupportedError",
    "build_segment",
    "choose",
    "dash_manifest",
    "encrypt_segment",
    "encrypted_body",
    "frame_rate",
    "hls_key",
    "live_available_at",
    "live_dash_manifest",
    "live_init_segment",
    "live_master_playlist",
    "live_media_playlist",
    "live_next_available",
    "live_segment",
    "live_segment_ref",
    "live_smooth_manifest",
    "master_playlist",
    "media_playlist",
    "offered",
    "option_of",
    "plan_reads",
    "prepare",
    "protected_body",
    "protected_init",
    "protection_plan",
    "resolve",
    "scheme_for",
    "segment_bytes",
    "smooth_manifest",
    "subsample_map",
    "track_parameter_sets",
    "track_protection",
]
