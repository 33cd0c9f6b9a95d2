"""The encryption stage of the pipeline: which scheme a request is delivered with, which segments
stay clear, and which IVs a segment is encrypted with.

Three schemes (:class:`Scheme`): HLS ``METHOD=AES-128`` (whole-segment CBC, RFC 8216 §5.2, HLS
only), and Common Encryption (ISO/IEC 23001-7) ``cenc`` (AES-CTR per sample; DASH, Smooth
Streaming in its PIFF form, HLS fMP4 as ``SAMPLE-AES-CTR``) and ``cbcs`` (AES-CBC 1:9 pattern,
constant IV; HLS fMP4 as ``SAMPLE-AES``, DASH). :func:`choose` applies a delivery policy (the
schemes it allows per protocol, the first the default) to a request's ``encryption=``.

:func:`encrypted_body` defers the work: it gives the body's size (and the IV, hence the ETag)
at once, its bytes whole or slice by slice when the response is written, so that a server can
answer 304 or HEAD without encrypting and stream a big segment without holding its event loop.
Common Encryption needs the segment's subsample map (:mod:`~origin.core.crypto.subsamples`),
computed once per clear segment by :func:`subsample_map` and kept beside it by the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol as TypingProtocol

from origin.core import urls
from origin.core.crypto import padded_size, sequence_iv
from origin.core.crypto.cenc import CBCS, CENC, SampleCipher, fragment_iv
from origin.core.crypto.subsamples import SubsampleMap, avc_map, whole_samples
from origin.core.errors import MediaError
from origin.core.manifest import hls
from origin.core.mp4.avc import ParameterSets, parse_parameter_sets
from origin.core.mux import encrypted, fmp4
from origin.core.mux.encrypted import TrackProtection
from origin.core.plan import SegmentRef
from origin.core.track import AvcConfig, Track
from origin.core.urls import Encryption, Format, Protocol


class Scheme(Enum):
    AES_128 = "cbc"  # HLS whole-segment AES-128-CBC, PKCS#7 padded
    CENC = "cenc"  # Common Encryption AES-CTR
    CBCS = "cbcs"  # Common Encryption AES-CBC pattern, constant IV

    @property
    def common(self) -> bool:
        """A Common Encryption scheme (per sample, signalled in the init segment)."""
        return self is not Scheme.AES_128


# The values a delivery policy lists per protocol (``clear`` allows the protocol unencrypted).
CLEAR = "clear"
POLICY_VALUES = ("clear", "cbc", "cenc", "cbcs")
_BY_OPTION = {
    Encryption.CBC: Scheme.AES_128,
    Encryption.CENC: Scheme.CENC,
    Encryption.CBCS: Scheme.CBCS,
}


class Refused(ValueError):
    """The delivery policy does not allow what the request asks for (HTTP 403)."""


def choose(
    fmt: Format | None, requested: Encryption | None, allowed: Sequence[str]
) -> Scheme | None:
    """The scheme a request for ``fmt`` is delivered with under a policy that ``allowed`` the
    listed values (:data:`POLICY_VALUES`) for its protocol, the first one the default; None:
    clear. An empty list blocks the protocol."""
    protocol = urls.protocol_of(fmt)
    if not allowed:
        raise Refused(f"{protocol.value} is not in the delivery policy")
    if requested is None:
        # The first scheme this format can carry: TS only AES-128, fMP4 HLS and DASH any.
        for value in allowed:
            if value == CLEAR:
                return None
            scheme = Scheme(value)
            if option_of(scheme).fits(fmt):
                return scheme
        raise Refused(
            f"no scheme the delivery policy allows for {protocol.value} fits format={fmt}"
        )
    scheme = _BY_OPTION[requested]
    if scheme.value not in allowed:
        raise Refused(f"encryption={requested} is not in the delivery policy for {protocol.value}")
    return scheme


@dataclass(frozen=True, slots=True)
class Offer:
    """One way a policy lets ``fmt`` be streamed: the ``encryption=`` a URL names (None: the
    policy's default, no option in the URL) and the scheme delivered (None: clear)."""

    option: Encryption | None
    scheme: Scheme | None


def offered(fmt: Format | None, allowed: Sequence[str]) -> list[Offer]:
    """Every delivery a URL for ``fmt`` can ask for under a policy that ``allowed`` these values:
    the default first, then each other scheme this format can carry. Empty: blocked."""
    try:
        default = choose(fmt, None, allowed)
    except Refused:
        return []
    offers = [Offer(None, default)]
    for value in allowed:
        if value == CLEAR or Scheme(value) is default:
            continue
        option = option_of(Scheme(value))
        if option.fits(fmt):
            offers.append(Offer(option, Scheme(value)))
    return offers


def option_of(scheme: Scheme) -> Encryption:
    """The ``encryption=`` value that names ``scheme`` in a URL."""
    return next(o for o, s in _BY_OPTION.items() if s is scheme)


def scheme_for(fmt: Format | None) -> Scheme | None:
    """The scheme a protected asset with the default policy is delivered with in ``fmt``
    (HLS: AES-128); None: not encrypted by default."""
    return Scheme.AES_128 if urls.protocol_of(fmt) is Protocol.HLS else None


class SegmentCipher(TypingProtocol):
    """A prepared key (``crypto.Aes128Cbc``): encrypts a whole segment with a given IV."""

    def encrypt(self, data: bytes | bytearray | memoryview, iv: bytes) -> bytearray: ...

    def encrypt_slices(
        self, data: bytes | bytearray | memoryview, iv: bytes, slice_size: int
    ) -> Iterator[bytearray]: ...


@dataclass(frozen=True, slots=True)
class Encrypted:
    """A segment's encrypted body, not yet computed: its length is known (PKCS#7 adds 1-16
    bytes), its bytes are made by :meth:`whole` or :meth:`slices` when they are needed."""

    clear: bytes | bytearray
    cipher: SegmentCipher
    iv: bytes

    def __len__(self) -> int:
        return padded_size(len(self.clear))

    def whole(self) -> bytearray:
        return self.cipher.encrypt(self.clear, self.iv)

    def slices(self, size: int) -> Iterator[bytearray]:
        """The same bytes as :meth:`whole`, ~``size`` bytes at a time, each made when asked."""
        return self.cipher.encrypt_slices(self.clear, self.iv, size)


def encrypt_segment(
    ref: SegmentRef, clear: bytes | bytearray, cipher: SegmentCipher, iv: bytes | None
) -> tuple[bytes | bytearray, bytes]:
    """(body, IV used) of segment ``ref``: ``iv`` is the asset's configured IV, None for the
    media sequence number. The init segment stays clear (IV used ``b""``): the playlist puts
    EXT-X-MAP before EXT-X-KEY, so the key does not apply to it."""
    body, used = encrypted_body(ref, clear, cipher, iv)
    return (body.whole() if isinstance(body, Encrypted) else body), used


def encrypted_body(
    ref: SegmentRef, clear: bytes | bytearray, cipher: SegmentCipher, iv: bytes | None
) -> tuple[bytes | bytearray | Encrypted, bytes]:
    """As :func:`encrypt_segment`, the encryption deferred: (``clear`` itself for the init
    segment, else an :class:`Encrypted` body; the IV used)."""
    if ref.index == urls.INIT:
        return clear, b""
    used = iv or sequence_iv(ref.sequence)
    return Encrypted(clear, cipher, used), used


# --- Common Encryption ---------------------------------------------------------------------------


def constant_iv(kid: bytes, configured: bytes | None) -> bytes:
    """cbcs's constant IV for a key: the asset's configured IV, else one derived from the key
    id (the same for every track and request, as the init segment carries it)."""
    if configured:
        return configured
    return hashlib.blake2b(kid, digest_size=16, person=b"origin-cbcs-iv").digest()


def track_protection(
    scheme: Scheme, kid: bytes, track: Track, configured_iv: bytes | None, *, smooth: bool = False
) -> TrackProtection:
    """How ``track`` is protected under a Common Encryption ``scheme``: video with cbcs uses
    the 1:9 pattern, audio encrypts every whole block (§10.4.2); cenc IVs are 16 bytes, 8 for
    Smooth Streaming (PIFF clients build their own tenc with 8)."""
    if scheme is Scheme.CENC:
        return TrackProtection(CENC, kid, cenc_iv_size=8 if smooth else 16)
    return TrackProtection(
        CBCS, kid, constant_iv(kid, configured_iv), pattern=isinstance(track.codec, AvcConfig)
    )


def track_parameter_sets(track: Track) -> ParameterSets | None:
    """The parsed SPS/PPS of an AVC track (once per track); None for audio, or when they cannot
    be read (the subsample map then leaves a fixed prefix of each slice clear)."""
    codec = track.codec
    if not isinstance(codec, AvcConfig):
        return None
    try:
        return parse_parameter_sets(codec.sps, codec.pps)
    except MediaError:
        return None


def subsample_map(
    track: Track,
    sets: ParameterSets | None,
    clear: bytes | bytearray,
    *,
    nal_length_size: int | None = None,
) -> SubsampleMap:
    """The subsample map of clear fragment ``clear`` of ``track`` (one entry per sample of its
    ``trun``). AVC: slice data protected, cut to whole blocks (``cenc`` wants it, ``cbcs`` leaves
    a partial block clear anyway, so one map serves both); AAC: whole samples.
    ``nal_length_size``: the fragment's own (Smooth fragments re-prefix with 4 bytes)."""
    layout = encrypted.read_layout(clear)
    codec = track.codec
    if not isinstance(codec, AvcConfig):
        return whole_samples(len(layout.sizes))
    sets = sets or ParameterSets({}, {})
    view = memoryview(clear)
    samples = []
    pos = layout.payload
    for size in layout.sizes:
        samples.append(view[pos : pos + size])
        pos += size
    return avc_map(samples, nal_length_size or codec.nal_length_size, sets, align=True)


@dataclass(frozen=True, slots=True)
class Protected:
    """A Common Encryption fragment not yet encrypted: its length is known from its plan, its
    bytes are made by :meth:`whole` (in one piece: CTR and the pattern cost ~1 ms a megabyte)."""

    clear: bytes | bytearray
    cipher: SampleCipher
    protection: TrackProtection
    plan: encrypted.ProtectedFragment

    def __len__(self) -> int:
        return self.plan.size

    def whole(self) -> bytearray:
        return encrypted.encrypt_fragment(self.plan, self.clear, self.cipher, self.protection)

    def slices(self, size: int) -> Iterator[bytearray]:
        yield self.whole()


def protection_plan(
    ref: SegmentRef,
    clear: bytes | bytearray,
    protection: TrackProtection,
    smap: SubsampleMap,
    names: tuple[object, ...],
) -> encrypted.ProtectedFragment:
    """The plan of segment ``ref`` (not an init segment) under Common Encryption; ``names``
    identify the stream (asset or channel, and key id) so that cenc's IVs never repeat under a
    key. Depends on nothing per request: keep it beside the clear segment."""
    base_iv = fragment_iv(*names, ref.track, ref.rendition, ref.sequence)
    return encrypted.plan_fragment(
        clear, protection, smap, base_iv=base_iv, piff=ref.format is None
    )


def protected_body(
    ref: SegmentRef,
    clear: bytes | bytearray,
    *,
    cipher: SampleCipher,
    protection: TrackProtection,
    smap: SubsampleMap | None = None,
    names: tuple[object, ...] = (),
    plan: encrypted.ProtectedFragment | None = None,
) -> Protected:
    """Segment ``ref`` under Common Encryption, with its :func:`protection_plan` (made here from
    ``smap`` and ``names`` when not given)."""
    if plan is None:
        if smap is None:
            raise ValueError("a protected body needs its plan or its subsample map")
        plan = protection_plan(ref, clear, protection, smap, names)
    return Protected(clear, cipher, protection, plan)


def protected_init(
    track: Track, edit: fmp4.Edit | None, protection: TrackProtection, psshs: Sequence[bytes]
) -> bytes:
    """The init segment of ``track`` under Common Encryption: an ``encv``/``enca`` sample entry
    with its ``sinf``, and the ``pssh`` boxes of the signalled systems in the moov."""
    stsd = encrypted.protected_stsd(track.stsd, protection)
    return fmp4.init_segment(track, edit, stsd=stsd, moov_extra=b"".join(psshs))


_HLS_METHODS = {Scheme.AES_128: "AES-128", Scheme.CBCS: "SAMPLE-AES", Scheme.CENC: "SAMPLE-AES-CTR"}


def hls_key(scheme: Scheme, uri: str, iv: bytes | None) -> hls.Key:
    """The EXT-X-KEY of ``scheme`` whose URI serves the raw key (KEYFORMAT identity, left
    implicit): AES-128 with the asset's fixed IV if it has one (else the media sequence number);
    SAMPLE-AES (cbcs) and SAMPLE-AES-CTR (cenc) on fMP4 take their IVs from the init segment's
    ``tenc`` and the fragments' ``senc``, so they write none."""
    return hls.Key(uri, iv if scheme is Scheme.AES_128 else None, _HLS_METHODS[scheme])
