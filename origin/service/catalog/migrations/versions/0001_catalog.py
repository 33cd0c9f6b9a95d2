"""The catalog's first schema: assets, content keys, policies, locators, changes.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "content_keys",
        sa.Column("kid", sa.String(36), primary_key=True),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("master_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "policies",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "locators",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "asset",
            sa.String(64),
            sa.ForeignKey("assets.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("starts_at", sa.Float, nullable=True),
        sa.Column("ends_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("locators_asset", "locators", ["asset"])
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("what", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    for table in ("changes", "locators", "policies", "content_keys", "assets"):
        op.drop_table(table)
