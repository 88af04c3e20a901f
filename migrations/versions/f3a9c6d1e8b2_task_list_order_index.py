"""The task list's order as an index: item (plan_id DESC, position)

Revision ID: f3a9c6d1e8b2
Revises: e4b7a2c9d310
Create Date: 2026-12-03 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'f3a9c6d1e8b2'
down_revision = 'e4b7a2c9d310'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_item_plan_position', 'item', [sa.text('plan_id DESC'), 'position'], unique=False)


def downgrade():
    op.drop_index('ix_item_plan_position', table_name='item')
