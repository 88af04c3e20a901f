"""The pages' queries use indexes, on both databases: every statement a page sends is explained
with its own parameters, and none may read a whole table that grows with the data (the audit
trail, tasks, parts, notifications…). Small tables of the organisation (units, users, plans) may
be scanned. On PostgreSQL sequential and bitmap scans, sorts and hash aggregates are switched off for
the EXPLAIN, so that the test data's small tables do not hide a missing index: a plan that still scans
(or, where checked, still sorts) has no index to use.

Issue 12 (scale) adds pages here as their queries are made bounded; see docs/deployment.md."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select

from workflow.extensions import db

#: Tables whose size grows with the plans and their history.
GROWING = ("audit_entry", "item", "task", "task_part", "notification", "progress_note", "submission", "evidence",
           "reminder", "delivery", "extension_request", "round_part")


@pytest.fixture
def db_template() -> str:
    return "activity"


def _statements_during(app, work) -> list[tuple[str, object]]:
    """The SELECTs (statement, parameters) sent on the app's engine while ``work()`` runs."""
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and not executemany:
            statements.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


def _statements_of(app, client, path: str) -> list[tuple[str, object]]:
    responses = []
    statements = _statements_during(app, lambda: responses.append(client.get(path)))
    assert responses[0].status_code == 200, (path, responses[0].status_code)
    return statements


def _plan(app, statement: str, parameters) -> list[str]:
    """The statement's query plan, one line per step (PostgreSQL: sequential and bitmap scans, sorts and
    hash aggregates off, so that the plan shows what the indexes can do)."""
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if db.engine.dialect.name == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                details = [row[3] for row in cursor.fetchall()]
            else:
                # Small test tables make a full scan, a bitmap of every match or a sort look cheap; off,
                # the planner walks an index where one serves, and what remains has none to use.
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_hashagg"):
                    cursor.execute(f"SET {setting} = off")
                cursor.execute("EXPLAIN " + statement, parameters)
                details = [row[0] for row in cursor.fetchall()]
            raw.rollback()
        finally:
            raw.close()
        return details


def _full_scans(app, statement: str, parameters) -> list[str]:
    """The growing tables this statement reads whole, by its query plan."""
    details = _plan(app, statement, parameters)
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
    if sqlite:
        # Walking an index in order under a LIMIT (the newest entries first) stops at the page —
        # unless every row is sorted first (a temp B-tree for the whole ORDER BY; one for its
        # right part sorts the rows of one step of the walk).
        bounded = (bool(re.search(r"\bLIMIT\b", statement)) and "GROUP BY" not in statement
                   and "USE TEMP B-TREE FOR ORDER BY" not in details)
        # A walk in the table's own order (ORDER BY its id: the rowid) stops at the page too.
        scanned = [m[1] for d in details if (m := re.match(r"SCAN (\w+)( USING (?:COVERING )?INDEX)?", d))
                   and not (bounded and (m[2] or _rowid_order(statement, m[1])))]
    else:
        scanned = [m[1] for d in details if (m := re.search(r"Seq Scan on (\w+)", d))]
    return [table for table in scanned if table in GROWING]


def _rowid_order(statement: str, table: str) -> bool:
    """Walked in its id order with nothing filtered: a rowid walk that stops at the LIMIT. With a
    WHERE it may read the whole table before it finds a page, and only an index bounds it."""
    orders = re.findall(r"ORDER BY ([\w.]+)", statement)
    return (bool(orders) and all(order == f"{table}.id" for order in orders)
            and not re.search(r"\bWHERE\b", statement))


def _scans_of_page(app, client, path: str) -> dict[str, list[str]]:
    return {sql[:160]: tables for sql, params in _statements_of(app, client, path)
            if (tables := _full_scans(app, sql, params))}


def _task_with_most_history(app) -> int:
    from sqlalchemy import func

    from models import AuditEntry

    with app.app_context():
        return db.session.execute(select(AuditEntry.task_id, func.count()).where(AuditEntry.task_id.is_not(None))
                                  .group_by(AuditEntry.task_id).order_by(func.count().desc()).limit(1)).first()[0]


def test_the_task_page_reads_its_own_rows_only(app, login):
    """The task page's timeline and parts come from the task's indexes, for the office and for a unit."""
    from models import Task, TaskPart, User

    task_id = _task_with_most_history(app)
    with app.app_context():
        part = db.session.scalar(select(TaskPart).where(TaskPart.task_id == task_id))
        staff = db.session.scalar(select(User.username).where(User.unit_id == part.unit_id,
                                                               User.username.like("%.staff")))
        assert db.session.get(Task, task_id) is not None and staff
    for username in ("office", staff):
        statements = _statements_of(app, login(username), f"/tasks/{task_id}")
        assert statements
        scans = {sql[:160]: tables
                 for sql, params in statements if (tables := _full_scans(app, sql, params))}
        assert scans == {}, (username, scans)


def test_the_audit_log_pages_without_counting_the_whole_trail(app, login):
    """Unfiltered, the total comes from the chain's head; a filtered page counts through an index."""
    from sqlalchemy import func

    from models import AuditEntry

    office = login("office")
    assert _scans_of_page(app, office, "/audit") == {}
    assert _scans_of_page(app, office, "/audit?page=3") == {}
    assert _scans_of_page(app, office, "/audit?action=transition") == {}
    with app.app_context():
        total = db.session.scalar(select(func.count(AuditEntry.id)))
    assert f"共 {total} 条" in office.get("/audit").get_data(as_text=True)
    # However deep, an unfiltered page seeks to its first entry: nothing skipped by OFFSET.
    deep = [(sql, params) for sql, params in _statements_of(app, office, "/audit?page=20")
            if "FROM audit_entry" in sql]
    assert len(deep) == 1 and "audit_entry.seq <=" in deep[0][0], deep
    sql, params = deep[0]
    if "OFFSET" in sql:                     # SQLite writes LIMIT ? OFFSET ? even for none: it is 0
        assert list(params)[-1] == 0, params



def test_the_audit_log_within_dates_walks_the_time_index(app, login):
    """Within dates, the page and its count walk the `at` index over those dates alone: ordered by
    seq, the walk would start at the newest entry and pass every later one (the planner cannot
    know that seq and time rise together), and no scan test sees that — it is an index walk."""
    office = login("office")
    path = "/audit?date_from=2022-06-01&date_to=2022-06-30"
    statements = [(sql, params) for sql, params in _statements_of(app, office, path) if "FROM audit_entry" in sql]
    assert len(statements) == 2, statements             # the page, and its count up to the limit
    for sql, params in statements:
        plan = "\n".join(_plan(app, sql, params))
        assert "ix_audit_entry_at" in plan, (sql[:200], plan)
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
        assert not re.search(r"(^|->\s*)Sort\b", plan, re.M), plan        # PostgreSQL: no sort of every match
    html = office.get(path).get_data(as_text=True)
    assert "2022-06-" in html and "2022-07-" not in html

def _rarest(app, column) -> object:
    """The value of an audit column with the fewest entries (ties: the smallest): at scale every unit,
    user, task and most actions hold a small share of the trail, and that is where an index on the
    column alone would fail. The test data's busiest values are a tenth of it or more, and for those
    the planner rightly walks the chain backwards and filters, stopping at the page all the same."""
    from sqlalchemy import func

    with app.app_context():
        return db.session.execute(select(column).where(column.is_not(None)).group_by(column)
                                  .order_by(func.count(), column).limit(1)).scalar_one()


def _no_sort_of_every_match(plan: str) -> None:
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
    assert not re.search(r"(^|->\s*)Sort\b", plan, re.M), plan           # PostgreSQL


@pytest.mark.parametrize("query", ["action={action}", "unit={unit}", "user={user}", "task={task}",
                                   "unit={unit}&action=transition"])
def test_the_audit_log_filters_walk_an_index_in_chain_order(app, login, query):
    """A filter's page (and its count up to the limit) walks an index that ends in seq, newest match
    first, and stops at the page: an index on the column alone finds every match and sorts them all
    for each page (no scan test sees that either), 1 s for 签收's entries at 100,000 tasks. A task's
    entries (the number may name one task in several plans) are few: only those are sorted."""
    from models import AuditEntry

    values = {name: _rarest(app, getattr(AuditEntry, column)) for name, column in
              (("action", "action"), ("unit", "unit_id"), ("user", "username"), ("task", "task_id"))}
    path = "/audit?" + query.format(**values)
    office = login("office")
    statements = [(sql, params) for sql, params in _statements_of(app, office, path) if "FROM audit_entry" in sql]
    assert len(statements) == 2, statements             # the page, and its count up to the limit
    for sql, params in statements:
        plan = "\n".join(_plan(app, sql, params))
        assert re.search(r"ix_audit_entry_\w+_seq", plan), (sql[:200], plan)
        if not query.startswith("task="):
            _no_sort_of_every_match(plan)
    assert "共 " in office.get(path).get_data(as_text=True)


def test_the_audit_log_filtered_by_a_common_action_stops_at_its_page(app, login):
    """An action that fills much of the trail (transitions): whichever index the planner walks, the
    page is read in chain order under its LIMIT, never every match sorted."""
    office = login("office")
    statements = [(sql, params) for sql, params in _statements_of(app, office, "/audit?action=transition")
                  if "FROM audit_entry" in sql]
    assert len(statements) == 2, statements
    for sql, params in statements:
        plan = "\n".join(_plan(app, sql, params))
        assert re.search(r"(SCAN|SEARCH) audit_entry USING (COVERING )?INDEX|Index (Only )?Scan( Backward)? using \w+ on audit_entry",
                         plan), plan
        _no_sort_of_every_match(plan)


def test_a_state_filtered_task_list_reads_by_its_indexes(app, login):
    """The filter's lists (units with work) and the rows of one state, for the office and a unit."""
    from models import TaskPart, User

    with app.app_context():
        unit_id = db.session.scalar(select(TaskPart.unit_id).limit(1))
        staff = db.session.scalar(select(User.username).where(User.unit_id == unit_id,
                                                               User.username.like("%.staff")))
    for username in ("office", staff):
        assert _scans_of_page(app, login(username), "/tasks/?state=in_progress") == {}, username


def test_the_unfiltered_task_list_and_the_to_do_read_by_their_indexes(app, login):
    """The first page of every task in document order walks the order's index under its LIMIT; its
    total, the to-do's and the overview's colour counts and the 红黄蓝 filter's tasks are kept
    (workflow/head_cache.py, workflow/colours.py), so the second view reads no growing table whole —
    for the office, a viewer and a unit."""
    from models import TaskPart, User

    with app.app_context():
        unit_id = db.session.scalar(select(TaskPart.unit_id).limit(1))
        staff = db.session.scalar(select(User.username).where(User.unit_id == unit_id,
                                                               User.username.like("%.staff")))
    for username, path in (("office", "/tasks/"), (staff, "/tasks/"), ("office", "/tasks/todo"),
                           (staff, "/tasks/todo"), ("office", "/tasks/?page=2"), ("office", "/tasks/?warning=red"),
                           ("leader", "/tasks/?warning=yellow&page=2"), ("office", "/overview")):
        client = login(username)
        client.get(path)
        assert _scans_of_page(app, client, path) == {}, (username, path)


def test_unit_and_item_reports_read_their_own_rows_only(app):
    """A unit report and an item report (their size first, then their data) filter by the plan,
    the unit and the item through indexes: no growing table is read whole, so they stay as
    fast with many plans in the database as with one. The overall report reads its plan."""
    from models import Item, TaskPart
    from workflow.reports import archive

    with app.app_context():
        unit_id = db.session.scalar(select(TaskPart.unit_id).order_by(TaskPart.id).limit(1))
        number = db.session.scalar(select(Item.number).where(Item.parent_id.is_(None)).order_by(Item.position)
                                   .offset(5).limit(1))

    for kind, extra in (("unit", {"unit_id": unit_id}), ("item", {"item_number": number})):
        def work(kind=kind, extra=extra):
            with app.app_context():
                params = archive.make_params(kind, as_of="2022-06-30", **extra)
                assert archive.estimate(params).tasks > 0
                archive.build_html(params, "测试")
                db.session.rollback()

        statements = _statements_during(app, work)
        assert len(statements) > 5
        scans = {sql[:160]: tables for sql, params in statements if (tables := _full_scans(app, sql, params))}
        assert scans == {}, (kind, scans)


@pytest.mark.parametrize("username,path", [
    ("office", "/inbox"), ("office", "/extensions"), ("office", "/rounds/"), ("office", "/plans/"),
    ("office", "/tasks/verify"), ("office", "/tasks/unreceived"), ("office", "/escalations/"),
    ("office", "/reminders/"), ("leader", "/"), ("office", "/scores/"), ("office", "/scores/?period=month"),
])
def test_other_pages_read_by_their_indexes(app, login, username, path):
    """The lists of the other areas (a second view: kept counts kept; 考核排名 reads every part once per
    change of the trail)."""
    client = login(username)
    client.get(path)
    assert _scans_of_page(app, client, path) == {}, (username, path)


@pytest.mark.parametrize("query", ["", "?read=no", "?read=yes", "?kind=urged", "?status=failed", "?status=sent",
                                   "?kind=assigned&read=no&page=2"])
def test_the_notice_log_counts_no_further_than_its_limit(app, login, query):
    """通知记录 is not audited (reading, sending), so its figures are not kept: every count reads at
    most COUNT_LIMIT index entries, and each filter walks an index newest first — no step that
    gathers every match before the LIMIT (a list of the subquery's rows, a sort)."""
    client = login("office")
    assert _scans_of_page(app, client, "/notices/" + query) == {}, query
    for sql, params in _statements_of(app, client, "/notices/" + query):
        # The walks and counts (under a LIMIT); the page's own rows are looked up by their ids.
        if ("notification" in sql or "delivery" in sql) and "LIMIT" in sql:
            steps = _plan(app, sql, params)
            gathering = [step for step in steps if re.search(r"LIST SUBQUERY|TEMP B-TREE|\bSort\b|HashAggregate",
                                                             step)]
            assert gathering == [], (query, sql[:300], steps)


@pytest.mark.parametrize("query,condition,index", [
    ("?kind=urged", "notification.kind =", "ix_notification_kind"),
    ("?read=no", "notification.read_at IS NULL", "ix_notification_unread")])
def test_the_notice_log_filters_walk_their_own_index(app, login, query, condition, index):
    """A rare kind or the unread notices among millions: walking every notice newest first until a
    page is found would read the whole log; the list and its count walk the filter's index."""
    client = login("office")
    client.get("/notices/" + query)
    walks = [(sql, params) for sql, params in _statements_of(app, client, "/notices/" + query)
             if "FROM notification" in sql and "LIMIT" in sql and condition in sql and "notification.user_id = ?" not in sql]
    assert len(walks) >= 2, walks           # the page and its count (and, unread, the unread total)
    for sql, params in walks:
        assert any(index in step for step in _plan(app, sql, params)), (sql, _plan(app, sql, params))
