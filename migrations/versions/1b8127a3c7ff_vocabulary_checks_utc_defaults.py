"""task and task_part states, clause sources, report kinds and statuses checked by the
database; creation times of units, users and plans in UTC on PostgreSQL

The values are written out here, not read from workflow/vocabulary.py: a migration
describes the schema as it was at its revision, and a later vocabulary change needs
a migration of its own.

PostgreSQL evaluated the old default, CURRENT_TIMESTAMP, in the session's time zone, so
the rows already there hold local times of that zone; they are converted to UTC with
the zone this connection runs in (the server's, unless the client sets another — the
zone the application's own connections had). SQLite's CURRENT_TIMESTAMP is UTC already.

SQLite adds a CHECK by rebuilding the table (batch mode: copy, DROP, rename). With
foreign keys on, that DROP runs the ON DELETE actions of every row pointing at the table
— it would delete a task's parts, or fail on its audit entries — so the rebuild runs with
them off, and ``PRAGMA foreign_key_check`` proves nothing was left dangling.

Revision ID: 1b8127a3c7ff
Revises: 681e495e97b5
Create Date: 2026-12-02 09:00:00
"""

from alembic import op
import sqlalchemy as sa

from workflow.sqlite import foreign_keys_off

revision = '1b8127a3c7ff'
down_revision = '681e495e97b5'
branch_labels = None
depends_on = None

TASK_STATES = ("planned", "in_progress", "submitted", "verified", "closed")
PART_STATES = ("planned", "in_progress", "submitted", "verified")
CLAUSE_SOURCES = ("own", "shared", "owner")
REPORT_KINDS = ("overall", "unit", "item")
REPORT_STATUSES = ("pending", "running", "done", "failed")

# (table, column) whose server default was CURRENT_TIMESTAMP
CREATED = (("unit", "created_at"), ("user", "created_at"), ("plan", "imported_at"))


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


CHECKS = (
    ("task", "state", _in("state", TASK_STATES)),
    ("task", "clause_source", _in("clause_source", CLAUSE_SOURCES)),
    ("task_part", "state", _in("state", PART_STATES)),
    ("report_archive", "kind", _in("kind", REPORT_KINDS)),
    ("report_archive", "status", _in("status", REPORT_STATUSES)),
)


def upgrade():
    with foreign_keys_off(op.get_bind()):
        for table in dict.fromkeys(t for t, _, _ in CHECKS):
            with op.batch_alter_table(table, schema=None) as batch_op:
                for _, name, condition in (c for c in CHECKS if c[0] == table):
                    batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), condition)

    if op.get_bind().dialect.name == "postgresql":
        for table, column in CREATED:
            op.execute(f"""UPDATE "{table}" SET {column} =
                           timezone('UTC', timezone(current_setting('TimeZone'), {column}))""")
            op.alter_column(table, column, server_default=sa.text("timezone('utc', now())"))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table, column in CREATED:
            op.alter_column(table, column, server_default=sa.text("CURRENT_TIMESTAMP"))
            op.execute(f"""UPDATE "{table}" SET {column} =
                           timezone(current_setting('TimeZone'), timezone('UTC', {column}))""")

    with foreign_keys_off(op.get_bind()):
        for table in reversed(list(dict.fromkeys(t for t, _, _ in CHECKS))):
            with op.batch_alter_table(table, schema=None) as batch_op:
                for _, name, _condition in (c for c in CHECKS if c[0] == table):
                    batch_op.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")
