"""task_part.received_at / received_by_id: the unit's receipt (签收) of its part

Revision ID: c5d2e8f41a07
Revises: b4e1c07d5a21
Create Date: 2026-12-10 01:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'c5d2e8f41a07'
down_revision = 'b4e1c07d5a21'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task_part', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('received_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_task_part_received_by_id_user', 'user', ['received_by_id'], ['id'])


def downgrade():
    with op.batch_alter_table('task_part', schema=None) as batch_op:
        batch_op.drop_constraint('fk_task_part_received_by_id_user', type_='foreignkey')
        batch_op.drop_column('received_by_id')
        batch_op.drop_column('received_at')
