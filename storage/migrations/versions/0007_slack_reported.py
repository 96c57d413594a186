"""When a run's final state reached its Slack message (the bot reports the rest after a restart).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("slack_reported_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_slack_unreported", "runs", ["slack_reported_at", "slack_message"])


def downgrade() -> None:
    op.drop_index("ix_runs_slack_unreported", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("slack_reported_at")
