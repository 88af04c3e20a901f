"""Helpers shared by test modules (plain functions; the fixtures built on them
are in tests/conftest.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
DEMO_PASSWORD = "demo-2026"


def csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token on the page"
    return match.group(1)


def csrf_token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no csrf_token on {path}"
    return match.group(1)


def session_token(client) -> str:
    """The CSRF token of ``client``'s session, fetched from a page once: Flask-WTF keeps one
    token per session, so a test posting many forms from one logged-in client need not load
    a page before each (the matrix's refused cells did, 495 pages a run)."""
    token = getattr(client, "_luoshi_csrf_token", None)
    if token is None:
        token = client._luoshi_csrf_token = csrf_token(client, "/auth/password")
    return token


def log_in(client, username: str, password: str = DEMO_PASSWORD, *, expect: int = 302):
    """Log ``client`` in through the real form (CSRF and all) and return it.
    Tests use the ``login`` fixture; this is for a client of another app (a
    restored backup) or a client built with special environ (a remote address)."""
    token = csrf_token(client, "/auth/login")
    response = client.post("/auth/login", data={"csrf_token": token, "username": username, "password": password})
    assert response.status_code == expect, \
        f"login as {username}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    return client


# ---------------------------------------------------------------- demo accounts

_ROLE_SUFFIX = {"staff": "staff", "leader": "leader", "unit_staff": "staff", "unit_leader": "leader"}


def unit_username(unit_or_id, role: str) -> str:
    """The demo account of a unit (workflow/demo.py): ``u07.staff``, ``u07.leader``.
    ``role`` is "staff"/"leader" or Role.UNIT_STAFF/Role.UNIT_LEADER."""
    unit_id = unit_or_id if isinstance(unit_or_id, int) else unit_or_id.id
    if role not in _ROLE_SUFFIX:
        raise ValueError(f"no demo account for role {role!r}")
    return f"u{unit_id:02d}.{_ROLE_SUFFIX[role]}"


def user_named(username: str):
    """The User row (inside an app context); fails the test if there is none."""
    from models import User
    from workflow.extensions import db

    found = db.session.scalar(select(User).where(User.username == username))
    assert found is not None, f"no user {username}"
    return found


def unit_user(unit_or_id, role: str):
    """The demo User of a unit (inside an app context)."""
    return user_named(unit_username(unit_or_id, role))


# ---------------------------------------------------------------- seed tasks

def find_seed_task(parts: int = 1, lead_owns_part: bool | None = None):
    """The first seed task (by id, inside an app context) with ``parts`` parts,
    one lead unit and no long-term flag, whose lead unit does (or does not)
    own one of the parts — so that tests do not hang on row ids."""
    from models import Task
    from workflow.extensions import db

    for task in db.session.scalars(select(Task).order_by(Task.id)):
        if len(task.parts) != parts or len(task.lead_units) != 1 or task.long_term:
            continue
        owns = task.lead_units[0].id in {p.unit_id for p in task.parts}
        if lead_owns_part is None or owns == lead_owns_part:
            return task
    raise AssertionError(f"no seed task with {parts} part(s), lead_owns_part={lead_owns_part}")


@dataclass(frozen=True)
class OnePartTask:
    """A seed task with one part and one lead unit, as ids and usernames (usable
    outside an app context)."""
    task_id: int
    part_id: int
    lead_unit_id: int
    part_unit_id: int
    part_staff: str        # username of the part unit's staff
    part_leader: str       # … and of its leader
    lead_leader: str       # username of the lead unit's leader (who verifies)

    @property
    def ids(self) -> tuple[int, int, int, int]:
        """(task_id, part_id, lead_unit_id, part_unit_id), for unpacking."""
        return self.task_id, self.part_id, self.lead_unit_id, self.part_unit_id

    @property
    def base(self) -> str:
        """The URL prefix of the part's actions."""
        return f"/tasks/{self.task_id}/parts/{self.part_id}"


# Asks the ``one_part_task`` fixture for a part the lead unit owns itself.
lead_owns_part = pytest.mark.parametrize("one_part_task", [pytest.param(True, id="lead_owns_part")],
                                         indirect=True)


def one_part_task_in(app, *, lead_owns_part: bool) -> OnePartTask:
    with app.app_context():
        task = find_seed_task(parts=1, lead_owns_part=lead_owns_part)
        part, lead = task.parts[0], task.lead_units[0]
        found = OnePartTask(task.id, part.id, lead.id, part.unit_id, unit_username(part.unit_id, "staff"),
                            unit_username(part.unit_id, "leader"), unit_username(lead, "leader"))
    return found


def row_counts(db, *models) -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in models}


def post_on_task_page(client, task_id: int, path: str, **fields):
    """Load the task page as the user sees it and post the form whose action is
    ``path``, with the CSRF token and the version that form shows; follows the redirect."""
    page = client.get(f"/tasks/{task_id}")
    version = re.search(r'action="%s"[^>]*>.*?name="version" value="(\d+)"' % re.escape(path), page.text, re.S)
    data = {"csrf_token": csrf(page.text), "version": version.group(1) if version else "0", **fields}
    return client.post(path, data=data, follow_redirects=True)
