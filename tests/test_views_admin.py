"""User, unit and alias administration and the audit log, over HTTP."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.helpers import csrf, unit_username

PASSWORD = "demo-2026"


@pytest.fixture
def db_template() -> str:
    return "seed"



def flashes(html: str) -> list[tuple[str, str]]:
    return re.findall(r'class="flash (\w+)" role="alert">([^<]*)<', html)


def entries(app, action: str):
    from models import AuditEntry
    from workflow.extensions import db

    with app.app_context():
        return [(e.username, e.details) for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))]


def get_user(app, username: str):
    from models import User
    from workflow.extensions import db

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        if user is not None:
            db.session.expunge(user)
        return user


def signed_in(client) -> bool:
    response = client.get("/tasks/")
    return response.status_code == 200


def test_only_the_office_admin_manages(app, login):
    anonymous = app.test_client()
    assert anonymous.get("/admin/users").status_code == 302
    for username in ("office2", "leader", "u02.leader"):
        client = login(username)
        for url in ("/admin/users", "/admin/units", "/admin/aliases", "/admin/users/new", "/admin/users/1"):
            assert client.get(url).status_code == 403, (username, url)
        assert client.post("/admin/units/new", data={"csrf_token": csrf(client.get("/").text),
                                                     "name": "新单位", "kind": "bureau"}).status_code == 403
    office = login("office")
    for url in ("/admin/users", "/admin/units", "/admin/aliases", "/admin/users/new", "/admin/units/2"):
        assert office.get(url).status_code == 200, url
    assert office.get("/admin/users/999999").status_code == 404


def test_create_user_then_role_change_ends_their_session(app, login):
    office = login("office")
    page = office.get("/admin/users/new")
    unit_id = get_user(app, "u02.staff").unit_id
    form = {"csrf_token": csrf(page.text), "username": "u02.zhang", "display_name": "张三", "unit_id": str(unit_id),
            "role": "unit_staff", "active": "y", "password": "weak"}
    response = office.post("/admin/users/new", data=form)
    assert response.status_code == 400 and "密码至少需要 8 位" in response.text
    assert get_user(app, "u02.zhang") is None
    response = office.post("/admin/users/new", data={**form, "username": "u02.staff", "password": "Zhang2026x"})
    assert response.status_code == 400 and "该用户名已被使用" in response.text
    response = office.post("/admin/users/new", data={**form, "password": "Zhang2026x"}, follow_redirects=True)
    assert ("success" in dict(flashes(response.text)))
    created = get_user(app, "u02.zhang")
    assert (created.role, created.unit_id, created.display_name, created.active) == ("unit_staff", unit_id, "张三", True)
    assert entries(app, "user_created")[-1] == ("office", {
        "user_id": created.id, "username": "u02.zhang", "display_name": "张三", "role": "unit_staff",
        "unit_id": unit_id, "unit": "区发展改革局", "active": True})

    zhang = login("u02.zhang", "Zhang2026x")
    assert signed_in(zhang)
    # A display-name change alone keeps the session.
    page = office.get(f"/admin/users/{created.id}")
    base = {"csrf_token": csrf(page.text), "display_name": "张三丰", "unit_id": str(unit_id), "role": "unit_staff",
            "active": "y", "password": ""}
    office.post(f"/admin/users/{created.id}", data=base)
    assert signed_in(zhang)
    response = office.post(f"/admin/users/{created.id}", data={**base, "role": "unit_leader"}, follow_redirects=True)
    assert "该用户需重新登录" in response.text
    assert not signed_in(zhang)
    assert zhang.get("/tasks/").headers["Location"].startswith("/auth/login")
    assert get_user(app, "u02.zhang").role == "unit_leader"
    username, details = entries(app, "user_updated")[-1]
    assert username == "office"
    assert details["changes"] == {"role": {"old": "unit_staff", "new": "unit_leader"}}
    assert details["sessions_ended"] is True
    assert entries(app, "user_updated")[0][1]["changes"] == {"display_name": {"old": "张三", "new": "张三丰"}}
    # They can sign in again, now as a leader.
    assert login("u02.zhang", "Zhang2026x").get("/tasks/verify").status_code == 200


def test_deactivate_reset_password_and_unit_change(app, login):
    office = login("office")
    target = get_user(app, "u03.staff")
    other_unit = get_user(app, "u04.staff").unit_id
    victim = login("u03.staff")
    page = office.get(f"/admin/users/{target.id}")
    base = {"csrf_token": csrf(page.text), "display_name": target.display_name, "unit_id": str(target.unit_id),
            "role": target.role, "active": "y", "password": ""}

    office.post(f"/admin/users/{target.id}", data={**base, "password": "Reset2026a"})
    assert not signed_in(victim)
    login("u03.staff", PASSWORD, expect=401)
    victim = login("u03.staff", "Reset2026a")
    assert entries(app, "user_updated")[-1][1]["changes"] == {"password": "reset"}

    office.post(f"/admin/users/{target.id}", data={**base, "unit_id": str(other_unit)})
    changes = entries(app, "user_updated")[-1][1]["changes"]
    assert changes["unit_id"] == {"old": target.unit_id, "new": other_unit}
    assert changes["unit"]["new"] == "区工业和信息化局"

    office.post(f"/admin/users/{target.id}", data={**{k: v for k, v in base.items() if k != "active"},
                                                   "unit_id": str(other_unit)})
    assert get_user(app, "u03.staff").active is False
    assert not signed_in(victim)
    login("u03.staff", "Reset2026a", expect=401)
    assert entries(app, "user_updated")[-1][1]["changes"] == {"active": {"old": True, "new": False}}


def test_admin_cannot_demote_or_disable_themself(app, login):
    office = login("office")
    me = get_user(app, "office")
    page = office.get(f"/admin/users/{me.id}")
    response = office.post(f"/admin/users/{me.id}", data={
        "csrf_token": csrf(page.text), "display_name": me.display_name, "unit_id": str(me.unit_id),
        "role": "viewer", "active": "y"})
    assert response.status_code == 400 and "不能修改自己的角色" in response.text
    assert get_user(app, "office").role == "office_admin" and signed_in(office)


def test_units_and_aliases_are_audited(app, login):
    from models import Unit, UnitAlias
    from workflow.extensions import db

    office = login("office")
    token = csrf(office.get("/admin/units").text)
    response = office.post("/admin/units/new", data={"csrf_token": token, "name": "区档案馆", "kind": "center"},
                           follow_redirects=True)
    assert ("success", "已新建单位“区档案馆”。") in flashes(response.text)
    with app.app_context():
        unit = db.session.scalar(select(Unit).where(Unit.name == "区档案馆"))
        unit_id = unit.id
    assert entries(app, "unit_created")[-1][1] == {"unit_id": unit_id, "name": "区档案馆", "kind": "center"}
    response = office.post("/admin/units/new", data={"csrf_token": token, "name": "区档案馆", "kind": "center"},
                           follow_redirects=True)
    assert ("danger", "已有同名单位。") in flashes(response.text)

    response = office.post(f"/admin/units/{unit_id}", data={"csrf_token": token, "name": "区档案局", "kind": "bureau"},
                           follow_redirects=True)
    assert "单位信息已保存" in response.text
    assert entries(app, "unit_updated")[-1][1] == {"unit_id": unit_id, "changes": {
        "name": {"old": "区档案馆", "new": "区档案局"}, "kind": {"old": "center", "new": "bureau"}}}
    response = office.post(f"/admin/units/{unit_id}", data={"csrf_token": token, "name": "区财政局", "kind": "bureau"})
    assert response.status_code == 400 and "已有同名单位" in response.text

    response = office.post("/admin/aliases", data={"csrf_token": token, "alias": "区档案馆", "unit_id": str(unit_id)},
                           follow_redirects=True)
    assert "已添加别名" in response.text
    with app.app_context():
        alias_id = db.session.scalar(select(UnitAlias.id).where(UnitAlias.alias == "区档案馆"))
    assert entries(app, "alias_added")[-1][1] == {"alias_id": alias_id, "alias": "区档案馆", "unit_id": unit_id,
                                                  "unit": "区档案局"}
    for alias, message in (("区档案馆", "已存在"), ("区财政局", "本身就是一个单位的名称")):
        response = office.post("/admin/aliases", data={"csrf_token": token, "alias": alias, "unit_id": str(unit_id)},
                               follow_redirects=True)
        assert message in response.text
    # A unit may not take a name that is already another unit's alias.
    response = office.post("/admin/units/new", data={"csrf_token": token, "name": "区档案馆", "kind": "center"},
                           follow_redirects=True)
    assert "别名" in flashes(response.text)[0][1]
    assert "区档案馆" in office.get("/admin/aliases").text

    response = office.post(f"/admin/aliases/{alias_id}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert ("success", "已删除别名“区档案馆”。") in flashes(response.text)
    assert entries(app, "alias_removed")[-1][1]["alias"] == "区档案馆"
    with app.app_context():
        assert db.session.get(UnitAlias, alias_id) is None
    assert office.post(f"/admin/aliases/{alias_id}/delete", data={"csrf_token": token}).status_code == 404


def test_a_phrase_that_names_no_unit_is_registered_listed_and_blocks_a_unit_of_that_name(app, login):
    from models import UnitAlias
    from workflow.extensions import db

    office = login("office")
    token = csrf(office.get("/admin/aliases").text)
    response = office.post("/admin/aliases", data={"csrf_token": token, "alias": "专班成员单位", "unit_id": "0"},
                           follow_redirects=True)
    assert "“专班成员单位”不是单位" in response.text
    with app.app_context():
        row = db.session.scalar(select(UnitAlias).where(UnitAlias.alias == "专班成员单位"))
        assert row.not_a_unit
    assert entries(app, "alias_added")[-1][1]["unit"] is None
    page = office.get("/admin/aliases").text
    assert "专班成员单位" in page and "不是单位（作为文字保留）" in page
    response = office.post("/admin/units/new", data={"csrf_token": token, "name": "专班成员单位", "kind": "other"},
                           follow_redirects=True)
    assert "不是单位" in flashes(response.text)[0][1]
    response = office.post(f"/admin/aliases/{row.id}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert ("success", "已删除别名“专班成员单位”。") in flashes(response.text)


def test_audit_log_filters(app, login):
    from models import Task, TaskPart
    from workflow.extensions import db

    with app.app_context():
        part = db.session.scalar(select(TaskPart).join(Task).order_by(Task.id))
        task_id, part_id, unit_id = part.task_id, part.id, part.unit_id
    staff_name = unit_username(unit_id, "staff")
    staff = login(staff_name)
    page = staff.get(f"/tasks/{task_id}")
    version = re.search(r'parts/%d/start".*?name="version" value="(\d+)"' % part_id, page.text, re.S).group(1)
    staff.post(f"/tasks/{task_id}/parts/{part_id}/start", data={"csrf_token": csrf(page.text), "version": version})
    login("u05.leader")

    office2 = login("office2")

    def rows(query: str) -> list[str]:
        html = office2.get("/audit" + query).text
        body = html[html.index("<tbody>"):html.index("</tbody>")]
        return re.findall(r'<td data-label="用户">(?:<a [^>]*>([^<]+)</a>|<span class="muted">(系统)</span>)', body)

    everyone = rows("")
    assert everyone and len(everyone) <= app.config["PER_PAGE"]
    assert {u for u, _ in rows(f"?user={staff_name}")} == {staff_name}
    assert {u for u, _ in rows("?user=u05.leader&action=login")} == {"u05.leader"}
    assert rows("?user=u05.leader&action=transition") == []
    assert {u for u, _ in rows(f"?task={task_id}")} == {staff_name}
    assert {u for u, _ in rows(f"?unit={unit_id}")} == {staff_name}
    html = office2.get(f"/audit?task={task_id}").text
    assert "开始办理" in html and "127.0.0.1" in html
    assert rows("?date_from=2099-12-31") == []   # a future day: nothing yet (dates past 2100 are ignored)
    assert rows("?date_to=2000-01-01") == []
    from workflow.timeutil import today_local

    assert {u for u, _ in rows(f"?date_from={today_local().isoformat()}&date_to={today_local().isoformat()}&user=u05.leader")} == {"u05.leader"}
    bad = office2.get("/audit?date_from=yesterday&task=abc")
    assert bad.status_code == 200 and "格式不正确" in bad.text
    for username in ("leader", staff_name):
        assert login(username).get("/audit").status_code == 403


# ---------------------------------------------------------------- writes through the admin services

def admin_rows(app) -> dict:
    from models import AuditEntry, Unit, UnitAlias, User
    from tests.helpers import row_counts
    from workflow.extensions import db

    with app.app_context():
        return row_counts(db, AuditEntry, Unit, UnitAlias, User)


def any_alias(app) -> tuple[int, str, int]:
    from models import UnitAlias
    from workflow.extensions import db

    with app.app_context():
        row = db.session.scalar(select(UnitAlias).order_by(UnitAlias.id))
        return row.id, row.alias, row.unit_id


@pytest.mark.parametrize("username", ["office2", "leader", "u02.leader", "u02.staff"])
def test_every_admin_write_is_refused_to_others(app, username, login):
    target = get_user(app, "u03.staff")
    alias_id, _, alias_unit = any_alias(app)
    client = login(username)
    token = csrf(client.get("/").text)
    before = admin_rows(app)
    user_form = {"csrf_token": token, "display_name": "改名", "unit_id": str(target.unit_id), "role": "viewer",
                 "password": "Reset2026a"}
    for url, data in (
        ("/admin/users/new", {**user_form, "username": "x.new", "active": "y"}),
        (f"/admin/users/{target.id}", user_form),
        ("/admin/units/new", {"csrf_token": token, "name": "区档案馆", "kind": "center"}),
        (f"/admin/units/{target.unit_id}", {"csrf_token": token, "name": "区档案局", "kind": "bureau"}),
        ("/admin/aliases", {"csrf_token": token, "alias": "区档案委", "unit_id": str(alias_unit)}),
        (f"/admin/aliases/{alias_id}/delete", {"csrf_token": token}),
    ):
        assert client.post(url, data=data).status_code == 403, url
    assert admin_rows(app) == before
    after = get_user(app, "u03.staff")
    assert (after.display_name, after.role, after.active, after.password_hash, after.session_version) == (
        target.display_name, target.role, target.active, target.password_hash, target.session_version)


def test_name_conflicts_are_shown_at_their_field(app, login):
    office = login("office")
    _, alias, alias_unit = any_alias(app)
    unit_id = get_user(app, "u04.staff").unit_id
    assert unit_id != alias_unit
    name = entries_unit(app, unit_id)
    token = csrf(office.get(f"/admin/units/{unit_id}").text)
    before = admin_rows(app)
    response = office.post(f"/admin/units/{unit_id}", data={"csrf_token": token, "name": f" {alias} ",
                                                            "kind": "bureau"})
    assert response.status_code == 400
    assert re.search(r'<div class="errors">该名称已登记为“[^”]+”的别名，请先删除该别名。</div>', response.text)
    assert admin_rows(app) == before and entries_unit(app, unit_id) == name
    # Its own name is no conflict: only the kind changes.
    response = office.post(f"/admin/units/{unit_id}", data={"csrf_token": token, "name": name, "kind": "center"},
                           follow_redirects=True)
    assert ("success", "单位信息已保存。") in flashes(response.text)
    assert entries(app, "unit_updated")[-1][1]["changes"] == {"kind": {"old": "bureau", "new": "center"}}

    page = office.get("/admin/users/new")
    response = office.post("/admin/users/new", data={
        "csrf_token": csrf(page.text), "username": "U02.STAFF", "display_name": "重名", "unit_id": str(unit_id),
        "role": "unit_staff", "active": "y", "password": "Zhang2026x"})
    assert response.status_code == 400 and '<div class="errors">该用户名已被使用。</div>' in response.text
    response = office.post("/admin/users/new", data={
        "csrf_token": csrf(page.text), "username": "u02.li", "display_name": "李四", "unit_id": str(unit_id),
        "role": "unit_staff", "active": "y", "password": "password"})
    assert response.status_code == 400 and '<div class="errors">密码需同时包含字母和数字。</div>' in response.text
    assert admin_rows(app)["User"] == before["User"] and get_user(app, "u02.li") is None


def test_a_name_taken_meanwhile_is_a_message_not_a_500(app, monkeypatch, login):
    """Another writer (a plan import) may create the same name after the form's
    check: the unique constraint refuses it, and the admin reads why."""
    from workflow import admin_services

    for check in ("username_problem", "unit_name_problem", "alias_problem"):
        monkeypatch.setattr(admin_services, check, lambda *args: None)
    office = login("office")
    _, alias, alias_unit = any_alias(app)
    token = csrf(office.get("/admin/units").text)
    before = admin_rows(app)

    response = office.post("/admin/units/new", data={"csrf_token": token, "name": "区财政局", "kind": "bureau"},
                           follow_redirects=True)
    assert response.status_code == 200
    assert ("danger", admin_services.RACE_MESSAGE) in flashes(response.text)
    response = office.post("/admin/aliases", data={"csrf_token": token, "alias": alias, "unit_id": str(alias_unit)},
                           follow_redirects=True)
    assert ("danger", admin_services.RACE_MESSAGE) in flashes(response.text)
    unit_id = get_user(app, "u02.staff").unit_id
    response = office.post(f"/admin/units/{unit_id}", data={"csrf_token": token, "name": "区财政局",
                                                            "kind": "bureau"})
    assert response.status_code == 409 and admin_services.RACE_MESSAGE in response.text
    response = office.post("/admin/users/new", data={
        "csrf_token": token, "username": "u02.staff", "display_name": "重名", "unit_id": str(unit_id),
        "role": "unit_staff", "active": "y", "password": "Zhang2026x"})
    assert response.status_code == 409 and admin_services.RACE_MESSAGE in response.text
    assert admin_rows(app) == before


def test_removing_an_alias_needs_the_csrf_token_and_returns_to_its_unit(app, login):
    office = login("office")
    alias_id, alias, unit_id = any_alias(app)
    before = admin_rows(app)
    assert office.post(f"/admin/aliases/{alias_id}/delete", data={"back": str(unit_id)}).status_code == 400
    assert admin_rows(app) == before
    token = csrf(office.get(f"/admin/units/{unit_id}").text)
    response = office.post(f"/admin/aliases/{alias_id}/delete", data={"csrf_token": token, "back": str(unit_id)})
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/units/{unit_id}"
    assert entries(app, "alias_removed")[-1] == ("office", {"alias_id": alias_id, "alias": alias,
                                                            "unit_id": unit_id, "unit": entries_unit(app, unit_id)})


def entries_unit(app, unit_id: int) -> str:
    from models import Unit
    from workflow.extensions import db

    with app.app_context():
        return db.session.get(Unit, unit_id).name


def test_names_typed_by_the_admin_are_escaped(app, login):
    office = login("office")
    unit_id = get_user(app, "u02.staff").unit_id
    token = csrf(office.get("/admin/aliases").text)
    response = office.post("/admin/aliases", data={"csrf_token": token, "alias": "<b>区档案委</b>",
                                                   "unit_id": str(unit_id)}, follow_redirects=True)
    assert "已添加别名：“&lt;b&gt;区档案委&lt;/b&gt;”" in response.text and "<b>区档案委" not in response.text
    assert "&lt;b&gt;区档案委&lt;/b&gt;" in office.get(f"/admin/units/{unit_id}").text
