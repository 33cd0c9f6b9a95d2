"""Tokens verified lately, remembered by their exact bytes for a short while.

A player asks for the same key with the same token again and again (every key rotation, every
reload, every player on a shared token); verifying an HS256 JWT costs more than the rest of a key
request. A token that passed a restriction for a key passes it again until it expires, so its
verification is kept until the earliest of its expiry (with the restriction's clock skew) and
``TTL`` seconds. Keyed by the restriction object itself: a reload that changes a policy makes new
restriction objects, which find nothing here (the reload clears it too). Only successes are kept;
every request still goes through the policy (its other restrictions, such as addresses, are
checked each time). Bounded by bytes.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

TTL = 60.0  # seconds a verification is trusted at most
BUDGET = 4 << 20  # bytes of tokens kept
_OVERHEAD = 160  # per entry: the key tuple, the value, the dict slot
_Key = tuple[int, str, uuid.UUID]


class VerifiedTokens:
    def __init__(self, budget: int = BUDGET, ttl: float = TTL) -> None:
        self.budget = budget
        self.ttl = ttl
        self.used = 0
        # (id(restriction), token, kid) -> (restriction, verified at, trusted until)
        self._entries: OrderedDict[_Key, tuple[object, float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def hit(self, restriction: object, token: str, kid: uuid.UUID, now: float) -> bool:
        """Whether ``token`` passed ``restriction`` for ``kid`` lately and is still valid."""
        key = (id(restriction), token, kid)
        entry = self._entries.get(key)
        if entry is None:
            return False
        owner, since, until = entry
        # Before its verification (a clock stepped back) it may not have been valid yet.
        if owner is not restriction or not since <= now < until:
            self._drop(key)
            return False
        self._entries.move_to_end(key)
        return True

    def trusted_until(
        self, restriction: object, token: str, kid: uuid.UUID, now: float
    ) -> float | None:
        """Until when :meth:`hit` holds for this token (None: not remembered, or no longer)."""
        if not self.hit(restriction, token, kid, now):
            return None
        return self._entries[(id(restriction), token, kid)][2]

    def add(
        self, restriction: object, token: str, kid: uuid.UUID, now: float, expires: float
    ) -> None:
        """Remember a success; ``expires``: when the token stops being valid (skew included)."""
        key = (id(restriction), token, kid)
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (restriction, now, min(expires, now + self.ttl))
        self.used += len(token) + _OVERHEAD
        while self.used > self.budget and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: _Key) -> None:
        del self._entries[key]
        self.used -= len(key[1]) + _OVERHEAD

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0


VERIFIED = VerifiedTokens()  # one per process: the key service's
