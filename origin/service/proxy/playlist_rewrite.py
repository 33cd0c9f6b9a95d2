"""Rewriting an upstream HLS playlist for the manifest proxy: pure text in, text out.

Master playlists: every child playlist URI points back at the proxy route (same token). Media
playlists: key URIs carry the token, segment and map URIs become absolute on the upstream. The
``m3u8`` package only validates and tells master from media: its dumper drops unknown tags and
reorders others, so the rewrite itself goes line by line and keeps every tag as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

import m3u8

_SCHEMES = ("http", "https")


def with_param(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` as its last query parameter, replacing any earlier ``name``."""
    rest, hash_sign, fragment = url.partition("#")
    path, _, query = rest.partition("?")
    kept = [p for p in query.split("&") if p and p.partition("=")[0] != name]
    kept.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    return f"{path}?{'&'.join(kept)}{hash_sign}{fragment}"


def proxy_link(route_name: str, child: str, token: str) -> str:
    """A relative link to this route; both values fully percent-encoded.

    Encoding ``:`` and ``/`` too keeps ``://`` out of the link: some players (older ffmpeg) take
    any reference containing ``://`` for an absolute URL.
    """
    return f"{route_name}?playbackUrl={quote(child, safe='')}&token={quote(token, safe='')}"


@dataclass(frozen=True, slots=True)
class Rewriter:
    base: str  # the upstream playlist's final URL
    token: str
    token_param: str
    segments_carry_token: bool
    link: Callable[[str], str]  # absolute upstream playlist URL -> URL of this proxy
    token_ok: Callable[[str], bool]  # may the token go to this absolute URL?
    withheld: set[str] = field(default_factory=set, compare=False)  # hosts denied the token
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False)

    def _with_token(self, url: str) -> str:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        ok = self._verdicts.get(origin)
        if ok is None:
            ok = self._verdicts[origin] = self.token_ok(url)
        if not ok:
            # A playlist naming a foreign key server must not harvest viewers' tokens.
            self.withheld.add(parts.hostname or "?")
            return url
        return with_param(url, self.token_param, self.token)

    def absolute(self, uri: str) -> str | None:
        """The absolute http(s) URL ``uri`` names, or None for other schemes (skd:, data:)."""
        u = urljoin(self.base, uri.strip())
        return u if urlsplit(u).scheme.lower() in _SCHEMES else None

    def playlist(self, uri: str) -> str:
        u = self.absolute(uri)
        return uri if u is None else self.link(u)

    def key(self, uri: str) -> str:
        u = self.absolute(uri)
        return uri if u is None else self._with_token(u)

    def segment(self, uri: str) -> str:
        u = self.absolute(uri)
        if u is None:
            return uri
        return self._with_token(u) if self.segments_carry_token else u

    def plain(self, uri: str) -> str:
        u = self.absolute(uri)
        return uri if u is None else u


Action = Callable[[Rewriter, str], str]
# Which quoted attribute of which tag holds a URI, and what it points at. Tags not listed are kept
# verbatim (a relative URI in an unknown tag would then resolve against the proxy: documented).
_URI_ATTRS: dict[str, tuple[tuple[str, Action], ...]] = {
    "EXT-X-MEDIA": (("URI", Rewriter.playlist),),
    "EXT-X-I-FRAME-STREAM-INF": (("URI", Rewriter.playlist),),
    "EXT-X-IMAGE-STREAM-INF": (("URI", Rewriter.playlist),),
    "EXT-X-RENDITION-REPORT": (("URI", Rewriter.playlist),),
    "EXT-X-KEY": (("URI", Rewriter.key),),
    "EXT-X-SESSION-KEY": (("URI", Rewriter.key),),
    "EXT-X-MAP": (("URI", Rewriter.segment),),
    "EXT-X-PART": (("URI", Rewriter.segment),),
    "EXT-X-PRELOAD-HINT": (("URI", Rewriter.segment),),
    "EXT-X-SESSION-DATA": (("URI", Rewriter.plain),),
    "EXT-X-CONTENT-STEERING": (("SERVER-URI", Rewriter.plain),),
    "EXT-X-DATERANGE": (("X-ASSET-URI", Rewriter.plain), ("X-ASSET-LIST", Rewriter.plain)),
}
_ATTR = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("[^"\r\n]*"|[^,\r\n]*)\s*(,|$)')


class RewriteError(ValueError):
    pass


def _rewrite_attributes(line: str, tag: str, rw: Rewriter) -> str:
    actions = _URI_ATTRS.get(tag)
    if not actions:
        return line
    head = len(tag) + 2  # "#" + tag + ":"
    attrs = line[head:]
    out: list[str] = []
    pos = 0
    # Tokenize the whole attribute list: a quoted value may itself contain ',URI="'.
    while pos < len(attrs):
        m = _ATTR.match(attrs, pos)
        if m is None or m.end() == pos:
            raise RewriteError(f"malformed attribute list in #{tag}")
        name, value = m.group(1).upper(), m.group(2)
        chunk = m.group(0)
        for attr, action in actions:
            if name != attr:
                continue
            if len(value) < 2 or value[0] != '"' or value[-1] != '"':
                raise RewriteError(f"{attr} is not a quoted string in #{tag}")
            start = m.start(2) - m.start(0)
            chunk = f'{chunk[:start]}"{action(rw, value[1:-1])}"{chunk[start + len(value) :]}'
        out.append(chunk)
        pos = m.end()
    return line[:head] + "".join(out)


def rewrite(text: str, rw: Rewriter, *, master: bool) -> str:
    """Rewrite every URI of the playlist ``text``; every line, tag and attribute stays in place."""
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT"):
            tag = line[1:].partition(":")[0]
            out.append(_rewrite_attributes(line, tag, rw) if ":" in line else line)
        elif line and not line.startswith("#"):
            out.append(rw.playlist(line) if master else rw.segment(line))
        else:
            out.append(raw)  # blank lines and comments
    return "\n".join(out) + "\n"


def classify(text: str) -> bool:
    """True for a master playlist, False for a media playlist; RewriteError when neither."""
    try:
        parsed = m3u8.loads(text)
    except Exception as e:  # m3u8 raises ValueError, IndexError, ... on malformed input
        raise RewriteError(f"playlist does not parse ({type(e).__name__})") from None
    master = bool(parsed.is_variant or parsed.iframe_playlists or parsed.media)
    if master and parsed.segments:
        raise RewriteError("playlist mixes master and media playlist tags")
    return master


def rewrite_playlist(text: str, rw: Rewriter) -> str:
    return rewrite(text, rw, master=classify(text))
