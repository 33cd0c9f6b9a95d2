"""The catalog's tables, one definition for the migrations, the store and the tests.

Assets and policies are kept as the JSON of their TOML tables (``[[assets]]``, ``[policies.X]``),
so the config's one checker validates both and a catalog entry means what a config entry means.
Content keys are kept only sealed by the master key (their envelope). Times are Unix seconds.
Every write adds a row to ``changes``: nodes poll its highest id to see that something changed.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

assets = Table(
    "assets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("spec", Text, nullable=False),  # JSON: the [[assets]] table, never key material
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

content_keys = Table(
    "content_keys",
    metadata,
    Column("kid", String(36), primary_key=True),
    Column("envelope", Text, nullable=False),  # sealed by the master key named in it
    Column("master_id", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("spec", Text, nullable=False),  # JSON: the [policies.NAME] table
    Column("updated_at", Float, nullable=False),
)

locators = Table(
    "locators",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("asset", String(64), ForeignKey("assets.name", ondelete="CASCADE"), nullable=False),
    Column("starts_at", Float, nullable=True),  # None: valid from its creation
    Column("ends_at", Float, nullable=True),  # None: until deleted
    Column("created_at", Float, nullable=False),
)

channels = Table(
    "channels",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("spec", Text, nullable=False),  # JSON: the [[channels]] table
    Column("updated_at", Float, nullable=False),
)

storage_records = Table(
    "storage_records",
    metadata,
    Column("path", Text, primary_key=True),  # the encrypted file, absolute
    Column("record", Text, nullable=False),  # JSON: its StorageRecord (nothing secret)
    Column("created_at", Float, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("what", String(200), nullable=False),
)
