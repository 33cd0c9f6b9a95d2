"""The catalog store: the database behind the management API, through SQLAlchemy's async Core.

``sqlite:///PATH`` (the default: one file, made on first start) runs on aiosqlite,
``postgresql://…`` on asyncpg. :meth:`Catalog.open` applies the Alembic migrations shipped in
``migrations/`` (under a lock on PostgreSQL, so nodes starting together migrate once). Every
write is one transaction that also appends to ``changes``; :meth:`Catalog.version` is its
highest id, what other nodes poll.

Failures of the database itself are :class:`Unavailable` (the API answers 503, the server keeps
what it had); a name or id that exists is :class:`Conflict` (409), one that does not
:class:`Missing` (404).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util import CommandError as AlembicError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from origin.service.catalog import schema
from origin.service.catalog.errors import Conflict, Missing, Unavailable
from origin.service.catalog.view import Locator

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATING = asyncio.Lock()
_PG_MIGRATION_LOCK = 0x6F726967  # "orig": pg_advisory_xact_lock key of the migrations


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    envelope: str
    master_id: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the catalog holds, read in one transaction."""

    version: int
    assets: dict[str, dict[str, Any]]
    policies: dict[str, dict[str, Any]]
    keys: dict[str, StoredKey]
    locators: tuple[Locator, ...]
    records: dict[str, str] = dataclasses.field(default_factory=dict)  # path → record JSON
    channels: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def async_url(url: str) -> str:
    """The SQLAlchemy URL with the async driver of its database."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    for prefix in ("postgresql:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql+asyncpg:" + url.removeprefix(prefix)
    return url


def redacted(url: str) -> str:
    """The URL as it may be logged: no password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(not a database URL)"


class Catalog:
    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url

    @classmethod
    async def open(cls, url: str) -> Catalog:
        """Connect and migrate to the newest schema; Unavailable when the database cannot be
        reached or migrated."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_async_engine(async_url(url), pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as e:
            raise Unavailable(f"catalog database URL {redacted(url)}: {e}") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        catalog = cls(engine, url)
        try:
            # Alembic keeps its context in module globals: one migration at a time per process.
            async with _MIGRATING, engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    await conn.execute(
                        sa.text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
                    )
                await conn.run_sync(_upgrade)
        except (SQLAlchemyError, OSError, AlembicError) as e:
            await engine.dispose()
            raise Unavailable(f"catalog {redacted(url)}: {_reason(e)}") from None
        return catalog

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except IntegrityError as e:
            raise Conflict(_reason(e)) from None
        except (SQLAlchemyError, OSError) as e:
            raise Unavailable(f"catalog unavailable: {_reason(e)}") from None

    async def _changed(self, conn: AsyncConnection, what: str) -> None:
        await conn.execute(sa.insert(schema.changes).values(at=time.time(), what=what[:200]))

    async def _upsert(self, table: sa.Table, name: str, spec: dict[str, Any], what: str) -> bool:
        """Create or replace the ``spec`` named ``name`` of a (name, spec, updated_at) table;
        True when it was created."""
        text, now = json.dumps(spec, sort_keys=True), time.time()
        async with self._tx() as conn:
            done = await conn.execute(
                sa.update(table).where(table.c.name == name).values(spec=text, updated_at=now)
            )
            created = done.rowcount == 0
            if created:
                await conn.execute(sa.insert(table).values(name=name, spec=text, updated_at=now))
            await self._changed(conn, f"{what} {name}")
        return created

    async def version(self) -> int:
        async with self._tx() as conn:
            got = await conn.scalar(sa.select(sa.func.max(schema.changes.c.id)))
        return int(got or 0)

    async def snapshot(self) -> Snapshot:
        async with self._tx() as conn:
            version = await conn.scalar(sa.select(sa.func.max(schema.changes.c.id)))
            assets = {
                r.name: json.loads(r.spec)
                for r in await conn.execute(sa.select(schema.assets).order_by(schema.assets.c.name))
            }
            policies = {
                r.name: json.loads(r.spec) for r in await conn.execute(sa.select(schema.policies))
            }
            keys = {
                r.kid: StoredKey(r.kid, r.envelope, r.master_id, r.created_at)
                for r in await conn.execute(sa.select(schema.content_keys))
            }
            locators = tuple(
                Locator(r.id, r.asset, r.starts_at, r.ends_at, r.created_at)
                for r in await conn.execute(sa.select(schema.locators))
            )
            records = {
                r.path: r.record for r in await conn.execute(sa.select(schema.storage_records))
            }
            channels = {
                r.name: json.loads(r.spec) for r in await conn.execute(sa.select(schema.channels))
            }
        return Snapshot(int(version or 0), assets, policies, keys, locators, records, channels)

    # ---- assets ------------------------------------------------------------------------------

    async def put_asset(self, name: str, spec: dict[str, Any], *, create: bool) -> None:
        now = time.time()
        text = json.dumps(spec, sort_keys=True)
        async with self._tx() as conn:
            if create:
                await conn.execute(
                    sa.insert(schema.assets).values(
                        name=name, spec=text, created_at=now, updated_at=now
                    )
                )
            else:
                done = await conn.execute(
                    sa.update(schema.assets)
                    .where(schema.assets.c.name == name)
                    .values(spec=text, updated_at=now)
                )
                if done.rowcount == 0:
                    raise Missing(f"no asset {name!r}")
            await self._changed(conn, f"asset {name}")

    async def delete_asset(self, name: str) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.delete(schema.locators).where(schema.locators.c.asset == name))
            done = await conn.execute(sa.delete(schema.assets).where(schema.assets.c.name == name))
            if done.rowcount == 0:
                raise Missing(f"no asset {name!r}")
            await self._changed(conn, f"asset {name} deleted")

    # ---- content keys ------------------------------------------------------------------------

    async def add_key(self, kid: str, envelope: str, master_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                sa.insert(schema.content_keys).values(
                    kid=kid, envelope=envelope, master_id=master_id, created_at=time.time()
                )
            )
            await self._changed(conn, f"key {kid}")

    async def delete_key(
        self, kid: str, in_use: Callable[[dict[str, dict[str, Any]]], str | None]
    ) -> None:
        """Delete a key unless ``in_use`` (given every asset) names an asset that uses it."""
        async with self._tx() as conn:
            rows = await conn.execute(sa.select(schema.assets))
            user = in_use({r.name: json.loads(r.spec) for r in rows})
            if user is not None:
                raise Conflict(f"key {kid} is used by asset {user!r}")
            done = await conn.execute(
                sa.delete(schema.content_keys).where(schema.content_keys.c.kid == kid)
            )
            if done.rowcount == 0:
                raise Missing(f"no key {kid}")
            await self._changed(conn, f"key {kid} deleted")

    async def reseal_keys(self, reseal: Callable[[StoredKey], tuple[str, str]]) -> int:
        """Replace every key's envelope by ``reseal(key)`` → (envelope, master id), in one
        transaction (master key rotation: the content keys themselves do not change)."""
        async with self._tx() as conn:
            rows = list(await conn.execute(sa.select(schema.content_keys)))
            for r in rows:
                envelope, master_id = reseal(
                    StoredKey(r.kid, r.envelope, r.master_id, r.created_at)
                )
                await conn.execute(
                    sa.update(schema.content_keys)
                    .where(schema.content_keys.c.kid == r.kid)
                    .values(envelope=envelope, master_id=master_id)
                )
            await self._changed(conn, f"{len(rows)} keys resealed")
        return len(rows)

    # ---- policies ----------------------------------------------------------------------------

    async def put_policy(self, name: str, spec: dict[str, Any]) -> bool:
        """Create or replace; True when it was created."""
        return await self._upsert(schema.policies, name, spec, "policy")

    async def delete_policy(self, name: str) -> None:
        async with self._tx() as conn:
            for r in await conn.execute(sa.select(schema.assets)):
                if json.loads(r.spec).get("policy") == name:
                    raise Conflict(f"policy {name!r} is used by asset {r.name!r}")
            done = await conn.execute(
                sa.delete(schema.policies).where(schema.policies.c.name == name)
            )
            if done.rowcount == 0:
                raise Missing(f"no policy {name!r}")
            await self._changed(conn, f"policy {name} deleted")

    # ---- channels ----------------------------------------------------------------------------

    async def put_channel(self, name: str, spec: dict[str, Any]) -> bool:
        """Create or replace; True when it was created."""
        return await self._upsert(schema.channels, name, spec, "channel")

    async def delete_channel(self, name: str) -> None:
        async with self._tx() as conn:
            done = await conn.execute(
                sa.delete(schema.channels).where(schema.channels.c.name == name)
            )
            if done.rowcount == 0:
                raise Missing(f"no channel {name!r}")
            await self._changed(conn, f"channel {name} deleted")

    # ---- storage-encryption records ---------------------------------------------------------

    async def put_record(self, path: str, record: str) -> None:
        """Keep (or replace) the storage record of the encrypted file ``path``."""
        async with self._tx() as conn:
            await conn.execute(
                sa.delete(schema.storage_records).where(schema.storage_records.c.path == path)
            )
            await conn.execute(
                sa.insert(schema.storage_records).values(
                    path=path, record=record, created_at=time.time()
                )
            )
            await self._changed(conn, f"storage record {path}"[:200])

    # ---- locators ----------------------------------------------------------------------------

    async def add_locator(self, loc: Locator) -> None:
        async with self._tx() as conn:
            exists = await conn.scalar(
                sa.select(schema.assets.c.name).where(schema.assets.c.name == loc.asset)
            )
            if exists is None:
                raise Missing(f"no asset {loc.asset!r} in the catalog")
            await conn.execute(sa.insert(schema.locators).values(**loc.json()))
            await self._changed(conn, f"locator {loc.id}")

    async def delete_locator(self, locator_id: str) -> None:
        async with self._tx() as conn:
            done = await conn.execute(
                sa.delete(schema.locators).where(schema.locators.c.id == locator_id)
            )
            if done.rowcount == 0:
                raise Missing(f"no locator {locator_id}")
            await self._changed(conn, f"locator {locator_id} deleted")


def _upgrade(sync_conn: sa.Connection) -> None:
    # Alembic says "Context impl SQLiteImpl" and each step at INFO: a migration is news, the
    # check that there is none is not.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA journal_mode = WAL")  # readers (other workers) never wait for a writer
    cur.execute("PRAGMA busy_timeout = 5000")
    cur.close()


def _reason(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).splitlines()[0] if str(e) else type(e).__name__
    return text[:300]
