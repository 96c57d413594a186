"""Slack workspaces that installed the app (multi-workspace mode; tokens encrypted), and the
workspace of each run's Slack message.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_installations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("enterprise_id", sa.String(40), nullable=False),
        sa.Column("team_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("is_enterprise_install", sa.Boolean, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("enterprise_id", "team_id", "user_id", name="uq_slack_installations_installer"),
    )
    op.create_index(
        "ix_slack_installations_workspace", "slack_installations", ["enterprise_id", "team_id", "installed_at"]
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("slack_team", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("slack_team")
    op.drop_index("ix_slack_installations_workspace", table_name="slack_installations")
    op.drop_table("slack_installations")
