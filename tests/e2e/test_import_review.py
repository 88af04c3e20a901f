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


def _signed_in_as_office(browser, base):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{base}/auth/login")
    page.fill("#username", "office")
    page.fill("#password", PASSWORD)
    page.click("text=登录 >> nth=-1")
    page.wait_for_url(re.compile(r"^(?!.*auth/login).*$"))
    return context, page


def test_the_office_imports_a_ledger_through_the_review(app, office_client, live_server, browser, tmp_path):
    from models import Plan, Task, UnitAlias

    base = live_server
    context, page = _signed_in_as_office(browser, base)

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


def test_the_office_imports_another_districts_compilation_and_an_old_word_table(app, office_client, live_server,
                                                                                browser, tmp_path):
    """Another district's wording (label words, two contacts, a deadline written only in a sentence),
    and a .doc saved by an older Word: both through the same review; the sentence's deadline is taken
    because the office ticked it."""
    from models import Plan, Task

    base = live_server
    context, page = _signed_in_as_office(browser, base)

    page.goto(f"{base}/plans/import")
    page.set_input_files("input[type=file]", str(SHAPES / "compilation-other-wording.txt"))
    page.click("#submit")
    page.wait_for_selector("#shape")
    assert page.inner_text("#shape") == "实施方案汇编（第N项）"
    proposals = page.locator("#deadlines input[type=checkbox]")
    assert proposals.count() == 2 and "2023年10月底前" in page.inner_text("#deadlines")
    page.screenshot(path=str(tmp_path / "review-compilation.png"), full_page=True)
    page.locator("#deadlines li", has_text="2023年10月底前").locator("input").check()
    page.click("#again")
    page.wait_for_selector("#deadlines")
    assert page.locator("#deadlines li", has_text="2023年10月底前").locator("input").is_checked()
    page.click("#confirm")
    page.wait_for_url(re.compile(r".*/plans/\d+$"))
    assert "导入成功" in page.content()
    with app.app_context():
        task = db.session.scalar(select(Task).where(Task.text.like("组织符合条件的项目申报市级补助%")))
        assert task.deadline.isoformat() == "2023-10-31" and task.deadline_text == "2023年10月底前"
        other = db.session.scalar(select(Task).where(Task.text.like("督促区属国有企业%")))
        assert other.deadline is None and not other.long_term      # not ticked: not taken

    page.goto(f"{base}/plans/import")
    page.set_input_files("input[type=file]", str(SHAPES / "table-word-doc.doc"))
    page.click("#submit")
    page.wait_for_selector("#shape")
    assert page.inner_text("#shape") == "任务表格"
    page.screenshot(path=str(tmp_path / "review-doc.png"), full_page=True)
    page.click("#confirm")
    page.wait_for_url(re.compile(r".*/plans/\d+$"))
    with app.app_context():
        plan = db.session.scalar(select(Plan).where(Plan.shape == "table"))
        assert plan.title == "南湖区2022年优化营商环境重点任务责任分工表"
        assert sum(len(i.tasks) for i in plan.items) == 16
    context.close()
