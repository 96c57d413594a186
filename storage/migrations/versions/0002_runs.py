"""Run records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("flow_run_id", sa.String(36), nullable=True),
        sa.Column("workflow", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("trigger", sa.String(40), nullable=False),
        sa.Column("triggered_by", sa.String(100), nullable=True),
        sa.Column("slack_channel", sa.String(40), nullable=True),
        sa.Column("slack_thread", sa.String(40), nullable=True),
        sa.Column("slack_message", sa.String(40), nullable=True),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("resumed_from", sa.String(32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_runs_workflow_started", "runs", ["workflow", "started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_workflow_started", table_name="runs")
    op.drop_table("runs")
