"""The baseline of bench/scale.py: a bare Flask + SQLAlchemy Core app on the
same database as Luoshi, serving the rows of each measured page with the
same main queries and a minimal HTML — no login, no CSRF, no permissions,
no warnings (红黄蓝), no navigation, nothing of the project imported.

    DATABASE_URL=sqlite:///… gunicorn --workers 2 --threads 4 --chdir bench scale_bare:app

Pages (their rows are those of the Luoshi page named):
  GET  /tasks/<id>          the task page: the task with its item and chapter, its
                            parts (unit, state), its timeline (the audit entries of
                            the task and its parts, in chain order)
  GET  /tasks/?state=S      the task list filtered by state, first page: count,
                            30 tasks in document order, their lead units and parts
  GET  /todo?unit=U         我的待办 of a unit: count, first 30 planned or in-progress
                            parts (deadline, then document order) with task and item
  GET  /overview            the overview's aggregates: tasks by state, late and
                            near-due totals, chapter × state (per plan), lead unit × state
  GET  /audit               the audit log's first page: count, the 30 latest entries
                            with user, unit and task number
  POST /receive/<part_id>?user=ID
                            签收 as a bare write of the same rows: lock the audit head,
                            UPDATE task_part (received_at, received_by_id, version),
                            INSERT the chained audit_entry, UPDATE audit_head; one commit
Environment: DATABASE_URL, BARE_TODAY (YYYY-MM-DD, default 2022-09-30),
NEAR_DUE_DAYS (14), PER_PAGE (30).
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
from datetime import date, datetime, timedelta, timezone

from flask import Flask, abort, render_template_string, request
from sqlalchemy import bindparam, create_engine, event, text


def _url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# An in-memory database when none is named: the suite imports every bench script (tests/test_bench_scripts.py).
URL = _url(os.environ.get("DATABASE_URL", "sqlite://"))
SQLITE = URL.startswith("sqlite")
engine = create_engine(URL, **({"connect_args": {"timeout": 30, "check_same_thread": False}} if SQLITE else {}))

if SQLITE:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

TODAY = date.fromisoformat(os.environ.get("BARE_TODAY", "2022-09-30"))
NEAR = TODAY + timedelta(days=int(os.environ.get("NEAR_DUE_DAYS", "14")))
PER_PAGE = int(os.environ.get("PER_PAGE", "30"))
DOC_ORDER = "i.position, CASE t.kind WHEN 'task' THEN 0 WHEN 'measure' THEN 1 ELSE 2 END, t.seq"
LATE = "(NOT t.long_term AND t.deadline IS NOT NULL AND t.deadline < :today AND t.state NOT IN ('verified', 'closed'))"
NEAR_DUE = ("(NOT t.long_term AND t.deadline IS NOT NULL AND t.deadline >= :today AND t.deadline <= :near "
            "AND t.state IN ('planned', 'in_progress'))")

app = Flask(__name__)

PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>{{ title }}</title></head><body>
<h1>{{ title }}</h1>{% if total is not none %}<p>共 {{ total }} 条</p>{% endif %}
{% for name, head, rows in tables %}<h2>{{ name }}</h2><table><tr>{% for h in head %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for v in row %}<td>{{ v if v is not none else '' }}</td>{% endfor %}</tr>
{% endfor %}</table>{% endfor %}</body></html>"""


def page(title, tables, total=None):
    return render_template_string(PAGE, title=title, tables=tables, total=total)


def rows(conn, sql, **params):
    stmt = text(sql)
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            stmt = stmt.bindparams(bindparam(name, expanding=True))
    return conn.execute(stmt, params).all()


def _by_task(records) -> dict:
    out: dict = {}
    for task_id, *rest in records:
        out.setdefault(task_id, []).append(rest[0] if len(rest) == 1 else tuple(rest))
    return out


@app.get("/tasks/<int:task_id>")
def task_page(task_id: int):
    with engine.connect() as conn:
        task = conn.execute(text(
            "SELECT t.id, i.number, t.kind, t.seq, t.text, t.state, t.deadline, t.long_term, i.subtitle, "
            "c.number AS chapter, c.title, p.title AS plan FROM task t JOIN item i ON i.id = t.item_id "
            "JOIN chapter c ON c.id = i.chapter_id JOIN plan p ON p.id = i.plan_id WHERE t.id = :id"),
            {"id": task_id}).first()
        if task is None:
            abort(404)
        parts = rows(conn, "SELECT p.id, u.name, p.state, p.progress, p.received_at, p.deadline FROM task_part p "
                           "JOIN unit u ON u.id = p.unit_id WHERE p.task_id = :id ORDER BY p.position", id=task_id)
        part_ids = [p[0] for p in parts] or [0]
        timeline = rows(conn, "SELECT a.seq, a.at, a.username, un.name, a.action, a.from_state, a.to_state, a.reason, "
                              "a.details FROM audit_entry a LEFT JOIN unit un ON un.id = a.unit_id "
                              "WHERE a.task_id = :id OR a.part_id IN :parts ORDER BY a.seq", id=task_id, parts=part_ids)
    return page(f"任务 {task.number}-{task.kind}{task.seq}", [
        ("任务", list(task._fields), [tuple(task)]),
        ("承办", ["id", "单位", "状态", "进度", "签收", "时限"], parts),
        ("办理记录", ["序号", "时间", "用户", "单位", "操作", "原状态", "新状态", "理由", "详情"], timeline)])


def _task_rows(conn, tasks):
    ids = [t[0] for t in tasks] or [0]
    leads = _by_task(rows(conn, "SELECT l.task_id, u.name FROM task_lead_unit l JOIN unit u ON u.id = l.unit_id "
                                "WHERE l.task_id IN :ids ORDER BY l.task_id, l.position", ids=ids))
    parts = _by_task(rows(conn, "SELECT p.task_id, u.name, p.state FROM task_part p JOIN unit u ON u.id = p.unit_id "
                                "WHERE p.task_id IN :ids ORDER BY p.task_id, p.position", ids=ids))
    return [(*t, "、".join(leads.get(t[0], [])), "、".join(f"{n}（{s}）" for n, s in parts.get(t[0], [])))
            for t in tasks]


@app.get("/tasks/")
def task_list():
    """?state=S: the first page of one state; without: every task, the newest plan first."""
    state = request.args.get("state")
    where, order = ("WHERE t.state = :s", DOC_ORDER) if state else ("", f"i.plan_id DESC, {DOC_ORDER}")
    with engine.connect() as conn:
        total = conn.scalar(text(f"SELECT count(*) FROM task t JOIN item i ON i.id = t.item_id {where}"),
                            {"s": state})
        tasks = rows(conn, f"SELECT t.id, i.number, t.kind, t.seq, t.text, t.state, t.deadline FROM task t "
                           f"JOIN item i ON i.id = t.item_id {where} ORDER BY {order} LIMIT :n",
                     s=state, n=PER_PAGE)
        table = _task_rows(conn, tasks)
    return page("任务列表", [("任务", ["id", "事项", "类别", "序号", "内容", "状态", "时限", "牵头单位", "承办"], table)], total)


@app.get("/todo")
def todo():
    unit = int(request.args["unit"])
    where = "p.unit_id = :u AND p.state IN ('planned', 'in_progress')"
    with engine.connect() as conn:
        total = conn.scalar(text(f"SELECT count(*) FROM task_part p JOIN task t ON t.id = p.task_id "
                                 f"JOIN item i ON i.id = t.item_id WHERE {where}"), {"u": unit})
        parts = rows(conn, f"SELECT p.id, t.id, i.number, t.kind, t.seq, t.text, p.state, p.progress, t.deadline "
                           f"FROM task_part p JOIN task t ON t.id = p.task_id JOIN item i ON i.id = t.item_id "
                           f"WHERE {where} ORDER BY t.deadline IS NULL, t.deadline, {DOC_ORDER} LIMIT :n",
                     u=unit, n=PER_PAGE)
    return page("我的待办", [("承办", ["id", "任务", "事项", "类别", "序号", "内容", "状态", "进度", "时限"], parts)], total)


@app.get("/overview")
def overview():
    base = "FROM task t JOIN item i ON i.id = t.item_id"
    p = {"today": _db_value(TODAY), "near": _db_value(NEAR)}
    late = f"coalesce(sum(CASE WHEN {LATE} THEN 1 ELSE 0 END), 0)"
    near = f"coalesce(sum(CASE WHEN {NEAR_DUE} THEN 1 ELSE 0 END), 0)"
    with engine.connect() as conn:
        by_state = rows(conn, f"SELECT t.state, count(t.id) {base} GROUP BY t.state")
        totals = rows(conn, f"SELECT count(t.id), {late}, {near} {base}", **p)
        chapters = rows(conn, f"SELECT p.title, c.number, c.title, t.state, count(t.id), {late}, {near} {base} "
                              f"JOIN chapter c ON c.id = i.chapter_id JOIN plan p ON p.id = i.plan_id "
                              f"GROUP BY c.id, c.number, c.title, p.id, p.title, t.state ORDER BY p.id, c.number", **p)
        units = rows(conn, f"SELECT u.name, t.state, count(t.id), {late}, {near} {base} "
                           f"JOIN task_lead_unit l ON l.task_id = t.id JOIN unit u ON u.id = l.unit_id "
                           f"GROUP BY u.id, u.name, t.state", **p)
    return page("总览", [("按状态", ["状态", "任务"], by_state), ("合计", ["任务", "逾期", "临期"], totals),
                        ("按章节", ["方案", "章", "标题", "状态", "任务", "逾期", "临期"], chapters),
                        ("按牵头单位", ["单位", "状态", "任务", "逾期", "临期"], units)])


@app.get("/audit")
def audit_log():
    with engine.connect() as conn:
        total = conn.scalar(text("SELECT count(*) FROM audit_entry"))
        entries = rows(conn, "SELECT a.seq, a.at, a.username, u.display_name, un.name, a.action, i.number, t.kind, "
                             "t.seq, a.from_state, a.to_state, a.reason, a.details FROM audit_entry a "
                             'LEFT JOIN "user" u ON u.id = a.user_id LEFT JOIN unit un ON un.id = a.unit_id '
                             "LEFT JOIN task t ON t.id = a.task_id LEFT JOIN item i ON i.id = t.item_id "
                             "ORDER BY a.seq DESC LIMIT :n", n=PER_PAGE)
    return page("审计日志", [("记录", ["序号", "时间", "用户名", "姓名", "单位", "操作", "事项", "类别", "序号",
                                   "原状态", "新状态", "理由", "详情"], entries)], total)


def _db_value(value):
    """Dates and times as SQLAlchemy stores them on SQLite (text); the driver's own on PostgreSQL."""
    if not SQLITE:
        return value
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value.isoformat()


def _hash(entry: dict) -> str:
    """workflow/audit.py canonical(): sha256 over the entry's canonical JSON."""
    content = {k: entry[k] for k in ("seq", "user_id", "username", "unit_id", "ip", "action", "task_id", "part_id",
                                     "plan_id", "from_state", "to_state", "reason", "details", "prev_hash")}
    content["at"] = entry["at"].isoformat(timespec="microseconds")
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True,
                                     separators=(",", ":")).encode("utf-8")).hexdigest()


USERS: dict[int, tuple] = {}


@app.post("/receive/<int:part_id>")
def receive(part_id: int):
    user_id = int(request.args["user"])
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if user_id not in USERS:
            USERS[user_id] = tuple(conn.execute(text('SELECT username, unit_id FROM "user" WHERE id = :id'),
                                                {"id": user_id}).one())
        username, unit_id = USERS[user_id]
        head = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1" + ("" if SQLITE else " FOR UPDATE"))).one()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        part = conn.execute(text(
            "UPDATE task_part SET received_at = :now, received_by_id = :user, version = version + 1 "
            "WHERE id = :id RETURNING task_id, (SELECT name FROM unit WHERE unit.id = task_part.unit_id)"),
            {"now": _db_value(now), "user": user_id, "id": part_id}).first()
        if part is None:
            abort(404)
        entry = {"seq": head.seq + 1, "at": now, "user_id": user_id, "username": username, "unit_id": unit_id,
                 "ip": request.remote_addr, "action": "transition", "task_id": part[0], "part_id": part_id,
                 "plan_id": None, "from_state": "planned", "to_state": "planned", "reason": None,
                 "details": {"event": "receive", "unit": part[1]}, "prev_hash": head.hash}
        entry["hash"] = _hash(entry)
        conn.execute(text(
            "INSERT INTO audit_entry (seq, at, user_id, username, unit_id, ip, action, task_id, part_id, plan_id, "
            "from_state, to_state, reason, details, prev_hash, hash) VALUES (:seq, :at, :user_id, :username, "
            ":unit_id, :ip, :action, :task_id, :part_id, :plan_id, :from_state, :to_state, :reason, :details, "
            ":prev_hash, :hash)".replace(":details", ":details" if SQLITE else "CAST(:details AS JSON)")),
            {**entry, "at": _db_value(now), "details": json.dumps(entry["details"], ensure_ascii=False)})
        conn.execute(text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"),
                     {"seq": entry["seq"], "hash": entry["hash"]})
    return "ok"


def main() -> None:
    """A quick try without gunicorn: DATABASE_URL=… python bench/scale_bare.py [PORT]."""
    app.run(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 5099, threaded=True)


if __name__ == "__main__":
    main()
