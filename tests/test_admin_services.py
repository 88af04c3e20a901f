"""The admin services called directly: only the office admin writes, every write
is audited with the same action names and detail keys as before, a refusal
writes nothing, and ``audit.changes`` builds the old/new diff."""
from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tests.helpers import row_counts
from workflow import admin_services as admin, audit
from workflow.extensions import db
from workflow.services import Forbidden, Refused


@pytest.fixture
def db_template():
    return "seed"


pytestmark = pytest.mark.usefixtures("app_context")


def user(name: str):
    from models import User

    found = db.session.scalar(select(User).where(User.username == name))
    assert found is not None, name
    return found


def unit_named(name: str):
    from models import Unit

    found = db.session.scalar(select(Unit).where(Unit.name == name))
    assert found is not None, name
    return found


def entries(action: str) -> list:
    from models import AuditEntry

    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)).all()


def counts() -> dict:
    from models import AuditEntry, Unit, UnitAlias, User

    return {**row_counts(db, AuditEntry, Unit, UnitAlias, User), "head": audit.head_hash()}


def some_alias():
    from models import UnitAlias

    row = db.session.scalar(select(UnitAlias).order_by(UnitAlias.id))
    assert row is not None, "the seed plan registers aliases"
    return row


def refused(call, message: str, field: str | None = None):
    """The call is refused with that message (and field); after the rollback
    every row is as it was before."""
    before = counts()
    with pytest.raises(Refused) as caught:
        call()
    assert message in caught.value.message
    if field is not None:
        assert caught.value.field == field
    db.session.rollback()
    assert counts() == before
    return caught.value


# ---------------------------------------------------------------- permission

@pytest.mark.parametrize("username", ["office2", "leader", "u02.leader", "u02.staff"])
def test_only_the_office_admin_may_write(username):
    actor = user(username)
    target = user("u03.staff")
    unit = target.unit
    alias = some_alias()
    state = (target.display_name, target.role, target.active, target.session_version, target.password_hash,
             unit.name, unit.kind)
    before = counts()
    calls = [
        lambda: admin.create_user(actor, username="x.new", display_name="新人", unit_id=unit.id,
                                  role="unit_staff", password="Abcdef123"),
        lambda: admin.update_user(target, actor, display_name="改名", role="viewer", active=False,
                                  password="Abcdef123"),
        lambda: admin.create_unit(actor, name="区档案馆", kind="center"),
        lambda: admin.update_unit(unit, actor, name="区档案局", kind="bureau"),
        lambda: admin.add_alias(actor, alias="区档案委", unit_id=unit.id),
        lambda: admin.remove_alias(alias, actor),
    ]
    for call in calls:
        with pytest.raises(Forbidden) as caught:
            call()
        assert caught.value.message == "您没有执行此操作的权限。"
    # Refused before anything was touched: no rollback needed to see the rows unchanged.
    assert (target.display_name, target.role, target.active, target.session_version, target.password_hash,
            unit.name, unit.kind) == state
    assert alias in db.session and not db.session.deleted
    assert counts() == before


# ---------------------------------------------------------------- users

def test_create_user_writes_the_row_and_its_entry():
    from auth.passwords import verify_password

    office = user("office")
    unit = user("u02.staff").unit
    created = admin.create_user(office, username="u02.zhang", display_name=" 张三 ", unit_id=unit.id,
                                role="unit_staff", password="Zhang2026x", active=False)
    db.session.commit()
    assert (created.username, created.display_name, created.unit_id, created.role, created.active) == (
        "u02.zhang", "张三", unit.id, "unit_staff", False)
    assert verify_password(created.password_hash, "Zhang2026x")
    entry = entries("user_created")[-1]
    assert entry.username == "office"
    assert entry.details == {"user_id": created.id, "username": "u02.zhang", "display_name": "张三",
                             "role": "unit_staff", "unit_id": unit.id, "unit": unit.name, "active": False}
    assert "Zhang2026x" not in json.dumps(entry.details, ensure_ascii=False)
    assert audit.verify() == []


@pytest.mark.parametrize("change, message, field", [
    ({"username": "U02.Staff"}, "该用户名已被使用", "username"),       # names differing in case only
    ({"username": "张三"}, "用户名只能包含字母", "username"),
    ({"username": "  "}, "请填写用户名", "username"),
    ({"username": "a" * 65}, "用户名不能超过 64 字", "username"),
    ({"display_name": ""}, "请填写姓名", "display_name"),
    ({"role": "root"}, "请选择角色", "role"),
    ({"unit_id": 999999}, "请选择单位", "unit_id"),
    ({"unit_id": "2"}, "请选择单位", "unit_id"),
    ({"password": "short1"}, "密码至少需要 8 位", "password"),
    ({"password": "onlyletters"}, "密码需同时包含字母和数字", "password"),
])
def test_create_user_refusals_write_nothing(change, message, field):
    office = user("office")
    fields = {"username": "u02.zhang", "display_name": "张三", "unit_id": user("u02.staff").unit_id,
              "role": "unit_staff", "password": "Zhang2026x", **change}
    refused(lambda: admin.create_user(office, **fields), message, field)


def test_update_user_audits_the_diff_and_ends_sessions_only_when_it_must():
    from auth.passwords import verify_password

    office = user("office")
    target = user("u03.staff")
    old_unit, new_unit = target.unit, user("u04.staff").unit
    same = dict(display_name=target.display_name, role=target.role, unit_id=target.unit_id, active=True)
    version = target.session_version

    assert admin.update_user(target, office, **same) == admin.UserUpdate({}, False)
    assert entries("user_updated") == []

    result = admin.update_user(target, office, **{**same, "display_name": "王五"})
    assert result == admin.UserUpdate({"display_name": {"old": same["display_name"], "new": "王五"}}, False)
    assert target.session_version == version

    result = admin.update_user(target, office, **{**same, "display_name": "王五", "unit_id": new_unit.id})
    assert result.changes == {"unit_id": {"old": old_unit.id, "new": new_unit.id},
                              "unit": {"old": old_unit.name, "new": new_unit.name}}
    assert not result.sessions_ended and target.session_version == version

    result = admin.update_user(target, office, role="unit_leader")
    assert result == admin.UserUpdate({"role": {"old": "unit_staff", "new": "unit_leader"}}, True)
    assert target.session_version == version + 1

    result = admin.update_user(target, office, password="Reset2026a")
    assert result == admin.UserUpdate({"password": "reset"}, True)
    assert verify_password(target.password_hash, "Reset2026a") and target.session_version == version + 2

    result = admin.update_user(target, office, active=False)
    assert result == admin.UserUpdate({"active": {"old": True, "new": False}}, True)
    assert target.session_version == version + 3
    db.session.commit()

    details = [e.details for e in entries("user_updated")]
    assert [d["changes"] for d in details] == [
        {"display_name": {"old": same["display_name"], "new": "王五"}},
        {"unit_id": {"old": old_unit.id, "new": new_unit.id}, "unit": {"old": old_unit.name, "new": new_unit.name}},
        {"role": {"old": "unit_staff", "new": "unit_leader"}},
        {"password": "reset"},
        {"active": {"old": True, "new": False}},
    ]
    assert [d["sessions_ended"] for d in details] == [False, False, True, True, True]
    assert all((d["user_id"], d["username"]) == (target.id, "u03.staff") for d in details)
    assert "Reset2026a" not in json.dumps(details)
    assert {e.username for e in entries("user_updated")} == {"office"}


@pytest.mark.parametrize("change, message, field", [
    ({"role": "viewer"}, "不能修改自己的角色", "role"),
    ({"active": False}, "停用自己的账号", "role"),
])
def test_an_admin_cannot_demote_or_disable_themself(change, message, field):
    office = user("office")
    before = (office.display_name, office.role, office.active, office.session_version)
    refused(lambda: admin.update_user(office, office, display_name="新名字", **change), message, field)
    assert (office.display_name, office.role, office.active, office.session_version) == before
    assert before[1:3] == ("office_admin", True)


@pytest.mark.parametrize("change, message, field", [
    ({"password": "short1"}, "密码至少需要 8 位", "password"),
    ({"unit_id": 999999}, "请选择单位", "unit_id"),
    ({"role": "root"}, "请选择角色", "role"),
    ({"display_name": " "}, "请填写姓名", "display_name"),
    ({"username": "renamed"}, "字段“username”不能修改", None),
    ({"session_version": 1}, "字段“session_version”不能修改", None),
])
def test_update_user_refusals_change_nothing(change, message, field):
    office = user("office")
    target = user("u03.staff")
    before = (target.display_name, target.role, target.session_version, target.password_hash)
    # The valid change beside the bad one must not land either.
    refused(lambda: admin.update_user(target, office, **{"display_name": "王五", **change}), message, field)
    assert (target.display_name, target.role, target.session_version, target.password_hash) == before


# ---------------------------------------------------------------- units and aliases

def test_units_are_created_and_edited_with_their_entries():
    office = user("office")
    unit = admin.create_unit(office, name="区档案馆", kind="center")
    assert entries("unit_created")[-1].details == {"unit_id": unit.id, "name": "区档案馆", "kind": "center"}

    assert admin.update_unit(unit, office, name="区档案馆", kind="center") == {}
    assert entries("unit_updated") == []
    diff = admin.update_unit(unit, office, name="区档案局", kind="bureau")
    assert diff == {"name": {"old": "区档案馆", "new": "区档案局"}, "kind": {"old": "center", "new": "bureau"}}
    assert (unit.name, unit.kind) == ("区档案局", "bureau")
    assert admin.update_unit(unit, office, name="区档案局", kind="center") == {"kind": {"old": "bureau",
                                                                                    "new": "center"}}
    db.session.commit()
    assert [e.details for e in entries("unit_updated")] == [
        {"unit_id": unit.id, "changes": diff},
        {"unit_id": unit.id, "changes": {"kind": {"old": "bureau", "new": "center"}}}]
    assert audit.verify() == []


def test_unit_name_refusals_change_nothing():
    office = user("office")
    alias = some_alias()
    other = unit_named("区财政局")
    refused(lambda: admin.create_unit(office, name="区财政局", kind="bureau"), "已有同名单位", "name")
    refused(lambda: admin.create_unit(office, name=alias.alias, kind="bureau"),
            f"该名称已登记为“{alias.unit.name}”的别名", "name")
    refused(lambda: admin.create_unit(office, name="区档案馆", kind="castle"), "请选择类别", "kind")
    refused(lambda: admin.create_unit(office, name="区" * 101, kind="center"), "单位名称不能超过 100 字", "name")
    unit = unit_named("区发展改革局")
    name = unit.name
    refused(lambda: admin.update_unit(unit, office, name=other.name, kind=unit.kind), "已有同名单位", "name")
    refused(lambda: admin.update_unit(unit, office, name=alias.alias, kind="bureau"), "的别名", "name")
    assert unit.name == name


def test_aliases_are_added_and_removed_with_their_entries():
    from models import UnitAlias

    office = user("office")
    unit = unit_named("区财政局")
    row = admin.add_alias(office, alias=" 区财政 ", unit_id=unit.id)
    assert row.alias == "区财政"
    details = {"alias_id": row.id, "alias": "区财政", "unit_id": unit.id, "unit": "区财政局"}
    assert entries("alias_added")[-1].details == details
    alias_id = row.id
    assert admin.remove_alias(row, office) == details
    db.session.commit()
    assert db.session.get(UnitAlias, alias_id) is None
    assert entries("alias_removed")[-1].details == details
    assert entries("alias_removed")[-1].username == "office"


def test_alias_refusals_change_nothing():
    office = user("office")
    existing = some_alias()
    unit = unit_named("区财政局")
    refused(lambda: admin.add_alias(office, alias=existing.alias, unit_id=unit.id), "已存在", "alias")
    refused(lambda: admin.add_alias(office, alias="区财政局", unit_id=unit.id), "本身就是一个单位的名称", "alias")
    refused(lambda: admin.add_alias(office, alias="", unit_id=unit.id), "请填写别名", "alias")
    refused(lambda: admin.add_alias(office, alias="区财政", unit_id=999999), "请选择单位", "unit_id")


def test_a_name_taken_after_the_check_is_a_chinese_refusal(monkeypatch):
    """The unique constraints are the last guard: a writer that took no lock
    (a plan import) may create the name between the check and the flush."""
    office = user("office")
    for check in ("username_problem", "unit_name_problem", "alias_problem"):
        monkeypatch.setattr(admin, check, lambda *args: None)
    existing = some_alias()
    unit = unit_named("区发展改革局")
    for call in (
        lambda: admin.create_user(office, username="u02.staff", display_name="重名", unit_id=unit.id,
                                  role="unit_staff", password="Zhang2026x"),
        lambda: admin.create_unit(office, name="区财政局", kind="bureau"),
        lambda: admin.update_unit(unit, office, name="区财政局", kind=unit.kind),
        lambda: admin.add_alias(office, alias=existing.alias, unit_id=unit.id),
    ):
        refused(call, admin.RACE_MESSAGE)


# ---------------------------------------------------------------- audit.changes

def test_changes_lists_what_differs_as_json_and_applies_it():
    task = SimpleNamespace(text="旧内容", deadline=date(2022, 12, 31), deadline_text="2022年12月", long_term=False)
    new = {"text": "旧内容", "deadline": date(2023, 6, 30), "deadline_text": None, "long_term": False}
    diff = audit.changes(task, new, apply=False)
    assert diff == {"deadline": {"old": "2022-12-31", "new": "2023-06-30"},
                    "deadline_text": {"old": "2022年12月", "new": None}}
    assert list(diff) == ["deadline", "deadline_text"]
    assert task.deadline == date(2022, 12, 31)            # apply=False leaves the object alone
    assert json.loads(json.dumps(diff)) == diff

    assert audit.changes(task, new) == diff
    assert (task.deadline, task.deadline_text) == (date(2023, 6, 30), None)
    assert audit.changes(task, new) == {}                 # now nothing differs
    assert audit.changes(task, {"long_term": True, "deadline": None}) == {
        "long_term": {"old": False, "new": True}, "deadline": {"old": "2023-06-30", "new": None}}


# ---------------------------------------------------------------- one namespace for unit names and aliases

def test_a_unit_and_an_alias_of_one_name_written_at_once_one_is_refused(app):
    """No constraint spans the two tables: the second writer must wait for the
    first and then see its name (PostgreSQL: the advisory lock; SQLite: BEGIN
    IMMEDIATE). Otherwise both would commit and an import could not tell
    which body the name means."""
    import threading
    import time

    from models import Unit, UnitAlias
    from workflow.sqlite import write_transactions

    name = "区档案委"
    unit_id = unit_named("区财政局").id
    db.session.rollback()
    alias_flushed, second_started = threading.Event(), threading.Event()
    outcome: dict = {}

    def first():
        with app.app_context():
            write_transactions(True)
            try:
                admin.add_alias(user("office"), alias=name, unit_id=unit_id)
                alias_flushed.set()
                second_started.wait(10)
                time.sleep(0.5)                # the second writer is now at its check
                db.session.commit()
            finally:
                alias_flushed.set()
                db.session.remove()

    def second():
        with app.app_context():
            write_transactions(True)
            try:
                alias_flushed.wait(10)
                second_started.set()
                admin.create_unit(user("office"), name=name, kind="center")
                db.session.commit()
                outcome["second"] = "created"
            except Refused as exc:
                db.session.rollback()
                outcome["second"] = exc.message
            finally:
                db.session.remove()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome["second"] == "该名称已登记为“区财政局”的别名，请先删除该别名。"
    assert db.session.scalar(select(UnitAlias.unit_id).where(UnitAlias.alias == name)) == unit_id
    assert db.session.scalar(select(Unit.id).where(Unit.name == name)) is None
    assert audit.verify() == []
