"""The office's rhythm in a real browser, on the demo clock: a unit receives its
part (签收) and files in a progress round (调度); it falls behind planned progress
as the clock moves (yellow, then red); it asks for more time, the lead unit
agrees and the office grants it — red holds — until a progress report catches
up; the office closes the round into its 调度通报, a real PDF naming the units
that filed and those that did not."""
from __future__ import annotations

import os
import re
import subprocess
from datetime import date

import pytest
from sqlalchemy import select

from tests.e2e.test_full_cycle import _login, _logout
from tests.helpers import unit_username
from workflow.extensions import db

START_DAY = "2022-06-20"
LATER_DAY = "2022-08-31"


@pytest.fixture
def db_template():
    return "seed"


@pytest.fixture
def app_config():
    return {"LUOSHI_ENV": "demo", "LUOSHI_TODAY": START_DAY}


@pytest.fixture
def subject(app):
    """Item 1's first 工作任务 (led by 区发展改革局, done by 区财政局), due at the end
    of 2022, in a plan issued on 8 April 2022."""
    from models import Item, Plan, Unit

    with app.app_context():
        item = db.session.scalar(select(Item).where(Item.number == "1"))
        task = next(t for t in item.tasks if t.kind == "task" and t.seq == 1)
        plan = db.session.get(Plan, item.plan_id)
        assert plan.issued_on == date(2022, 4, 8) and task.deadline == date(2022, 12, 31)
        staff_unit = db.session.scalar(select(Unit).where(Unit.name == "区财政局"))
        lead_unit = db.session.scalar(select(Unit).where(Unit.name == "区发展改革局"))
        assert [p.unit_id for p in task.parts] == [staff_unit.id] and task.lead_units == [lead_unit]
        return {"task": task.id, "part": task.parts[0].id, "staff": unit_username(staff_unit, "staff"),
                "leader": unit_username(lead_unit, "leader"), "unit": staff_unit.name}


def _move_clock(app, day: str) -> None:
    from workflow.timeutil import configure_clock

    app.config["LUOSHI_TODAY"] = day
    configure_clock(app)


def _part_head(page, part: int) -> str:
    return page.inner_text(f"#part-{part} .part-head")


def test_receipt_round_extension_colours_and_the_round_report(app, live_server, browser, subject, tmp_path):
    from models import ExtensionRequest, ProgressRound, TaskPart
    from workflow import background

    base, task_url, part = live_server, f"{live_server}/tasks/{subject['task']}", subject["part"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    assert "2022年6月20日" in (page.goto(f"{base}/auth/login") and page.content())

    # 1. 签收: the unit acknowledges its part.
    _login(page, base, subject["staff"])
    page.goto(task_url)
    page.click(f"#part-{part} button:has-text('签收')")
    page.wait_for_selector("text=已签收：")
    _logout(page)

    # 2. The office opens a monthly round over the whole plan.
    _login(page, base, "office")
    page.goto(f"{base}/rounds/new")
    page.fill("#title", "2022年6月调度")
    page.fill("#due_on", "2022-06-25")
    page.fill("#instructions", "请于6月25日前报送上半年工作进展。")
    page.click("button:has-text('发起调度')")
    page.wait_for_selector("text=报送中")
    round_url = page.url
    _logout(page)

    # 3. The unit files for the round: 5% where 27% was planned — yellow, with the reason.
    _login(page, base, subject["staff"])
    page.goto(task_url)
    assert "本轮调度：请于 2022-06-25 前报送" in page.content()
    page.fill(f"#round-percent-{part}", "5")
    page.fill(f"#round-note-{part}", "已完成“七网”项目摸底，形成项目清单。")
    page.click(f"#part-{part} button:has-text('报送') >> nth=-1")
    page.wait_for_selector("text=本轮调度进展已报送")
    head = _part_head(page, part)
    assert "序时进度 27%" in head and "黄色预警" in head, head
    assert "落后序时进度 22 个百分点" in page.inner_text(f"#part-{part}")

    # 4. The clock moves to the end of August: the same 5% is now red.
    _move_clock(app, LATER_DAY)
    page.goto(task_url)
    head = _part_head(page, part)
    assert "序时进度 54%" in head and "红色预警" in head, head

    # 5. The unit asks for more time.
    page.click(f"#part-{part} summary:has-text('申请延期')")
    page.fill(f"#new-deadline-{part}", "2023-03-31")
    page.fill(f"#extension-reason-{part}", "上级资金尚未下达，项目申报需待市级评审结果。")
    page.click("button:has-text('提交延期申请')")
    page.wait_for_selector("text=待牵头单位审核")
    _logout(page)

    # 6. The lead unit's leader agrees; the office grants it.
    _login(page, base, subject["leader"])
    page.goto(f"{base}/extensions")
    page.click("button:has-text('同意并报办公室')")
    page.wait_for_selector("text=已同意")
    _logout(page)
    _login(page, base, "office")
    page.goto(f"{base}/extensions")
    page.click("button:has-text('批准延期')")
    page.wait_for_selector("text=已批准延期")
    page.goto(task_url)
    body = page.inner_text(f"#part-{part}")
    assert "2022年12月31日" in body and "2023年3月31日" in body, body
    # The later date alone does not lift red: it holds until the progress catches up.
    assert "红色预警" in _part_head(page, part)
    assert "时限调整前落后序时进度" in body
    _logout(page)

    # 7. The unit starts and reports progress that catches up with the new line: no colour.
    _login(page, base, subject["staff"])
    page.goto(task_url)
    page.click(f"#part-{part} button:has-text('开始办理')")
    page.wait_for_selector("text=已开始办理")
    page.click(f"#part-{part} summary:has-text('填报进度')")
    page.fill(f"#percent-{part}", "50")
    page.fill(f"#note-{part}", "已完成12个项目的前期手续，专项债券申报材料已报市发改委。")
    page.click(f"#part-{part} button:has-text('保存进度')")
    page.wait_for_selector(".flash >> text=进度")
    head = _part_head(page, part)
    assert "预警" not in head and "序时进度 41%" in head, head
    _logout(page)

    # 8. The office closes the round into its 调度通报.
    _login(page, base, "office")
    page.goto(round_url)
    page.click("button:has-text('结束调度并生成通报')")
    page.wait_for_selector("text=本轮调度已结束")
    assert background.drain(app) == 1
    page.goto(round_url)
    page.click("text=查看调度通报")
    page.wait_for_selector("text=已完成")
    with page.expect_download() as download:
        page.click("a:has-text('下载')")
    pdf = tmp_path / "通报.pdf"
    download.value.save_as(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = re.sub(r"\s+", "", text)
    assert "2022年6月调度" in flat and "调度通报" in flat
    assert subject["unit"] in flat and "未报送" in flat
    shots = os.environ.get("LUOSHI_E2E_SCREENSHOTS")
    page.goto(task_url)
    page.screenshot(path=os.path.join(shots or str(tmp_path), "rhythm.png"), full_page=True)
    context.close()

    with app.app_context():
        row = db.session.get(TaskPart, part)
        assert row.received_at is not None and row.deadline == date(2023, 3, 31) and row.red_since is None
        assert db.session.scalar(select(ExtensionRequest.state)) == "granted"
        round_ = db.session.scalar(select(ProgressRound))
        assert round_.state == "closed" and round_.report.status == "done"
        assert next(e for e in round_.entries if e.part_id == part).late is False
