"""SQLite only: the WAL is checkpointed and emptied once the process is idle
(workflow/sqlite.py), and that checkpoint never waits for anyone's lock."""
from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.helpers import csrf_token, log_in
from workflow import sqlite as plumbing

if PG_URL:
    pytestmark = pytest.mark.skip(reason="SQLite WAL checkpoints; this run is on PostgreSQL")


@pytest.fixture
def db_template():
    return "seed"


def wal_size(path: str) -> int:
    try:
        return os.path.getsize(path + "-wal")
    except FileNotFoundError:
        return 0


def db_path(app) -> str:
    return make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database


def urge_a_few(client, app, n=5):
    from sqlalchemy import select

    from models import Task
    from workflow.extensions import db

    with app.app_context():
        ids = db.session.scalars(select(Task.id).order_by(Task.id).limit(n)).all()
        db.session.remove()
    token = csrf_token(client, "/tasks/")
    for task_id in ids:
        response = client.post(f"/tasks/{task_id}/urge", data={"csrf_token": token, "message": "请加快"})
        assert response.status_code == 302


def wait_for(predicate, seconds=15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_wal_is_emptied_once_the_process_is_idle(app, client):
    path = db_path(app)
    # Another connection stays open (as another worker's pool would), so
    # SQLite's own checkpoint when the last connection closes cannot do it.
    other = sqlite3.connect(path)
    try:
        log_in(client, "office")
        urge_a_few(client, app)
        assert wal_size(path) > 0
        assert wait_for(lambda: wal_size(path) == 0), "WAL not checkpointed after the requests ended"
        # The writes are in the database file itself now.
        assert other.execute("SELECT count(*) FROM audit_entry WHERE action = 'urge'").fetchone()[0] >= 5
    finally:
        other.close()


def test_no_checkpoint_while_a_request_is_in_flight(app, client):
    path = db_path(app)
    other = sqlite3.connect(path)
    try:
        log_in(client, "office")
        urge_a_few(client, app)
        plumbing._checkpointer.request_started()   # a request still running in this process
        try:
            time.sleep(plumbing.DEFAULT_IDLE_SECONDS * 2.5)
            assert wal_size(path) > 0
        finally:
            plumbing._checkpointer.request_ended()
        assert wait_for(lambda: wal_size(path) == 0)
    finally:
        other.close()


def test_checkpoint_gives_up_at_once_while_another_connection_reads(app, client):
    path = db_path(app)
    log_in(client, "office")
    urge_a_few(client, app)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM audit_entry").fetchone()   # holds a read snapshot
        started = time.monotonic()
        result = plumbing.checkpoint(path)
        assert time.monotonic() - started < 1.0
        assert result is None or result[0] == 1      # locked or busy: not done, not waited for
        reader.execute("COMMIT")
    finally:
        reader.close()


def test_a_writer_is_not_blocked_by_idle_checkpoints(app):
    """Commits from a thread outside any request, while the checkpointer runs
    after each: every one goes through quickly."""
    from workflow import audit
    from workflow.sqlite import write_transactions
    from workflow.extensions import db

    slow: list[float] = []

    def writer():
        write_transactions(True)
        with app.app_context():
            for _ in range(20):
                started = time.monotonic()
                audit.append("urge", username="bench", details={"n": 1})
                db.session.commit()
                slow.append(time.monotonic() - started)
                time.sleep(0.06)
            db.session.remove()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(60)
    assert len(slow) == 20 and max(slow) < 2.0, slow
