"""Counts and lists kept until the audit trail moves (workflow/head_cache.py): a page counts its
rows once, and counts again after any audited change — on both databases."""
from __future__ import annotations

import re

import pytest

from sqlalchemy import func, select, update

from tests.helpers import find_seed_task, unit_user
from workflow.extensions import db


@pytest.fixture
def db_template() -> str:
    return "seed"


def _counts_sent(statements) -> list[str]:
    return [s for s in statements if re.match(r"\s*SELECT count\(\*\)", s)]


def _total_of(html: str) -> int:
    return int(re.search(r"共 (\d+) 条", html)[1])


def test_the_task_list_counts_once_per_change_of_the_trail(app, login, count_queries):
    from models import Task
    from workflow import services
    from workflow.vocabulary import IN_PROGRESS, PLANNED

    office = login("office")
    first = office.get("/tasks/?state=planned").get_data(as_text=True)
    with app.app_context():
        planned = db.session.scalar(select(func.count(Task.id)).where(Task.state == PLANNED))
    assert _total_of(first) == planned
    with count_queries() as statements:
        again = office.get("/tasks/?state=planned").get_data(as_text=True)
    assert _counts_sent(statements) == [] and _total_of(again) == planned

    # One audited change (a part started): the next view counts again and shows it.
    with app.app_context():
        part = find_seed_task(parts=1).parts[0]
        services.start_part(part, unit_user(part.unit_id, "staff"))
        db.session.commit()
        assert db.session.get(Task, part.task_id).state == IN_PROGRESS
    with count_queries() as statements:
        after = office.get("/tasks/?state=planned").get_data(as_text=True)
    assert len(_counts_sent(statements)) == 1 and _total_of(after) == planned - 1


def test_a_head_with_the_same_seq_and_another_hash_is_another_trail(app):
    """After a restore the seq can come back to a value it had: the hash tells the trails apart."""
    from models import AuditHead
    from workflow import head_cache

    calls = []
    with app.test_request_context():
        assert head_cache.cached("k", lambda: calls.append(1) or len(calls)) == 1
    with app.test_request_context():
        assert head_cache.cached("k", lambda: calls.append(1) or len(calls)) == 1
        seq, old_hash = head_cache.head()
        db.session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash="f" * 64))
        db.session.commit()
    with app.test_request_context():
        assert head_cache.head() == (seq, "f" * 64)
        assert head_cache.cached("k", lambda: calls.append(1) or len(calls)) == 2
        db.session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=old_hash))
        db.session.commit()


def test_a_transaction_that_has_written_counts_without_the_cache(app):
    """Its figures include its own uncommitted rows: kept, they would be shown to others."""
    from models import TaskPart
    from workflow import head_cache, services
    from workflow.vocabulary import PLANNED

    with app.test_request_context():
        assert head_cache.cached("planned", lambda: 1) == 1
        part = db.session.scalar(select(TaskPart).where(TaskPart.state == PLANNED).limit(1))
        services.start_part(part, unit_user(part.unit_id, "staff"))
        assert head_cache.cached("planned", lambda: 2) == 2      # not the kept 1
        db.session.rollback()
    with app.test_request_context():
        assert head_cache.cached("planned", lambda: 3) == 1       # the rollback changed nothing


def test_a_transaction_that_flushed_a_write_counts_without_the_cache(app):
    """Flushed rows are no longer pending in the session, but they are still this transaction's own."""
    from models import Task
    from workflow import head_cache

    with app.test_request_context():
        assert head_cache.cached("texts", lambda: 1) == 1
        task = db.session.scalar(select(Task).limit(1))
        task.note = "改动尚未提交"
        db.session.flush()
        assert not (db.session.new or db.session.dirty) and head_cache.writing()
        assert head_cache.cached("texts", lambda: 2) == 2
        db.session.rollback()
        assert not head_cache.writing()
        assert head_cache.cached("texts", lambda: 3) == 1


def test_a_transaction_whose_only_write_is_chained_audit_entries_counts_without_the_cache(app):
    """The chain writes its entries and head with its own statements (no flush says so): a
    transaction that wrote only entries, then read the trail (which chains them), has written."""
    from models import AuditEntry
    from workflow import audit, head_cache

    with app.test_request_context():
        assert head_cache.cached("entries", lambda: 1) == 1
        audit.append("login", username="office")
        db.session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))   # chains it
        assert not audit.has_waiting(db.session()) and head_cache.writing()
        assert head_cache.cached("entries", lambda: 2) == 2
        db.session.rollback()
        assert not head_cache.writing()


# ---------------------------------------------------------------- the task page

def _receive_url(html: str) -> str | None:
    found = re.search(r'action="(/tasks/\d+/parts/\d+/receive)"', html)
    return found[1] if found else None


def _page_queries(statements) -> list[str]:
    """What a view asked of the task, its parts and its trail, the stamp aside (head_cache.task_stamp):
    nothing when the page was the kept one (the layout's own counts are kept by the head)."""
    return [s for s in statements if re.search(r"FROM (task|task_part|audit_entry)\b", s)
            and "audit_head.general_hash" not in s]


def test_a_task_page_is_rendered_once_per_user_and_change_of_the_trail(app, login, count_queries):
    """The second view of a task page reads only the user, the head and the task's stamp (its newest
    entry, one index lookup); the page is the same but for
    the CSRF token, which is the current session's (a form posted from the kept page is accepted).
    Another user gets a page of their own; after an audited change the page is rendered again and
    shows it."""
    from models import TaskPart
    from tests.helpers import CSRF_RE, unit_username

    with app.app_context():
        task = find_seed_task(parts=1)
        task_id, unit_id, part_id = task.id, task.parts[0].unit_id, task.parts[0].id
    url = f"/tasks/{task_id}"
    staff = login(unit_username(unit_id, "staff"))
    first = staff.get(url).get_data(as_text=True)
    assert _receive_url(first) is not None and "签收" in first
    with count_queries() as statements:
        again = staff.get(url).get_data(as_text=True)
    assert _page_queries(statements) == [] and len([s for s in statements if s != "BEGIN"]) == 2, statements
    assert CSRF_RE.sub("", again) == CSRF_RE.sub("", first)

    # The same account signed in elsewhere: the kept page carries that session's token, which posts.
    other = login(unit_username(unit_id, "staff"))
    kept = other.get(url).get_data(as_text=True)
    token = CSRF_RE.search(kept).group(1)
    assert set(CSRF_RE.findall(kept)) == {token} and token not in first
    # The office's page is its own: no 签收 for a unit it is not.
    office = login("office")
    assert _receive_url(office.get(url).get_data(as_text=True)) is None

    version = re.search(r'name="version" value="(\d+)"', kept)[1]
    response = other.post(_receive_url(kept), data={"csrf_token": token, "version": version})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(TaskPart, part_id).received_at is not None
    with count_queries() as statements:
        after = staff.get(url).get_data(as_text=True)
    assert _page_queries(statements)
    assert _receive_url(after) is None and "已签收" in after


def _two_tasks():
    """Two seed tasks of different units, each with one planned part not yet received."""
    from models import Task, TaskPart
    from workflow.vocabulary import PLANNED

    rows = db.session.execute(select(TaskPart.task_id, TaskPart.unit_id, TaskPart.id).join(Task)
                              .where(TaskPart.state == PLANNED, TaskPart.received_at.is_(None))
                              .order_by(TaskPart.id)).all()
    first = rows[0]
    second = next(r for r in rows if r.task_id != first.task_id and r.unit_id != first.unit_id)
    return first, second


def test_a_write_on_another_task_leaves_a_kept_task_page(app, login, count_queries):
    """签收 on task B moves the trail's head but not task A's stamp: A's page is still the kept one,
    and B's own page is rendered again and shows the receipt."""
    from models import TaskPart
    from tests.helpers import CSRF_RE
    from workflow import services

    with app.app_context():
        a, b = _two_tasks()
    office = login("office")
    page_a = office.get(f"/tasks/{a.task_id}").text
    office.get(f"/tasks/{b.task_id}")
    with app.app_context():
        services.receive_part(db.session.get(TaskPart, b.id), unit_user(b.unit_id, "staff"))
        db.session.commit()
    with count_queries() as statements:
        again = office.get(f"/tasks/{a.task_id}").text
    assert _page_queries(statements) == [], statements
    assert CSRF_RE.sub("", again) == CSRF_RE.sub("", page_a)
    with count_queries() as statements:
        page_b = office.get(f"/tasks/{b.task_id}").text
    assert _page_queries(statements) and "已签收" in page_b


def test_a_general_change_renders_every_task_page_again_and_a_sign_in_does_not(app, login, count_queries):
    """A unit renamed (an entry about no task) shows on every page that names the unit; a sign-in
    (audited too, about no task) changes nothing a page shows and leaves them kept."""
    from models import Unit
    from tests.helpers import unit_username, user_named
    from workflow import admin_services

    with app.app_context():
        a, _ = _two_tasks()
        unit_name = db.session.get(Unit, a.unit_id).name
    office = login("office")
    assert unit_name in office.get(f"/tasks/{a.task_id}").text
    login(unit_username(a.unit_id, "staff"))                 # a sign-in: an audit entry, no task
    with count_queries() as statements:
        office.get(f"/tasks/{a.task_id}")
    assert _page_queries(statements) == [], statements

    with app.app_context():
        unit = db.session.get(Unit, a.unit_id)
        admin_services.update_unit(unit, user_named("office"), name=unit_name + "（更名）", kind=unit.kind)
        db.session.commit()
    with count_queries() as statements:
        renamed = office.get(f"/tasks/{a.task_id}").text
    assert _page_queries(statements) and unit_name + "（更名）" in renamed


def test_the_kept_pages_stay_within_their_bytes(app, login, monkeypatch):
    """Past MAX_PAGE_BYTES the oldest kept pages go: the store never holds more."""
    from models import Task
    from workflow import head_cache

    monkeypatch.setattr(head_cache, "MAX_PAGE_BYTES", 120_000)
    office = login("office")
    with app.app_context():
        ids = db.session.scalars(select(Task.id).order_by(Task.id).limit(12)).all()
    for task_id in ids:
        assert office.get(f"/tasks/{task_id}").status_code == 200
    store = app.extensions[head_cache._PAGES_KEY]
    assert 0 < len(store.pages) < len(ids)
    assert store.bytes == sum(size for _, _, size in store.pages.values()) <= 120_000
    newest = next(reversed(store.pages))
    assert newest[0][:2] == ("task_page", ids[-1])


def test_a_kept_task_page_is_not_shown_under_other_settings(app, login):
    """A setting the page reads (here whether work may start before 签收) changes with no audited
    action: the next view is rendered with it (config.CountedConfig counts the change)."""
    from tests.helpers import unit_username

    with app.app_context():
        task = find_seed_task(parts=1)
        url, unit_id = f"/tasks/{task.id}", task.parts[0].unit_id
    staff = login(unit_username(unit_id, "staff"))
    app.config["START_WITHOUT_RECEIPT"] = False
    assert "签收后方可开始办理" in staff.get(url).text
    app.config["START_WITHOUT_RECEIPT"] = True
    assert "签收后方可开始办理" not in staff.get(url).text
