"""evidence.carried_from_id: earlier evidence carried into a resubmission

Revision ID: b4e1c07d5a21
Revises: 1b8127a3c7ff
Create Date: 2026-12-02 01:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'b4e1c07d5a21'
down_revision = '1b8127a3c7ff'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('carried_from_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_evidence_carried_from_id_evidence', 'evidence', ['carried_from_id'], ['id'])


def downgrade():
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_constraint('fk_evidence_carried_from_id_evidence', type_='foreignkey')
        batch_op.drop_column('carried_from_id')
