"""Pending OAuth authorizations of `/flow connect` (single-use states).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("slack_user", sa.String(100), nullable=False),
        sa.Column("slack_team", sa.String(40), nullable=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("credential", sa.String(100), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_oauth_states_created_at", "oauth_states", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_states_created_at", table_name="oauth_states")
    op.drop_table("oauth_states")
