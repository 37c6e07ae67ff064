"""Rollout analysis: each rollout's step clock, latest analysis and pending operator command;
the evidence every replica has seen of each step.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("analysis", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("command", sa.String(16), nullable=True))
    op.create_table(
        "rollout_evidence",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("replica", sa.String(128), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name="fk_rollout_evidence_rollout_id_rollouts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rollout_id", "step", "replica", name="pk_rollout_evidence"),
    )


def downgrade() -> None:
    op.drop_table("rollout_evidence")
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("command")
        batch.drop_column("analysis")
        batch.drop_column("step_started_at")
