"""The worker's snapshot of every task's colour for the day (colour_snapshot): web processes
start from it instead of assessing every task themselves

Revision ID: 7c4a2e9d1f60
Revises: 5d8e1f3a7b20
Create Date: 2026-12-03 14:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '7c4a2e9d1f60'
down_revision = '5d8e1f3a7b20'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'colour_snapshot',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('settings', sa.String(length=200), nullable=False),
        sa.Column('head_seq', sa.Integer(), nullable=False),
        sa.Column('head_hash', sa.String(length=64), nullable=False),
        sa.Column('tasks', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('made_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('colour_snapshot')
