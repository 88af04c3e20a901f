"""Work that runs by itself: the outbox of notices beyond the inbox (delivery), the
worker's pulse, the office's reminder rules (a kind without a row
follows workflow/reminders.DEFAULT_RULES: a new database holds no rows), each reminder sent,
the daily sweep, 督办 (escalation), rounds opened on a schedule; users' e-mail and
channels, units' group robots, the report job's claim, and 督办通报 as a report kind

Revision ID: 6f667b0a67df
Revises: 284f95b310f5
Create Date: 2026-12-02 06:18:30
"""
from alembic import op
import sqlalchemy as sa

from workflow.sqlite import foreign_keys_off

REPORT_KINDS_BEFORE = ("overall", "unit", "item", "round")
REPORT_KINDS = ("overall", "unit", "item", "round", "bulletin")


revision = '6f667b0a67df'
down_revision = '284f95b310f5'
branch_labels = None
depends_on = None


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _report_kinds(kinds) -> None:
    with op.batch_alter_table('report_archive', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_report_archive_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_report_archive_kind'), _in("kind", kinds))


def upgrade():
    with foreign_keys_off(op.get_bind()):
        _report_kinds(REPORT_KINDS)
        _add_tables_and_columns()


def _add_tables_and_columns():
    op.create_table('sweep_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=120), nullable=True),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('checked', sa.Integer(), nullable=False),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('escalations', sa.Integer(), nullable=False),
    sa.Column('rounds_opened', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_sweep_run_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweep_run')),
    sa.UniqueConstraint('as_of', name=op.f('uq_sweep_run_as_of'))
    )
    op.create_table('worker_beat',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('seen_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_beat')),
    sa.UniqueConstraint('name', name=op.f('uq_worker_beat_name'))
    )
    op.create_table('reminder_rule',
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('days_before', sa.String(length=50), nullable=False),
    sa.Column('on_due', sa.Boolean(), nullable=False),
    sa.Column('repeat_days', sa.Integer(), nullable=False),
    sa.Column('escalate_after', sa.Integer(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("kind IN ('deadline', 'receipt', 'filing', 'checkpoint')", name=op.f('ck_reminder_rule_kind')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user.id'], name=op.f('fk_reminder_rule_updated_by_id_user')),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_reminder_rule'))
    )
    op.create_table('round_schedule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('due_days', sa.Integer(), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('monthly', 'weekly')", name=op.f('ck_round_schedule_kind')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user.id'], name=op.f('fk_round_schedule_created_by_id_user')),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_round_schedule_plan_id_plan'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_round_schedule'))
    )
    with op.batch_alter_table('round_schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_round_schedule_plan_id'), ['plan_id'], unique=False)

    op.create_table('delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('worker', sa.String(length=120), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('response', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("channel IN ('email', 'robot')", name=op.f('ck_delivery_channel')),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name=op.f('ck_delivery_status')),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], name=op.f('fk_delivery_notification_id_notification'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['unit.id'], name=op.f('fk_delivery_unit_id_unit'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_delivery_user_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery')),
    sa.UniqueConstraint('notification_id', 'channel', name=op.f('uq_delivery_notification_id_channel'))
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_notification_id'), ['notification_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_status'), ['status'], unique=False)

    op.create_table('escalation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('round_part_id', sa.Integer(), nullable=True),
    sa.Column('target_on', sa.Date(), nullable=False),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('raised_at', sa.DateTime(), nullable=False),
    sa.Column('raised_on', sa.Date(), nullable=False),
    sa.Column('bulletin_report_id', sa.Integer(), nullable=True),
    sa.Column('bulletin_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_reason', sa.String(length=200), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("kind IN ('deadline', 'receipt', 'filing', 'checkpoint')", name=op.f('ck_escalation_kind')),
    sa.CheckConstraint("state IN ('open', 'bulletin', 'resolved')", name=op.f('ck_escalation_state')),
    sa.ForeignKeyConstraint(['bulletin_report_id'], ['report_archive.id'], name=op.f('fk_escalation_bulletin_report_id_report_archive'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['part_id'], ['task_part.id'], name=op.f('fk_escalation_part_id_task_part'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_part_id'], ['round_part.id'], name=op.f('fk_escalation_round_part_id_round_part'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation')),
    sa.UniqueConstraint('key', name=op.f('uq_escalation_key'))
    )
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_part_id'), ['part_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalation_state'), ['state'], unique=False)

    op.create_table('reminder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('round_part_id', sa.Integer(), nullable=True),
    sa.Column('target_on', sa.Date(), nullable=False),
    sa.Column('occasion', sa.String(length=20), nullable=False),
    sa.Column('sent_on', sa.Date(), nullable=False),
    sa.Column('sweep_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('deadline', 'receipt', 'filing', 'checkpoint')", name=op.f('ck_reminder_kind')),
    sa.ForeignKeyConstraint(['part_id'], ['task_part.id'], name=op.f('fk_reminder_part_id_task_part'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_part_id'], ['round_part.id'], name=op.f('fk_reminder_round_part_id_round_part'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweep_run.id'], name=op.f('fk_reminder_sweep_id_sweep_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminder')),
    sa.UniqueConstraint('key', name=op.f('uq_reminder_key'))
    )
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_part_id'), ['part_id'], unique=False)

    with op.batch_alter_table('progress_round', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule_key', sa.String(length=60), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_progress_round_schedule_key'), ['schedule_key'])

    with op.batch_alter_table('report_archive', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('worker', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('progress', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('robot_kind', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('robot_url', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('robot_secret', sa.String(length=200), nullable=True))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('notify_email', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('notify_robot', sa.Boolean(), nullable=False, server_default=sa.true()))



def downgrade():
    with foreign_keys_off(op.get_bind()):
        _drop_tables_and_columns()
        op.execute("DELETE FROM report_archive WHERE kind = 'bulletin'")
        _report_kinds(REPORT_KINDS_BEFORE)


def _drop_tables_and_columns():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('notify_robot')
        batch_op.drop_column('notify_email')
        batch_op.drop_column('email')

    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_column('robot_secret')
        batch_op.drop_column('robot_url')
        batch_op.drop_column('robot_kind')

    with op.batch_alter_table('report_archive', schema=None) as batch_op:
        batch_op.drop_column('progress')
        batch_op.drop_column('worker')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('attempts')

    with op.batch_alter_table('progress_round', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_progress_round_schedule_key'), type_='unique')
        batch_op.drop_column('schedule_key')

    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_part_id'))

    op.drop_table('reminder')
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_state'))
        batch_op.drop_index(batch_op.f('ix_escalation_part_id'))

    op.drop_table('escalation')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_status'))
        batch_op.drop_index(batch_op.f('ix_delivery_notification_id'))
        batch_op.drop_index(batch_op.f('ix_delivery_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_delivery_created_at'))

    op.drop_table('delivery')
    with op.batch_alter_table('round_schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_round_schedule_plan_id'))

    op.drop_table('round_schedule')
    op.drop_table('reminder_rule')
    op.drop_table('worker_beat')
    op.drop_table('sweep_run')
