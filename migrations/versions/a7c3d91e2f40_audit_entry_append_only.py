"""audit_entry is append-only: the database refuses UPDATE and DELETE

The hash chain detects tampering after the fact; these triggers stop the
application (or a careless script) from changing history in the first place.
Someone with rights to drop a trigger can still tamper — `flask audit verify`
is what catches that.

Revision ID: a7c3d91e2f40
Revises: 8969e80b8572
Create Date: 2026-11-26 05:45:00
"""
from alembic import op

revision = 'a7c3d91e2f40'
down_revision = '8969e80b8572'
branch_labels = None
depends_on = None

MESSAGE = "审计记录只能追加，不能修改或删除（audit_entry is append-only）"


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{MESSAGE}';
            END;
            $$ LANGUAGE plpgsql""")
        op.execute("""CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
                      FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER audit_entry_no_{verb.lower()} BEFORE {verb} ON audit_entry
                           BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
