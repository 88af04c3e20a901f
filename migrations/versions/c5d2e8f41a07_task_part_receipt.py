"""task_part.received_at / received_by_id: the unit's receipt (签收) of its part

SQLite adds a foreign key by rebuilding the table (batch mode: copy, DROP, rename).
With foreign keys on, that DROP would run the ON DELETE actions of every row pointing
at task_part (its evidence, submissions, progress notes, audit entries), so the
rebuild runs with them off and ``PRAGMA foreign_key_check`` proves nothing was left
dangling (as in 1b8127a3c7ff).

Revision ID: c5d2e8f41a07
Revises: b4e1c07d5a21
Create Date: 2026-12-02 02:30:00
"""

from alembic import op
import sqlalchemy as sa

from workflow.sqlite import foreign_keys_off

revision = 'c5d2e8f41a07'
down_revision = 'b4e1c07d5a21'
branch_labels = None
depends_on = None


def upgrade():
    with foreign_keys_off(op.get_bind()):
        with op.batch_alter_table('task_part', schema=None) as batch_op:
            batch_op.add_column(sa.Column('received_at', sa.DateTime(), nullable=True))
            batch_op.add_column(sa.Column('received_by_id', sa.Integer(), nullable=True))
            batch_op.create_foreign_key('fk_task_part_received_by_id_user', 'user', ['received_by_id'], ['id'])


def downgrade():
    with foreign_keys_off(op.get_bind()):
        with op.batch_alter_table('task_part', schema=None) as batch_op:
            batch_op.drop_constraint('fk_task_part_received_by_id_user', type_='foreignkey')
            batch_op.drop_column('received_by_id')
            batch_op.drop_column('received_at')
