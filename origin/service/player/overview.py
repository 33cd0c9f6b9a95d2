"""``/player/status.json``: what the status page shows a person, from the same numbers as
``/metrics``.

The counters are read back from the Prometheus exposition this process would answer a scrape
with (with ``--workers N``, every worker's, summed), so the page and a dashboard never disagree.
The rest is the state requests see: the assets loaded and refused (with the reason, as the
start-up summary gives it) and each live channel's ingest state. No key, token or credential.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from origin.service import metrics
from origin.service.served import STATE
from origin.service.status import channel_report, gauges


def overview(app: web.Application) -> dict[str, Any]:
    body, _ = metrics.render(gauges(app)())
    samples = _samples(body.decode())
    state = app[STATE].current
    return {
        "time": time.time(),
        "assets": {
            "loaded": sorted(state.assets),
            "not_indexed": sorted(state.pending),
            "refused": [{"name": n, "reason": r} for n, r in sorted(state.refused.items())],
        },
        "channels": channel_report(app),
        "caches": _caches(samples),
        "keys": _by(samples, "origin_key_requests_total", "outcome"),
        "requests": _requests(samples),
        "sent_bytes": _by(samples, "origin_response_bytes_total", "kind"),
        "connections": int(sum(v for _, v in samples.get("origin_connections", []))),
        "catalog": _catalog(app),
    }


Sample = tuple[dict[str, str], float]


def _samples(text: str) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name].append((dict(s.labels), float(s.value)))
    return out


def _by(samples: dict[str, list[Sample]], name: str, label: str) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for labels, value in samples.get(name, []):
        out[labels.get(label, "")] += int(value)
    return dict(sorted(out.items()))


def _requests(samples: dict[str, list[Sample]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for labels, value in samples.get("origin_requests_total", []):
        out[labels["kind"]][labels["status"]] = int(value)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def _caches(samples: dict[str, list[Sample]]) -> list[dict[str, Any]]:
    held = _by(samples, "origin_cache_bytes", "cache")
    capacity = _by(samples, "origin_cache_capacity_bytes", "cache")
    lookups: dict[str, dict[str, int]] = defaultdict(lambda: {"hit": 0, "miss": 0})
    for labels, value in samples.get("origin_cache_lookups_total", []):
        lookups[labels["cache"]][labels["result"]] += int(value)
    out = []
    for name in sorted(set(held) | set(capacity)):
        hits, misses = lookups[name]["hit"], lookups[name]["miss"]
        total = hits + misses
        out.append(
            {
                "name": name,
                "bytes": held.get(name, 0),
                "capacity": capacity.get(name, 0),
                "hits": hits,
                "misses": misses,
                # The fast path counts only its hits (a miss falls through to aiohttp).
                "hit_ratio": hits / total if total and name != "answers" else None,
            }
        )
    return out


def _catalog(app: web.Application) -> dict[str, Any] | None:
    live = app[STATE]
    if live.current.config.catalog is None:
        return None
    return {"version": live.current.config.published.version, "problem": live.catalog_problem}
