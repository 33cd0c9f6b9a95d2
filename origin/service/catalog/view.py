"""What the running server knows of the catalog (no database code: the config imports it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCATOR_MISS_MAX_AGE = 5  # seconds a 404 for an unknown or expired locator may be cached


@dataclass(frozen=True, slots=True)
class Locator:
    """A streaming locator (AMS): the asset it publishes and when; its id is the first segment
    of the URLs it publishes the asset under."""

    id: str
    asset: str
    starts_at: float | None
    ends_at: float | None
    created_at: float

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "asset": self.asset,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_at": self.created_at,
        }

    def valid_at(self, now: float) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    """``[catalog]``: the database, the management API's admin key, how often to look for
    changes other nodes made."""

    database_url: str
    admin_key_file: Path | None = None  # None: <state_dir>/catalog-admin.key, made on first use
    admin_key_env: str | None = None
    poll_interval: float = 2.0
    admin_key: str | None = field(default=None, repr=False, compare=False)  # resolved


@dataclass(frozen=True, slots=True)
class Published:
    """The catalog's part of a config: which assets are the catalog's (they stream only through
    a valid locator) and the locators by id (lower-case UUID text)."""

    version: int = 0
    assets: frozenset[str] = frozenset()
    locators: Mapping[str, Locator] = field(default_factory=dict)
    # The catalog assets each content key protects (key id, lower-case): a key of the catalog
    # is delivered only under a locator valid for one of them.
    keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Storage-encryption records kept in the catalog, by encrypted file path (their JSON).
    records: Mapping[str, str] = field(default_factory=dict)

    def key_allowed(self, kid: str, locator: str | None, now: float) -> bool:
        owners = self.keys.get(kid.lower())
        if owners is None:
            return True  # not the catalog's: the config's rules
        return any(self.locator_for(locator, asset, now) is not None for asset in owners)

    def locator_for(self, locator: str | None, asset: str, now: float) -> Locator | None:
        """The valid locator ``locator`` publishing ``asset`` now, else None."""
        if locator is None:
            return None
        found = self.locators.get(locator.lower())
        if found is None or found.asset != asset or not found.valid_at(now):
            return None
        return found
