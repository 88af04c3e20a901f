"""Hostile and odd input: clear answers, never a 500, never a way off the site."""
from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import select

from tests.helpers import csrf_token, log_in, unit_user, unit_username
from workflow.extensions import db


@pytest.fixture
def db_template():
    return "seed"


@pytest.mark.parametrize("target,expected", [
    ("/%09/evil.example", "/"),        # browsers drop the tab: //evil.example
    ("/%0a/x", "/"),                   # a newline must not reach the Location header
    ("/%5C%5Cevil.example", "/"),      # backslashes read as slashes
    ("https://evil.example/", "/"),
    ("//evil.example/", "/"),
    ("/tasks/?state=planned", "/tasks/?state=planned"),
])
def test_login_next_stays_on_the_site(client, target, expected):
    token = csrf_token(client, "/auth/login")
    response = client.post(f"/auth/login?next={target}", data={"csrf_token": token, "username": "office",
                                                               "password": "demo-2026"})
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_nul_bytes_are_refused_before_anything_runs(client):
    token = csrf_token(client, "/auth/login")
    response = client.post("/auth/login", data={"csrf_token": token, "username": "office\x00", "password": "x"})
    assert response.status_code == 400
    assert "无效字符" in response.get_data(as_text=True)
    log_in(client, "office")
    for path in ("/tasks/?q=a%00b", "/audit?user=a%00b", "/plans/1/items/1%00"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert "无效字符" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/plans/99999999999999999999", "/plans/99999999999999999999/items/1",
                                  "/plans/99999999999999999999/export.json", "/reports/99999999999999999999",
                                  "/reports/99999999999999999999/download"])
def test_huge_ids_are_not_found(client, path):
    log_in(client, "office")
    assert client.get(path).status_code == 404


def test_audit_log_ignores_dates_out_of_range(client):
    log_in(client, "office")
    response = client.get("/audit?date_to=9999-12-31&date_from=0001-01-01")
    assert response.status_code == 200
    assert "超出范围" in response.get_data(as_text=True)


def test_docx_zip_bomb_is_refused():
    from workflow.importer.draft import DocumentError
    from workflow.importer.parse import parse_bytes

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:p/>" * 20_000_000)   # 120 MB of nothing, ~120 KB packed
    with pytest.raises(DocumentError, match="解压后过大"):
        parse_bytes(buffer.getvalue(), "bomb.docx")


def test_item_page_shows_state_only_to_those_who_may_see_the_task(app, client):
    from models import Item, Unit

    with app.app_context():
        item = db.session.scalar(select(Item).where(Item.number == "1"))
        task_ids = [t.id for t in item.tasks]
        outsider = db.session.scalar(select(Unit).where(Unit.name == "区民政局"))
        username = unit_username(outsider, "staff")
        plan_id = item.plan_id
    log_in(client, username)
    html = client.get(f"/plans/{plan_id}/items/1").get_data(as_text=True)
    assert "按照“资金跟着项目走”原则" in html          # the compilation itself is public to all units
    for task_id in task_ids:
        assert f'href="/tasks/{task_id}"' not in html
    assert "badge planned" not in html


def test_plan_page_costs_a_fixed_number_of_queries(app, client, count_queries):
    log_in(client, "office")
    with app.app_context():
        from models import Plan

        plan_id = db.session.scalar(select(Plan.id))
    with count_queries() as statements:
        assert client.get(f"/plans/{plan_id}").status_code == 200
    assert len(statements) < 20, len(statements)


def test_adding_evidence_moves_the_part_version(app):
    """So that an upload racing a submit of the same part loses instead of
    landing as pending evidence on a submitted part."""
    from models import Item
    from workflow import services

    with app.app_context():
        task = next(t for t in db.session.scalar(select(Item).where(Item.number == "1")).tasks if t.seq == 1)
        part = task.parts[0]
        staff = unit_user(part.unit_id, "staff")
        services.start_part(part, staff)
        db.session.commit()
        before = part.version
        services.add_text_evidence(part, staff, "已建立台账。", expected_version=before)
        db.session.commit()
        assert part.version == before + 1
        with pytest.raises(services.Stale):
            services.submit_part(part, staff, statement="已完成", expected_version=before)
        db.session.rollback()
