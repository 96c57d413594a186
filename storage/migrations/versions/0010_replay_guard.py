"""The replay guard shared by bot processes: accepted signed requests (webhooks, Slack) by the
SHA-256 of their key, until their timestamp window is over.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replay_guard",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_replay_guard_expires_at", "replay_guard", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_replay_guard_expires_at", table_name="replay_guard")
    op.drop_table("replay_guard")
