"""The office's rhythm: progress rounds (调度) and the parts each asks for, extension
requests (延期申请), planned-progress milestones, a part's own deadline once extended, the
red warning's latch, the task's original deadline, files handed in with a progress entry,
and the round's 调度通报 as a report kind

``task.deadline_original`` starts as the deadline each task has now: the plan's date as
far as anyone can still tell. Tables that are rebuilt on SQLite (batch mode) are rebuilt
with foreign keys off, as in 1b8127a3c7ff.

Revision ID: 284f95b310f5
Revises: c5d2e8f41a07
Create Date: 2026-12-02 03:29:31
"""
from alembic import op
import sqlalchemy as sa

from workflow.sqlite import foreign_keys_off

REPORT_KINDS_BEFORE = ("overall", "unit", "item")
REPORT_KINDS = ("overall", "unit", "item", "round")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _report_kinds(kinds) -> None:
    with op.batch_alter_table('report_archive', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_report_archive_kind'), type_='check')
        batch_op.create_check_constraint(op.f('ck_report_archive_kind'), _in("kind", kinds))


revision = '284f95b310f5'
down_revision = 'c5d2e8f41a07'
branch_labels = None
depends_on = None


def upgrade():
    with foreign_keys_off(op.get_bind()):
        _report_kinds(REPORT_KINDS)
        _add_tables_and_columns()
    op.execute("UPDATE task SET deadline_original = deadline")


def _add_tables_and_columns():
    op.create_table('progress_round',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('opened_by_id', sa.Integer(), nullable=True),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('report_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("kind IN ('monthly', 'weekly', 'adhoc')", name=op.f('ck_progress_round_kind')),
    sa.CheckConstraint("state IN ('open', 'closed')", name=op.f('ck_progress_round_state')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['user.id'], name=op.f('fk_progress_round_closed_by_id_user')),
    sa.ForeignKeyConstraint(['opened_by_id'], ['user.id'], name=op.f('fk_progress_round_opened_by_id_user')),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_progress_round_plan_id_plan'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['report_id'], ['report_archive.id'], name=op.f('fk_progress_round_report_id_report_archive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_progress_round'))
    )
    with op.batch_alter_table('progress_round', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_progress_round_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_progress_round_state'), ['state'], unique=False)

    op.create_table('extension_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('old_deadline', sa.Date(), nullable=False),
    sa.Column('new_deadline', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('lead_decided_by_id', sa.Integer(), nullable=True),
    sa.Column('lead_decided_at', sa.DateTime(), nullable=True),
    sa.Column('lead_reason', sa.Text(), nullable=True),
    sa.Column('office_decided_by_id', sa.Integer(), nullable=True),
    sa.Column('office_decided_at', sa.DateTime(), nullable=True),
    sa.Column('office_reason', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("state IN ('pending_lead', 'pending_office', 'granted', 'refused')", name=op.f('ck_extension_request_state')),
    sa.ForeignKeyConstraint(['lead_decided_by_id'], ['user.id'], name=op.f('fk_extension_request_lead_decided_by_id_user')),
    sa.ForeignKeyConstraint(['office_decided_by_id'], ['user.id'], name=op.f('fk_extension_request_office_decided_by_id_user')),
    sa.ForeignKeyConstraint(['part_id'], ['task_part.id'], name=op.f('fk_extension_request_part_id_task_part'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by_id'], ['user.id'], name=op.f('fk_extension_request_requested_by_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_extension_request'))
    )
    with op.batch_alter_table('extension_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_extension_request_part_id'), ['part_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_extension_request_state'), ['state'], unique=False)

    op.create_table('milestone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('on', sa.Date(), nullable=False),
    sa.Column('percent', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('proposed_by_id', sa.Integer(), nullable=False),
    sa.Column('proposed_at', sa.DateTime(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('proposed', 'approved', 'refused')", name=op.f('ck_milestone_state')),
    sa.CheckConstraint('percent BETWEEN 1 AND 100', name=op.f('ck_milestone_percent')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user.id'], name=op.f('fk_milestone_decided_by_id_user')),
    sa.ForeignKeyConstraint(['part_id'], ['task_part.id'], name=op.f('fk_milestone_part_id_task_part'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposed_by_id'], ['user.id'], name=op.f('fk_milestone_proposed_by_id_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_milestone'))
    )
    with op.batch_alter_table('milestone', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_milestone_part_id'), ['part_id'], unique=False)

    op.create_table('round_part',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=True),
    sa.Column('filed_at', sa.DateTime(), nullable=True),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['note_id'], ['progress_note.id'], name=op.f('fk_round_part_note_id_progress_note')),
    sa.ForeignKeyConstraint(['part_id'], ['task_part.id'], name=op.f('fk_round_part_part_id_task_part'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_id'], ['progress_round.id'], name=op.f('fk_round_part_round_id_progress_round'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_round_part')),
    sa.UniqueConstraint('round_id', 'part_id', name=op.f('uq_round_part_round_id_part_id'))
    )
    with op.batch_alter_table('round_part', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_round_part_part_id'), ['part_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_round_part_round_id'), ['round_id'], unique=False)

    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress_note_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_evidence_progress_note_id_progress_note'), 'progress_note', ['progress_note_id'], ['id'])

    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_original', sa.Date(), nullable=True))

    with op.batch_alter_table('task_part', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('red_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('red_reason', sa.String(length=200), nullable=True))


def downgrade():
    with foreign_keys_off(op.get_bind()):
        _drop_tables_and_columns()
        op.execute("DELETE FROM report_archive WHERE kind = 'round'")
        _report_kinds(REPORT_KINDS_BEFORE)


def _drop_tables_and_columns():
    with op.batch_alter_table('task_part', schema=None) as batch_op:
        batch_op.drop_column('red_reason')
        batch_op.drop_column('red_since')
        batch_op.drop_column('deadline')

    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_column('deadline_original')

    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_evidence_progress_note_id_progress_note'), type_='foreignkey')
        batch_op.drop_column('progress_note_id')

    with op.batch_alter_table('round_part', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_round_part_round_id'))
        batch_op.drop_index(batch_op.f('ix_round_part_part_id'))

    op.drop_table('round_part')
    with op.batch_alter_table('milestone', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_milestone_part_id'))

    op.drop_table('milestone')
    with op.batch_alter_table('extension_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_extension_request_state'))
        batch_op.drop_index(batch_op.f('ix_extension_request_part_id'))

    op.drop_table('extension_request')
    with op.batch_alter_table('progress_round', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_progress_round_state'))
        batch_op.drop_index(batch_op.f('ix_progress_round_plan_id'))

    op.drop_table('progress_round')
