"""The audit log's filters and the task timeline in chain order: indexes on (action, seq),
(unit_id, seq), (username, seq) and (task_id, seq), in place of those on action, unit_id and
task_id alone (each a prefix of its new one)

Revision ID: 9e2b6c4d8a31
Revises: 7c4a2e9d1f60
Create Date: 2026-12-03 19:40:00
"""
from alembic import op

revision = '9e2b6c4d8a31'
down_revision = '7c4a2e9d1f60'
branch_labels = None
depends_on = None

REPLACED = (("action", "ix_audit_entry_action_seq"), ("unit_id", "ix_audit_entry_unit_seq"),
            ("task_id", "ix_audit_entry_task_seq"))


def upgrade():
    for column, name in REPLACED:
        op.create_index(name, 'audit_entry', [column, 'seq'], unique=False)
        op.drop_index(f'ix_audit_entry_{column}', table_name='audit_entry')
    op.create_index('ix_audit_entry_username_seq', 'audit_entry', ['username', 'seq'], unique=False)


def downgrade():
    op.drop_index('ix_audit_entry_username_seq', table_name='audit_entry')
    for column, name in reversed(REPLACED):
        op.create_index(f'ix_audit_entry_{column}', 'audit_entry', [column], unique=False)
        op.drop_index(name, table_name='audit_entry')
