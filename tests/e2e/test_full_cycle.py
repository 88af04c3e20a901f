"""The whole cycle in a real browser: staff submits with a file, a leader of
another unit returns it with a reason, staff resubmits, the leader verifies,
the office closes, and the task's timeline shows every step."""
from __future__ import annotations

import os
import re

import pytest
from sqlalchemy import select

from tests.helpers import unit_username
from workflow.extensions import db

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PASSWORD = "demo-2026"


@pytest.fixture
def db_template():
    return "seed"


@pytest.fixture
def subject(app):
    """Item 1's first 工作任务: led by 区发展改革局, done by 区财政局."""
    from models import Item, Unit

    with app.app_context():
        item = db.session.scalar(select(Item).where(Item.number == "1"))
        task = next(t for t in item.tasks if t.kind == "task" and t.seq == 1)
        part = task.parts[0]
        staff_unit = db.session.scalar(select(Unit).where(Unit.name == "区财政局"))
        lead_unit = db.session.scalar(select(Unit).where(Unit.name == "区发展改革局"))
        return {"task": task.id, "part": part.id, "staff": unit_username(staff_unit, "staff"),
                "leader": unit_username(lead_unit, "leader")}


def _login(page, base: str, username: str) -> None:
    page.goto(f"{base}/auth/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("text=登录 >> nth=-1")
    page.wait_for_url(re.compile(r"^(?!.*auth/login).*$"))


def _logout(page) -> None:
    page.click("header button:has-text('退出')")
    page.wait_for_url(re.compile(r".*/auth/login.*"))


def test_full_cycle_in_a_browser(app, live_server, browser, subject, tmp_path):
    from models import Task

    base, task_url = live_server, f"{live_server}/tasks/{subject['task']}"
    part = subject["part"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()

    # 1. The responsible unit's staff: the task is on 我的待办; start, add a file, submit.
    _login(page, base, subject["staff"])
    page.goto(f"{base}/tasks/todo")
    page.click(f"a[href='/tasks/{subject['task']}#part-{part}'] >> nth=0")
    page.wait_for_url(re.compile(rf".*/tasks/{subject['task']}.*"))
    page.click("button:has-text('开始办理')")
    page.wait_for_selector("text=推进中")
    page.click("summary:has-text('添加佐证材料')")
    page.set_input_files(f"#file-{part}", files=[{"name": "七网项目调度台账.pdf", "mimeType": "application/pdf",
                                                    "buffer": PDF}])
    page.fill(f"#desc-{part}", "一季度调度台账")
    page.click("button:has-text('添加材料')")
    page.wait_for_selector("text=七网项目调度台账.pdf")
    page.fill(f"#statement-{part}", "已梳理“七网”项目并完成专项债券资金安排。")
    page.click("button:has-text('提交核验')")
    page.wait_for_selector("text=已提交")
    _logout(page)

    # 2. A leader of the lead unit (another unit) returns it with a reason.
    _login(page, base, subject["leader"])
    page.goto(f"{base}/tasks/verify")
    assert page.locator(f"a[href='/tasks/{subject['task']}#part-{part}']").count() > 0
    page.goto(task_url)
    page.fill(f"#return-{part}", "佐证材料不完整，请补充资金拨付凭证。")
    page.click("button:has-text('退回')")
    page.wait_for_selector("text=佐证材料不完整，请补充资金拨付凭证。")
    _logout(page)

    # 3. Staff sees the return in the inbox, adds text evidence and resubmits.
    _login(page, base, subject["staff"])
    page.goto(f"{base}/inbox")
    assert "佐证材料不完整" in page.content()
    page.goto(task_url)
    page.click("summary:has-text('添加佐证材料')")
    page.fill(f"#text-{part}", "资金拨付凭证编号：ZC2022-0415。")
    page.click("button:has-text('添加材料')")
    page.wait_for_selector("text=ZC2022-0415")
    page.fill(f"#statement-{part}", "已补充资金拨付凭证。")
    page.click("button:has-text('提交核验')")
    page.wait_for_selector("text=第 2 次提交")
    _logout(page)

    # 4. The leader verifies.
    _login(page, base, subject["leader"])
    page.goto(task_url)
    page.click("button:has-text('核验通过')")
    page.wait_for_selector("text=已核验")
    _logout(page)

    # 5. The office closes.
    _login(page, base, "office")
    page.goto(task_url)
    page.click("button:has-text('办结任务')")
    page.wait_for_selector(".timeline")

    # 6. The timeline shows all of it, and the database agrees.
    timeline = page.inner_text(".timeline")
    for expected in ("开始办理", "七网项目调度台账.pdf", "退回", "佐证材料不完整，请补充资金拨付凭证。",
                     "ZC2022-0415", "核验通过", "办结"):
        assert expected in timeline, expected
    assert timeline.count("提交") >= 2
    # LUOSHI_E2E_SCREENSHOTS=/some/dir keeps the final page for a person to look at.
    shots = os.environ.get("LUOSHI_E2E_SCREENSHOTS")
    page.screenshot(path=os.path.join(shots or str(tmp_path), "closed.png"), full_page=True)
    with app.app_context():
        task = db.session.get(Task, subject["task"])
        assert task.state == "closed"
        assert [s.outcome for s in task.parts[0].submissions] == ["returned", "verified"]
    context.close()
