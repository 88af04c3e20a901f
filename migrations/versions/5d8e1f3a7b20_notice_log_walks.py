"""通知记录's other walks: the read notifications' ids (a partial index: read_at IS NOT NULL), and
delivery (status, notification_id) in place of the index on status alone

Revision ID: 5d8e1f3a7b20
Revises: 0b7d4e2a9c15
Create Date: 2026-12-03 12:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = '5d8e1f3a7b20'
down_revision = '0b7d4e2a9c15'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_notification_read', 'notification', ['id'], unique=False,
                    sqlite_where=sa.text('read_at IS NOT NULL'), postgresql_where=sa.text('read_at IS NOT NULL'))
    op.create_index('ix_delivery_status_notification', 'delivery', ['status', 'notification_id'], unique=False)
    op.drop_index('ix_delivery_status', table_name='delivery')


def downgrade():
    op.create_index('ix_delivery_status', 'delivery', ['status'], unique=False)
    op.drop_index('ix_delivery_status_notification', table_name='delivery')
    op.drop_index('ix_notification_read', table_name='notification')
