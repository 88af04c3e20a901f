"""A page leaves no reference cycle holding its database session or rows.

Issue 7: under threaded gunicorn on SQLite, workers died of SIGSEGV, always with
the heap already corrupted (faulthandler in the garbage collector's traversal,
PYTHONMALLOC=debug reporting overwritten block headers); with the collector off
the same load never crashed. The audit page defined a recursive macro, which
closes a cycle around the render context: every render left the request's
Session, the Request and ~130 ORM rows to the cyclic collector, which tears them
down in whichever thread allocates next — a thread busy with its own session.
Rendering must free them by reference counting, in the request's own thread.
"""
from __future__ import annotations

import gc

import pytest
from sqlalchemy.orm import InstanceState, Session

from tests.helpers import log_in, unit_username


@pytest.fixture
def db_template():
    return "activity"


def cyclic_garbage_of(client, path: str) -> list:
    client.get(path)   # warm up: template compilation, caches
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        response = client.get(path)
        assert response.status_code == 200, path
        gc.collect()
        return [o for o in gc.garbage if isinstance(o, (Session, InstanceState))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("path", ["/audit", "/audit?page=2", "/audit?action=transition", "/", "/overview", "/tasks/",
                                  "/tasks/?state=submitted", "/tasks/todo", "/tasks/verify", "/plans/", "/plans/1",
                                  "/inbox", "/reports/", "/admin/users"])
def test_page_leaves_no_session_or_rows_to_the_garbage_collector(app, client, path):
    log_in(client, "office")
    leftovers = cyclic_garbage_of(client, path)
    assert not leftovers, f"{path}: {len(leftovers)} sessions/rows in reference cycles"


@pytest.mark.parametrize("who", ["office", "lead_leader", "part_staff"])
def test_task_page_leaves_no_session_or_rows_to_the_garbage_collector(app, client, who):
    """The task page as each of the people who act on it sees it: their
    buttons ask who may verify (the lead units' leaders) and what may be carried."""
    from sqlalchemy import select

    from models import Evidence, TaskPart
    from workflow.extensions import db

    with app.app_context():
        part = db.session.scalar(select(TaskPart).join(Evidence, Evidence.part_id == TaskPart.id)
                                 .where(Evidence.submission_id.is_not(None)).limit(1))
        task_id = part.task_id
        username = {"office": "office", "lead_leader": unit_username(part.task.lead_units[0], "leader"),
                    "part_staff": unit_username(part.unit_id, "staff")}[who]
        db.session.remove()
    log_in(client, username)
    leftovers = cyclic_garbage_of(client, f"/tasks/{task_id}")
    assert not leftovers, f"/tasks/{task_id} as {who}: {len(leftovers)} sessions/rows in reference cycles"
