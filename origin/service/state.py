"""What a running server holds: loaded assets, content keys, caches. Built once per config."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from origin.core.crypto import Aes128Cbc
from origin.core.crypto.cenc import SampleCipher
from origin.core.crypto.subsamples import SubsampleMap
from origin.core.errors import MediaError
from origin.core.mp4.avc import ParameterSets
from origin.core.mux.encrypted import ProtectedFragment
from origin.core.pipeline import Presentation, prepare, track_parameter_sets
from origin.core.track import Track
from origin.service.cache import (
    ANSWER_CACHE_BYTES,
    MANIFEST_CACHE_BYTES,
    PROTECTION_CACHE_BYTES,
    SUBSAMPLE_CACHE_BYTES,
    ByteLRU,
)
from origin.service.config import AssetConfig, Config
from origin.service.fastpath import Answer
from origin.service.keys import protection
from origin.service.policy import Policy
from origin.service.storage import SourceFile, close_all, load_movie, open_source

log = logging.getLogger("origin")


@dataclass(slots=True)
class Asset:
    config: AssetConfig
    files: list[SourceFile]
    presentation: Presentation
    version: str  # changes whenever the bytes we would serve change; feeds ETags
    last_modified: float
    # AVC parameter sets by (kind, rendition id), parsed on the first Common Encryption request.
    parameter_sets: dict[tuple[str, int], ParameterSets | None] = field(default_factory=dict)

    def sets_of(self, rendition: int, track: Track) -> ParameterSets | None:
        """The parsed SPS/PPS of a rendition's track (None: audio, or unreadable)."""
        key = (track.kind.value, rendition)  # an audio id may equal a video one
        if key not in self.parameter_sets:
            self.parameter_sets[key] = track_parameter_sets(track)
        return self.parameter_sets[key]


@dataclass(slots=True)
class Pending:
    """An asset indexed on its first request (``server.index = "lazy"``)."""

    config: AssetConfig
    # After a reload, the copy loaded before: served (with a warning) if this load fails.
    fallback: Asset | None = None


@dataclass(slots=True)
class ContentKey:
    kid: uuid.UUID
    key: bytes = field(repr=False)
    cipher: Aes128Cbc = field(repr=False)
    policy: Policy | None = None  # None: open (any request gets the key)
    # The key sealed by the current master key (server.envelope_keys), for key URIs.
    edk: str | None = None
    samples: SampleCipher = field(init=False, repr=False)  # cenc and cbcs, the same key

    def __post_init__(self) -> None:
        self.samples = SampleCipher(self.key)


@dataclass(slots=True)
class State:
    config: Config
    assets: dict[str, Asset]
    refused: dict[str, str]  # asset name → reason it did not load
    keys: dict[uuid.UUID, ContentKey]
    segments: ByteLRU[bytes]
    # Encoded manifests by request path, bounded by bytes (paths are as many as clients invent).
    manifests: ByteLRU[bytes] = field(default_factory=lambda: ByteLRU(MANIFEST_CACHE_BYTES))
    # Common Encryption's plans of clear segments (header, runs) by (segment cache key, scheme,
    # key id), and the subsample maps they are made from, by the segment cache's keys.
    plans: ByteLRU[ProtectedFragment] = field(
        default_factory=lambda: ByteLRU(PROTECTION_CACHE_BYTES)
    )
    subsamples: ByteLRU[SubsampleMap] = field(
        default_factory=lambda: ByteLRU(SUBSAMPLE_CACHE_BYTES)
    )
    # The fast path's answers (origin.service.fastpath): a reload's new state starts with none.
    answers: ByteLRU[Answer] = field(default_factory=lambda: ByteLRU(ANSWER_CACHE_BYTES))
    # The key of signed segment URLs (origin.service.tokens.urlsig): the config's, resolved from
    # state_dir by resolve_secrets; a process's own random one when nothing resolved it.
    signing_key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    # Assets not indexed yet (server.index = "lazy"), and the indexing under way by name.
    pending: dict[str, Pending] = field(default_factory=dict)
    # Keys opened from envelopes (``/key?edk=``), by envelope: unwrapped once per process.
    envelopes: dict[str, ContentKey] = field(default_factory=dict)
    _indexing: dict[str, asyncio.Future[Asset]] = field(default_factory=dict)

    def close(self) -> None:
        for a in self.assets.values():
            close_all(a.files)
        for p in self.pending.values():
            if p.fallback is not None:
                close_all(p.fallback.files)

    async def asset(self, name: str) -> Asset | None:
        """The asset ``name`` (None: no such asset, or refused), indexed now if it is pending.

        Indexing runs in the default executor, once however many requests ask at the same
        time: each waits for the same load, and a request that goes away does not cancel it.
        """
        asset = self.assets.get(name)
        if asset is not None or name not in self.pending:
            return asset
        job = self._indexing.get(name)
        if job is None:
            loop = asyncio.get_running_loop()
            cfg, where = self.pending[name].config, self.config.server.state_dir
            records = self.config.published.records
            job = loop.run_in_executor(None, load_asset, cfg, where, records)
            self._indexing[name] = job
        try:
            loaded = await asyncio.shield(job)
        except Exception as e:
            if name in self.pending:  # the first waiter to see the failure records it
                self._indexing.pop(name, None)
                p = self.pending.pop(name)
                kept = _refuse(p.config, p.fallback, e, self.refused)
                if kept is not None:
                    self.assets[name] = kept
            return self.assets.get(name)
        if name in self.pending:
            self._indexing.pop(name, None)
            del self.pending[name]
            self.assets[name] = loaded
        return self.assets.get(name)

    def fit_cache(self) -> None:
        """Resize the segment cache (shared across reloads) to this config's size."""
        self.segments.resize(_cache_bytes(self.config))


def _version(cfg: AssetConfig, files: list[SourceFile]) -> str:
    """What the ETags derive from: the files' content (their fingerprints) and the config that
    shapes the output, never a path or an mtime, so every origin node gives the same."""
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        h.update(f"{f.fingerprint}\0".encode())
    h.update(f"{cfg.segment_duration}\0{cfg.protection}\0{cfg.key_id}\0".encode())
    h.update(cfg.key or b"")  # a new key under the same id changes every encrypted byte
    h.update(cfg.iv or b"")
    return h.hexdigest()


def load_asset(
    cfg: AssetConfig, state_dir: Path, records: Mapping[str, str] | None = None
) -> Asset:
    """Open and index an asset's files; ``state_dir`` keeps the protection key that opens files
    encrypted at rest, ``records`` their records kept in the catalog (by path)."""
    files: list[SourceFile] = []
    opener = functools.partial(protection.cached, state_dir)
    try:
        for path in cfg.files:
            try:
                files.append(open_source(path, opener, (records or {}).get(str(path))))
            except FileNotFoundError:
                raise MediaError(f"{path}: no such file") from None
            except OSError as e:
                raise MediaError(f"{path}: cannot open: {e.strerror or e}") from None
        movies = [load_movie(f) for f in files]
        pres = prepare(cfg.name, movies, cfg.segment_duration, names=[str(p) for p in cfg.files])
    except BaseException:
        close_all(files)
        raise
    # Last-Modified: the muxer's own time when every file records one (the same on every node),
    # else the files' mtime (the same where copies keep it: rsync -t, cp -p).
    recorded = [m.modified for m in movies if m.modified is not None]
    modified = max(recorded) if len(recorded) == len(movies) else max(f.mtime for f in files)
    return Asset(cfg, files, pres, _version(cfg, files), modified)


def _reusable(old: Asset | None, cfg: AssetConfig) -> Asset | None:
    """The already loaded asset when neither its config nor its files changed."""
    if old is None or old.config != cfg:
        return None
    for f in old.files:
        try:
            st = os.stat(f.path)
        except OSError:
            return None
        if (st.st_size, st.st_mtime) != (f.size, f.mtime):
            return None
    return old


def _intact(asset: Asset) -> bool:
    """Whether a loaded asset still reads what it loaded: its open files were not written to.

    A source deleted, renamed away or made unreadable since is still intact (the open descriptor
    reads the same bytes); one truncated or rewritten in place is not.
    """
    try:
        return not any(f.changed() for f in asset.files)
    except OSError:
        return False


def _reason(e: Exception) -> str:
    if isinstance(e, MediaError):
        return str(e)
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}cannot read: {e.strerror or e}"
    kind = type(e).__qualname__
    if type(e).__module__ != "builtins":
        kind = f"{type(e).__module__}.{kind}"
    return f"unexpected {kind} while loading: {e}"


def build_state(config: Config, previous: State | None = None) -> State:
    """Load every asset; a broken one is refused (logged with its reason), the rest still load.

    Any exception while loading one asset refuses that asset only: a damaged file, a missing or
    unreadable one, a directory, a parser bug. MediaError and OSError are expected and logged in
    one line; anything else is a bug and is logged with its traceback.

    With ``previous`` (a reload), unchanged assets are reused as they are, and so is the segment
    cache: its keys carry each asset's version, so nothing stale can be served from it. An asset
    whose config is unchanged but whose files can no longer be loaded (deleted, unreadable,
    replaced by something broken) keeps serving the copy loaded before, with a warning, as long
    as that copy is intact; a changed config is loaded as at start-up or refused.

    With ``server.index = "lazy"`` nothing is indexed here but the assets looped channels play:
    the rest are pending, each indexed on its first request (:meth:`State.asset`), refused then
    if it cannot load.
    """
    assets: dict[str, Asset] = {}
    refused: dict[str, str] = {}
    keys: dict[uuid.UUID, ContentKey] = {}
    pending: dict[str, Pending] = {}
    lazy = config.server.index == "lazy"
    # A looped channel plays its asset from the start: that one is always indexed now.
    looped = {ch.asset for ch in config.channels if ch.loop and ch.asset}
    for cfg in config.assets:
        old = previous.assets.get(cfg.name) if previous else None
        if old is None and previous is not None and cfg.name in previous.pending:
            old = previous.pending[cfg.name].fallback
        asset = _reusable(old, cfg)
        if asset is None and lazy and cfg.name not in looped:
            pending[cfg.name] = Pending(cfg, old if old is not None and old.config == cfg else None)
        elif asset is None:
            try:
                asset = load_asset(cfg, config.server.state_dir, config.published.records)
            except Exception as e:
                asset = _refuse(cfg, old, e, refused)
        if asset is not None:
            assets[cfg.name] = asset
    owners = [(a.key_id, a.key, a.policy) for a in config.assets]
    owners += [(ch.key_id, ch.key, ch.policy) for ch in config.channels]
    for kid, key, policy in owners:
        if kid is not None and key is not None and kid not in keys:
            keys[kid] = content_key(config, kid, key, policy)
    # A reload runs this off the event loop while requests use the shared cache: the caller
    # resizes it (State.fit_cache) on the loop, after the swap.
    cache = previous.segments if previous is not None else ByteLRU[bytes](_cache_bytes(config))
    state = State(config, assets, refused, keys, cache, pending=pending)
    if config.server.url_signing_key is not None:
        state.signing_key = config.server.url_signing_key
    return state


def content_key(config: Config, kid: uuid.UUID, key: bytes, policy: str | None) -> ContentKey:
    """A content key as served, sealed in its envelope when the server writes envelopes."""
    kms = config.server.kms
    edk = kms.seal(kid, key, policy) if kms is not None else None
    rule = config.policies.get(policy) if policy else None
    return ContentKey(kid, key, Aes128Cbc(key), rule, edk)


def _refuse(
    cfg: AssetConfig, old: Asset | None, e: Exception, refused: dict[str, str]
) -> Asset | None:
    """After ``cfg`` failed to load with ``e``: the copy loaded before if it may still serve
    (same config, files intact), else None with the asset refused; logged either way."""
    reason = _reason(e)
    if old is not None and old.config == cfg and _intact(old):
        log.warning("asset %r: %s; still serving the copy loaded before", cfg.name, reason)
        return old
    refused[cfg.name] = reason
    expected = isinstance(e, MediaError | OSError)
    log.error("asset %r refused: %s", cfg.name, reason, exc_info=not expected)
    return None


def _cache_bytes(config: Config) -> int:
    return config.server.cache_mb * 1024 * 1024


def _loaded(state: State) -> list[Asset]:
    """Every loaded asset ``state`` may serve from (fallbacks of pending ones included)."""
    fallbacks = [p.fallback for p in state.pending.values() if p.fallback is not None]
    return [*state.assets.values(), *fallbacks]


def files_in_use(state: State) -> set[int]:
    """Identities of the source files ``state`` serves from."""
    return {id(f) for a in _loaded(state) for f in a.files}


def files_to_close(old: State, new: State) -> list[SourceFile]:
    """Files of ``old`` assets that ``new`` no longer uses."""
    kept = files_in_use(new)
    return [f for a in _loaded(old) for f in a.files if id(f) not in kept]
