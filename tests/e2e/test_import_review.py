"""The import review in a real browser: upload a hand-kept Excel ledger, read its columns, decide a
name, review again, confirm — and the plan is there as the review showed it."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.fidelity import SHAPES
from workflow.extensions import db

PASSWORD = "demo-2026"


@pytest.fixture
def db_template():
    return "empty"


def test_the_office_imports_a_ledger_through_the_review(app, office_client, live_server, browser, tmp_path):
    from models import Plan, Task, UnitAlias

    base = live_server
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/auth/login")
    page.fill("#username", "office")
    page.fill("#password", PASSWORD)
    page.click("text=登录 >> nth=-1")
    page.wait_for_url(re.compile(r"^(?!.*auth/login).*$"))

    page.goto(f"{base}/plans/import")
    page.set_input_files("input[type=file]", str(SHAPES / "table-ledger.xlsx"))
    page.click("#submit")
    page.wait_for_selector("#shape")
    assert page.inner_text("#shape") == "任务表格"
    assert page.locator("#columns select").count() >= 8
    page.screenshot(path=str(tmp_path / "review-columns.png"), full_page=True)

    # The first name the importer asks about: the office says it is no unit.
    first = page.locator("#names tbody tr").first
    name = first.locator("td").first.inner_text()
    first.locator("select").select_option("text")
    page.click("#again")
    page.wait_for_selector("#names")
    row = page.locator("#names tbody tr", has_text=name).first
    assert row.locator("select").input_value() == "text"
    page.click("#confirm")
    page.wait_for_url(re.compile(r".*/plans/\d+$"))
    assert "导入成功" in page.content()
    page.screenshot(path=str(tmp_path / "imported.png"), full_page=True)
    with app.app_context():
        plan = db.session.scalar(select(Plan))
        assert plan.shape == "table" and plan.title == "东港区2022年稳增长重点工作推进台账"
        assert db.session.scalar(select(UnitAlias).where(UnitAlias.alias == name)).not_a_unit
        assert any(name in t.addressees for t in db.session.scalars(select(Task)))
    context.close()
