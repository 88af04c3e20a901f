"""The shared set-up itself (tests/conftest.py, tests/helpers.py): a fixture
that quietly did nothing would make every test built on it pass for nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Role, Task, User
from tests.helpers import unit_username, unit_user
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "seed"


def test_unit_username_names_the_demo_account_of_the_unit(app):
    assert unit_username(7, "staff") == unit_username(7, Role.UNIT_STAFF) == "u07.staff"
    assert unit_username(12, Role.UNIT_LEADER) == "u12.leader"
    with pytest.raises(ValueError):
        unit_username(7, Role.OFFICE_ADMIN)
    with app.app_context():
        task = db.session.scalars(select(Task).order_by(Task.id)).first()
        unit = task.lead_units[0]
        leader = unit_user(unit, "leader")
        assert (leader.unit_id, leader.role) == (unit.id, Role.UNIT_LEADER)
        assert unit_user(unit.id, Role.UNIT_STAFF).role == Role.UNIT_STAFF


def test_login_returns_a_client_of_that_user_and_checks_the_answer(app, login):
    office = login("office")
    assert office.get("/tasks/").status_code == 200
    assert app.test_client().get("/tasks/").status_code == 302      # another client is not logged in
    login("office", "wrong-password-1", expect=401)
    with pytest.raises(AssertionError):
        login("office", "wrong-password-1")


@pytest.mark.parametrize("one_part_task, owns", [(False, False), (True, True)], indirect=["one_part_task"])
def test_one_part_task_matches_its_description(app, one_part_task, owns):
    s = one_part_task
    assert (s.lead_unit_id == s.part_unit_id) is owns
    with app.app_context():
        task = db.session.get(Task, s.task_id)
        assert [p.id for p in task.parts] == [s.part_id] and not task.long_term
        assert [u.id for u in task.lead_units] == [s.lead_unit_id]
        assert task.parts[0].unit_id == s.part_unit_id
        users = {u.username: u for u in db.session.scalars(select(User).where(
            User.username.in_([s.part_staff, s.part_leader, s.lead_leader])))}
        assert (users[s.part_staff].unit_id, users[s.part_staff].role) == (s.part_unit_id, Role.UNIT_STAFF)
        assert (users[s.part_leader].unit_id, users[s.part_leader].role) == (s.part_unit_id, Role.UNIT_LEADER)
        assert (users[s.lead_leader].unit_id, users[s.lead_leader].role) == (s.lead_unit_id, Role.UNIT_LEADER)
    assert s.base == f"/tasks/{s.task_id}/parts/{s.part_id}"


def test_one_part_task_is_another_units_part_by_default(one_part_task):
    assert one_part_task.lead_unit_id != one_part_task.part_unit_id


def test_count_queries_counts_each_statement_inside_the_block_only(app, count_queries):
    with app.app_context():
        with count_queries() as statements:
            db.session.execute(select(Task.id).limit(1)).all()
            db.session.execute(select(User.id).limit(1)).all()
        # (SQLite adds its BEGIN IMMEDIATE: that is a statement too.)
        selects = [s for s in statements if s.startswith("SELECT")]
        # (PostgreSQL quotes "user", a reserved word.)
        assert len(selects) == 2 and "FROM task" in selects[0] and "user" in selects[1].split("FROM")[1]
        seen = len(statements)
        db.session.execute(select(Task.id).limit(1)).all()
        assert len(statements) == seen
