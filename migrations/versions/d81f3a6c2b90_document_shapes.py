"""The importer reads the genre family: a plan records which shape it was read as; a task
keeps the people named as its 牵头领导, the addressees that name no unit, and a table's 备注;
an alias without a unit records a phrase the office decided names no unit

Revision ID: d81f3a6c2b90
Revises: 6f667b0a67df
Create Date: 2026-12-02 10:50:00
"""
from alembic import op
import sqlalchemy as sa

from workflow.sqlite import foreign_keys_off

SHAPES = ("compilation", "task_list", "table")

revision = 'd81f3a6c2b90'
down_revision = '6f667b0a67df'
branch_labels = None
depends_on = None


def upgrade():
    with foreign_keys_off(op.get_bind()):
        with op.batch_alter_table('plan', schema=None) as batch_op:
            batch_op.add_column(sa.Column('shape', sa.String(length=20), nullable=False,
                                          server_default='compilation'))
            batch_op.create_check_constraint(
                op.f('ck_plan_shape'), f"shape IN ({', '.join(repr(s) for s in SHAPES)})")
        with op.batch_alter_table('task', schema=None) as batch_op:
            batch_op.add_column(sa.Column('leaders', sa.JSON(), nullable=False, server_default='[]'))
            batch_op.add_column(sa.Column('addressees', sa.JSON(), nullable=False, server_default='[]'))
            batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
        with op.batch_alter_table('unit_alias', schema=None) as batch_op:
            batch_op.alter_column('unit_id', existing_type=sa.Integer(), nullable=True)


def downgrade():
    with foreign_keys_off(op.get_bind()):
        op.execute("DELETE FROM unit_alias WHERE unit_id IS NULL")
        with op.batch_alter_table('unit_alias', schema=None) as batch_op:
            batch_op.alter_column('unit_id', existing_type=sa.Integer(), nullable=False)
        with op.batch_alter_table('task', schema=None) as batch_op:
            batch_op.drop_column('note')
            batch_op.drop_column('addressees')
            batch_op.drop_column('leaders')
        with op.batch_alter_table('plan', schema=None) as batch_op:
            batch_op.drop_constraint(op.f('ck_plan_shape'), type_='check')
            batch_op.drop_column('shape')
