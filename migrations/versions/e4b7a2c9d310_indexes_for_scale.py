"""Indexes for the lookups the pages make at scale: audit entries by part and by plan, a user's
unread notifications

Revision ID: e4b7a2c9d310
Revises: d81f3a6c2b90
Create Date: 2026-12-02 18:00:00
"""
from alembic import op

revision = 'e4b7a2c9d310'
down_revision = 'd81f3a6c2b90'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(op.f('ix_audit_entry_part_id'), 'audit_entry', ['part_id'], unique=False)
    op.create_index(op.f('ix_audit_entry_plan_id'), 'audit_entry', ['plan_id'], unique=False)
    op.create_index('ix_notification_user_unread', 'notification', ['user_id', 'read_at'], unique=False)


def downgrade():
    op.drop_index('ix_notification_user_unread', table_name='notification')
    op.drop_index(op.f('ix_audit_entry_plan_id'), table_name='audit_entry')
    op.drop_index(op.f('ix_audit_entry_part_id'), table_name='audit_entry')
