"""The data set of bench/scale.py: the seed plan with its demo activity, copied
as many times as a number of tasks needs, on SQLite or PostgreSQL.

    generate(url, folder, tasks, audit_per_task) -> dict of counts and seconds

1. The project's own way to a demo database (bench/report_bench.py build_seed:
   migrations, ``flask demo``'s load_demo, play_activity) on the target database.
2. Every row that hangs off the seed plan — chapters, items, tasks, their unit
   links, parts, progress notes, submissions, evidence, extension requests,
   milestones, rounds and their entries, reminders, escalations, the tasks'
   notifications — copied N-1 times by one ``INSERT … SELECT`` per table
   against a table of copy numbers: copy k's ids are the seed's plus k times
   the table's largest seed id, foreign keys to copied tables likewise;
   unique text columns (the plan's sha256, reminder and escalation keys) get
   ``~k``. Plan titles get （副本k）. Users, units and sections are shared.
3. The audit trail: each copy gets a deterministic sample of the seed's
   entries about its tasks, parts and plan (ids shifted), enough for about
   ``audit_per_task`` entries per task in all; they are appended to the chain
   in Python (seq, prev_hash, hash as workflow/audit.py computes them) and
   inserted in batches of plain dicts, so ``flask audit verify`` passes.

Foreign keys are not checked during the copy (SQLite: PRAGMA foreign_keys=OFF;
PostgreSQL: session_replication_role=replica); PostgreSQL's id sequences are
moved past the new ids and the database ANALYZEd (as autovacuum would soon do).
SQLite is left as the app leaves it (no ANALYZE: the app never runs one).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# Copied per plan, parents before children. notification: only rows about a task.
COPIED = ["plan", "chapter", "item", "item_owner_unit", "contact", "task", "task_lead_unit",
          "task_responsible_unit", "task_section", "task_part", "progress_note", "submission", "evidence",
          "extension_request", "milestone", "progress_round", "round_part", "reminder", "escalation",
          "notification"]
ROW_FILTER = {"notification": lambda t: t.c.task_id.is_not(None)}


def make_app(url: str, folder: Path):
    from workflow.app import create_app

    return create_app({
        "SQLALCHEMY_DATABASE_URI": url,
        "UPLOAD_FOLDER": str(folder / "uploads"), "REPORT_FOLDER": str(folder / "reports"),
        "LUOSHI_ENV": "testing", "SECRET_KEY": "bench-scale",
    })


def _unique_text_columns(table) -> set[str]:
    from sqlalchemy import String, UniqueConstraint

    names = {c.name for c in table.columns if c.unique}
    for con in table.constraints:
        if isinstance(con, UniqueConstraint) and len(con.columns) == 1:
            names |= {c.name for c in con.columns}
    return {n for n in names if isinstance(table.c[n].type, String) and not table.c[n].foreign_keys}


def _copy_select(table, offsets: dict[str, int], copies):
    """SELECT of every copy of ``table``'s seed rows, columns in table order."""
    from sqlalchemy import String, cast, func, literal, select, true

    k = copies.c.k
    unique_text = _unique_text_columns(table)
    exprs = []
    for col in table.columns:
        target = next((fk.column.table.name for fk in col.foreign_keys if fk.column.table.name in offsets), None)
        if col.primary_key and not col.foreign_keys and col.name == "id":
            e = col + k * offsets[table.name]
        elif target is not None:
            e = col + k * offsets[target]   # NULL stays NULL
        elif col.name in unique_text:
            room = (col.type.length or 200) - 8
            e = func.substr(col, 1, room) + literal("~") + cast(k, String)
        elif table.name == "plan" and col.name == "title":
            e = func.substr(col, 1, 280) + literal("（副本") + cast(k, String) + literal("）")
        else:
            e = col
        exprs.append(e.label(col.name))
    stmt = select(*exprs).select_from(table.join(copies, true()))
    if table.name in ROW_FILTER:
        stmt = stmt.where(ROW_FILTER[table.name](table))
    return stmt


def _sample(j: int, k: int, p: float) -> bool:
    """Deterministic: is seed entry j in copy k (probability p)?"""
    return ((j * 2654435761 + k * 40503 + 12345) % 1000003) < p * 1000003


@contextmanager
def _bulk(engine, pg: bool):
    """One transaction with foreign keys unchecked."""
    with engine.connect() as conn:
        if not pg:   # outside a transaction, on the driver's connection
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        with conn.begin():
            if pg:
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield conn
        if not pg:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def generate(url: str, folder: Path, tasks: int, audit_per_task: float, log=print) -> dict:
    from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text, update

    from models import AuditEntry, AuditHead, Task
    from report_bench import build_seed
    from workflow import audit
    from workflow.extensions import db
    from workflow.sqlite import write_transactions

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    app = make_app(url, folder)
    build_seed(app)
    seed_seconds = time.perf_counter() - t0
    stats = {"seed_seconds": seed_seconds}
    with app.app_context():
        engine = db.engine
        meta = db.metadata
        pg = engine.dialect.name == "postgresql"
        with engine.connect() as conn:
            seed_tasks = conn.scalar(select(func.count()).select_from(Task.__table__))
        plans = max(1, math.ceil(tasks / seed_tasks))
        log(f"  种子方案 {seed_tasks} 个任务（含演示办理记录），用时 {seed_seconds:.0f} 秒；复制为 {plans} 个方案", flush=True)
        t1 = time.perf_counter()
        write_transactions(True)   # SQLite: BEGIN IMMEDIATE (workflow/sqlite.py)
        with _bulk(engine, pg) as conn:
            offsets = {}
            for name in COPIED:
                t = meta.tables[name]
                if "id" in t.c:
                    offsets[name] = conn.scalar(select(func.coalesce(func.max(t.c.id), 0)))
            copies = Table("bench_copy", MetaData(), Column("k", Integer, primary_key=True))
            copies.create(conn)
            if plans > 1:
                conn.execute(insert(copies), [{"k": k} for k in range(1, plans)])
            for name in COPIED:
                t = meta.tables[name]
                started = time.perf_counter()
                before = conn.scalar(select(func.count()).select_from(t))
                conn.execute(insert(t).from_select([c.name for c in t.columns], _copy_select(t, offsets, copies)))
                added = conn.scalar(select(func.count()).select_from(t)) - before
                log(f"    {name:<22} +{added:>8} 行  {time.perf_counter() - started:5.1f} 秒", flush=True)
            copies.drop(conn)
            if pg:
                for name in offsets:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                                      f"(SELECT max(id) FROM \"{name}\"))"))
        stats["copy_seconds"] = time.perf_counter() - t1

        # The audit trail, appended in Python.
        t2 = time.perf_counter()
        a = AuditEntry.__table__
        with _bulk(engine, pg) as conn:
            seed_rows = [dict(r._mapping) for r in conn.execute(
                select(a).where((a.c.task_id.is_not(None)) | (a.c.part_id.is_not(None)) | (a.c.plan_id.is_not(None)))
                .order_by(a.c.seq))]
            existing = conn.scalar(select(func.count()).select_from(a))
            total_tasks = seed_tasks * plans
            wanted = audit_per_task * total_tasks - existing
            p = min(1.0, max(0.0, wanted / max(1, (plans - 1) * len(seed_rows)))) if plans > 1 else 0.0
            head = conn.execute(select(AuditHead.__table__).where(AuditHead.__table__.c.id == 1)).one()
            seq, prev = head.seq, head.hash
            next_id = conn.scalar(select(func.max(a.c.id))) + 1
            batch, added = [], 0
            for k in range(1, plans):
                for j, row in enumerate(seed_rows):
                    if not _sample(j, k, p):
                        continue
                    e = dict(row)
                    seq += 1
                    e["id"], e["seq"], e["prev_hash"] = next_id, seq, prev
                    next_id += 1
                    for col, table in (("task_id", "task"), ("part_id", "task_part"), ("plan_id", "plan")):
                        if e[col] is not None:
                            e[col] += k * offsets[table]
                    e["hash"] = prev = audit.compute_hash(SimpleNamespace(**e))
                    batch.append(e)
                    if len(batch) >= 5000:
                        conn.execute(insert(a), batch)
                        added += len(batch)
                        batch = []
            if batch:
                conn.execute(insert(a), batch)
                added += len(batch)
            conn.execute(update(AuditHead.__table__).where(AuditHead.__table__.c.id == 1).values(seq=seq, hash=prev))
            if pg:
                conn.execute(text("SELECT setval(pg_get_serial_sequence('audit_entry', 'id'), (SELECT max(id) FROM audit_entry))"))
        write_transactions(False)
        stats["audit_seconds"] = time.perf_counter() - t2
        log(f"    audit_entry            +{added:>8} 行  {stats['audit_seconds']:5.1f} 秒（每个副本取种子记录的 {p:.0%}，哈希链接续）",
            flush=True)
        if pg:
            t3 = time.perf_counter()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
            stats["analyze_seconds"] = time.perf_counter() - t3
        with engine.connect() as conn:
            stats["tasks"] = conn.scalar(select(func.count()).select_from(Task.__table__))
            stats["parts"] = conn.scalar(select(func.count()).select_from(meta.tables["task_part"]))
            stats["audit"] = conn.scalar(select(func.count()).select_from(a))
            stats["plans"] = conn.scalar(select(func.count()).select_from(meta.tables["plan"]))
        db.session.remove()
        engine.dispose()
    stats["seconds"] = time.perf_counter() - t0
    return stats


def verify_chain(url: str, folder: Path) -> list:
    """``flask audit verify``'s check (workflow/audit.py verify): the problems found."""
    from workflow import audit
    from workflow.extensions import db

    app = make_app(url, folder)
    with app.app_context():
        problems = audit.verify()
        db.session.remove()
        db.engine.dispose()
    return problems


def main() -> None:
    """A quick try: python bench/scale_data.py TASKS FOLDER [URL] (bench/scale.py is the benchmark)."""
    folder = Path(sys.argv[2])
    url = sys.argv[3] if len(sys.argv) > 3 else f"sqlite:///{folder / 'bench.sqlite'}"
    print(generate(url, folder, int(sys.argv[1]), 5.4))
    t = time.perf_counter()
    print("audit verify:", verify_chain(url, folder) or "intact", f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
