"""Labelled predictions: an index of only the logged predictions that have a label, so that
live performance reads the period's labelled rows without scanning every logged one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LABELLED = sa.text("labelled_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_predictions_labelled",
        "predictions",
        ["version_id", "created_at"],
        sqlite_where=LABELLED,
        postgresql_where=LABELLED,
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_labelled", table_name="predictions")
