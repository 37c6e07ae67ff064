"""Monitoring: reference profiles, live windows, evaluations and the prediction log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _version_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["version_id"],
        ["model_versions.id"],
        name=f"fk_{table}_version_id_model_versions",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "monitor_profiles",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", name="pk_monitor_profiles"),
        _version_fk("monitor_profiles"),
    )
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("replica", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_windows"),
        _version_fk("monitor_windows"),
    )
    op.create_index("ix_monitor_windows_version_end", "monitor_windows", ["version_id", "ended_at"])
    op.create_table(
        "monitor_evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", TS, nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_evaluations"),
        _version_fk("monitor_evaluations"),
    )
    op.create_index(
        "ix_monitor_evaluations_version_at",
        "monitor_evaluations",
        ["version_id", "evaluated_at"],
    )
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("label", sa.JSON(), nullable=True),
        sa.Column("labelled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_predictions"),
        _version_fk("predictions"),
    )
    op.create_index("ix_predictions_version_at", "predictions", ["version_id", "created_at"])
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_predictions_created_at", table_name="predictions")
    op.drop_index("ix_predictions_version_at", table_name="predictions")
    op.drop_table("predictions")
    op.drop_index("ix_monitor_evaluations_version_at", table_name="monitor_evaluations")
    op.drop_table("monitor_evaluations")
    op.drop_index("ix_monitor_windows_version_end", table_name="monitor_windows")
    op.drop_table("monitor_windows")
    op.drop_table("monitor_profiles")
