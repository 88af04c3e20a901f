"""The audit head's general_hash: the newest entry about no single task

Revision ID: a7c3e5f9b142
Revises: 9e2b6c4d8a31
Create Date: 2026-12-05 16:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'a7c3e5f9b142'
down_revision = '9e2b6c4d8a31'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_head') as batch_op:
        batch_op.add_column(sa.Column('general_hash', sa.String(length=64), nullable=True))
    # Which earlier entry was the last general one does not matter: nothing is kept across the
    # upgrade (kept pages live in the processes' memory). The head itself is a safe start.
    op.execute("UPDATE audit_head SET general_hash = hash")


def downgrade():
    with op.batch_alter_table('audit_head') as batch_op:
        batch_op.drop_column('general_hash')
