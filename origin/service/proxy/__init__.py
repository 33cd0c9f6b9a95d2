"""Manifest proxy: token propagation for HLS origins that cannot do it themselves (seed 003).

``GET /proxy/manifest?playbackUrl=<absolute upstream URL>&token=<token>`` fetches the upstream
playlist and rewrites it:

- master playlist: every variant, ``EXT-X-MEDIA``, I-frame (and image) playlist URI becomes a
  relative link back to this route with the absolute upstream child URL and the same token, so the
  native player (Safari) asks us for every media playlist too;
- media playlist: the ``EXT-X-KEY`` URI (and ``EXT-X-SESSION-KEY`` in a master) gets the token as a
  query parameter (``token_param``; AMS key delivery takes ``token=``, Alibaba ``MtsHlsUriToken=``);
  segments, ``EXT-X-MAP``, parts and preload hints become absolute upstream URLs (with the token
  only when ``segments_carry_token``), so media bytes never pass through us. The token is only
  written into URLs whose host is on ``allow_hosts`` or ``token_hosts`` (e.g. a separate key
  service): a playlist must not be able to send viewers' tokens anywhere it likes.

The rewrite works line by line on the upstream text and only touches URIs: ``m3u8`` parses (to
validate and classify) but its ``dumps`` is not used because it drops unknown tags (and
``EXT-X-MEDIA-SEQUENCE:0``), reorders tags and reformats dates.

The route fetches URLs named by its caller, so it is an SSRF surface. Guards, in order:

1. ``playbackUrl`` must be an absolute http(s) URL without userinfo (400);
2. its host (and port: a port-less entry means the scheme's default port) must be on
   ``allow_hosts`` exactly (403);
3. the host is resolved here and every address is vetted: multicast/unspecified never; link-local
   (cloud metadata) only via ``allow_addresses``; private/loopback/reserved only via
   ``allow_addresses``, ``allow_private``, or when the URL names that IP literally and it is listed
   (403 when no address survives);
4. the request goes to the vetted IP itself (Host header and TLS SNI/verification keep the name),
   and the connector's resolver refuses every lookup, so no second DNS answer (rebinding) is used;
5. redirects are followed by hand, at most 3, each hop through 1-4 again (403 when off the list);
6. bounded time (total and connect: 504), size (streamed, aborted past ``max_bytes``: 502),
   ``Accept-Encoding: identity`` (no decompression bombs), only a 200 whose body starts with
   ``#EXTM3U`` (else 502); no cookies kept, no client headers forwarded, no env proxies.

Tokens and upstream URLs (which may carry their own credentials) never reach logs or error text.

Modules: ``target`` (1), ``settings`` (the ``[proxy]`` model, 2), ``guard`` (2-3), ``fetch`` (4-6),
``playlist_rewrite`` (the pure rewrite), ``route`` (the handler and its client session). The
``[proxy]`` table is read in ``origin.service.config.proxy``.
"""
