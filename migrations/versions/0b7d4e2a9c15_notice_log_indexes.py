"""Indexes for 通知记录's filters and bounded counts: notification (kind, id), and the unread
notifications' ids (a partial index: read_at IS NULL)

Revision ID: 0b7d4e2a9c15
Revises: f3a9c6d1e8b2
Create Date: 2026-12-03 12:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0b7d4e2a9c15'
down_revision = 'f3a9c6d1e8b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_notification_kind', 'notification', ['kind', 'id'], unique=False)
    op.create_index('ix_notification_unread', 'notification', ['id'], unique=False,
                    sqlite_where=sa.text('read_at IS NULL'), postgresql_where=sa.text('read_at IS NULL'))


def downgrade():
    op.drop_index('ix_notification_unread', table_name='notification')
    op.drop_index('ix_notification_kind', table_name='notification')
