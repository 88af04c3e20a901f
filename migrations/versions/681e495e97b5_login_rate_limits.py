"""Login rate limit counters; drop the account lockout columns

The account lockout (user.failed_logins, user.locked_until) let anyone lock
any account with a few wrong passwords. Sign-in is now limited per client
address and per (client address, user name) pair (auth/views.py), with
counters in rate_limit_counter when RATELIMIT_STORAGE_URI is the database.

The columns are dropped in place (ALTER TABLE … DROP COLUMN, SQLite 3.35+),
not by Alembic's batch rebuild of "user": the rebuild drops the old table, and
SQLite with foreign keys on (workflow/app.py) first deletes its rows, with the
ON DELETE CASCADE effects on every table that references a user.

Revision ID: 681e495e97b5
Revises: a7c3d91e2f40
Create Date: 2026-12-01 21:14:44.931398
"""
from alembic import op
import sqlalchemy as sa

revision = '681e495e97b5'
down_revision = 'a7c3d91e2f40'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rate_limit_counter',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit_counter'))
    )
    with op.batch_alter_table('rate_limit_counter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limit_counter_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('failed_logins')
        batch_op.drop_column('locked_until')


def downgrade():
    # The old lockout starts again from a clean slate: nobody locked, no failures counted.
    with op.batch_alter_table('user', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('rate_limit_counter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limit_counter_expires_at'))

    op.drop_table('rate_limit_counter')
