"""Bounded LRUs sized in bytes: clear segments (encrypted output is never cached), manifests,
parsed request paths. A cache that grows with what clients ask for must be bounded by what its
entries weigh, keys included, not by how many there are."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sized
from typing import Generic, TypeVar, cast

V = TypeVar("V")

ANSWER_CACHE_BYTES = 8 * 1024 * 1024  # fast-path answers (origin.service.fastpath)
MANIFEST_CACHE_BYTES = 32 * 1024 * 1024  # manifests without a token, by request path
SUBSAMPLE_CACHE_BYTES = 8 * 1024 * 1024  # Common Encryption subsample maps (~1 KB a segment)
PROTECTION_CACHE_BYTES = 16 * 1024 * 1024  # their plans: encrypted headers, runs (~5-15 KB)
ROUTE_CACHE_BYTES = 4 * 1024 * 1024  # parsed request paths
# What an entry weighs beyond its key's and value's bytes: the OrderedDict node, the entry tuple,
# the str header of the key and, for a parsed path, its dataclasses (measured with tracemalloc).
ENTRY_OVERHEAD = 400


class ByteLRU(Generic[V]):
    """LRU of values weighing ``cost`` bytes each (default ``len(value)``); ``used`` never
    exceeds ``capacity``."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.used = 0
        self.hits = 0  # lookups by get() that found their entry
        self.misses = 0
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        value = self.find(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def find(self, key: Hashable) -> V | None:
        """:meth:`get`, not counted: for a lookup that most requests make and miss (the fast
        path's, which counts its own hits)."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def pop(self, key: Hashable) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.used -= item[1]

    def put(self, key: Hashable, value: V, cost: int | None = None) -> None:
        size = len(cast(Sized, value)) if cost is None else cost
        if size > self.capacity:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self._items[key] = (value, size)
        self.used += size
        self._evict()

    def resize(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._evict()

    def _evict(self) -> None:
        while self.used > self.capacity:
            _, (_, size) = self._items.popitem(last=False)
            self.used -= size

    def stats(self) -> dict[str, int | float | None]:
        """Size, fill and hit ratio (None before any lookup), for /healthz and metrics."""
        lookups = self.hits + self.misses
        return {
            "capacity_bytes": self.capacity,
            "used_bytes": self.used,
            "entries": len(self._items),
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / lookups, 4) if lookups else None,
        }

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.used = 0
