"""The ledger (台账, workflow/export.py plan_as_xlsx) and the JSON export's parts:
one row per part, its progress and 红黄蓝 as workflow/pace.py decides them at the
application's clock, original and adjusted deadlines, extensions and rounds."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from workflow.extensions import db

CLOCK = date(2022, 6, 20)


@pytest.fixture
def db_template() -> str:
    return "seed"


@pytest.fixture
def app_config() -> dict:
    return {"LUOSHI_ENV": "demo", "LUOSHI_TODAY": CLOCK.isoformat()}


def _plan_id() -> int:
    from models import Plan

    return db.session.scalar(select(Plan.id))


def _sheet(plan_id: int):
    from openpyxl import load_workbook

    from workflow.export import plan_as_xlsx

    return load_workbook(io.BytesIO(plan_as_xlsx(plan_id))).active


def _rows(ws) -> list[dict]:
    from workflow.export import LEDGER_HEADERS

    assert [c.value for c in ws[2]] == LEDGER_HEADERS
    return [dict(zip(LEDGER_HEADERS, cells)) for cells in ws.iter_rows(min_row=3)]


def _parts_in_order(plan_id: int) -> list:
    from models import Item, Task

    tasks = db.session.scalars(select(Task).join(Item).where(Item.plan_id == plan_id)
                               .order_by(*Task.document_order())).all()
    return [p for t in tasks for p in t.parts]


def _a_part(n_parts: int = 1):
    from models import Task

    task = next(t for t in db.session.scalars(select(Task).order_by(Task.id))
                if len(t.parts) == n_parts and t.deadline is not None and not t.long_term)
    return task, task.parts[0]


def test_ledger_has_one_row_per_part_with_header_autofilter_and_frozen_header(app):
    from workflow.export import LEDGER_HEADERS

    with app.app_context():
        plan_id = _plan_id()
        parts = _parts_in_order(plan_id)
        ws = _sheet(plan_id)
        rows = _rows(ws)
    assert LEDGER_HEADERS[:10] == ["序号", "章节", "事项", "类别", "序", "内容", "牵头单位", "承办单位", "责任科室", "状态"]
    assert len(rows) == len(parts) > 189   # more parts than tasks: a task's columns repeat per part
    assert [r["承办单位"].value for r in rows] == [p.unit.name for p in parts]
    assert [r["序号"].value for r in rows] == list(range(1, len(rows) + 1))
    assert ws.auto_filter.ref == f"A2:W{len(rows) + 2}"
    assert ws.freeze_panes == "A3"
    # The clock the figures are computed at is on the title row.
    assert ws["B1"].value == f"截至 {CLOCK.isoformat()}"


def test_ledger_colour_reason_and_planned_progress_are_pace_s_at_the_clock(app):
    from workflow import pace

    with app.app_context():
        plan_id = _plan_id()
        parts = _parts_in_order(plan_id)
        expected = pace.assess_parts(parts, CLOCK)
        rows = _rows(_sheet(plan_id))
    colours = set()
    for part, row in zip(parts, rows):
        a = expected[part.id]
        assert row["预警"].value == (a.label or None), part.id
        assert row["预警原因"].value == (a.reason or None)
        assert row["序时进度 %"].value == a.planned
        assert row["完成比例 %"].value == (part.progress or 0)
        assert row["逾期天数"].value == (a.overdue_days or None)
        colours.add(a.label)
    # The seed on this day has red and yellow parts and some without colour: the check means something.
    assert {"红色预警", "黄色预警"} <= colours


def test_ledger_original_and_adjusted_deadline_latest_progress_dates_and_extensions(app):
    from models import ExtensionRequest
    from tests.helpers import unit_user
    from workflow import services
    from workflow.timeutil import to_local, utcnow

    with app.app_context():
        plan_id = _plan_id()
        task, part = _a_part()
        other_task, other = _a_part(2)
        original = task.deadline_original
        assert original is not None and original == task.deadline
        staff = unit_user(part.unit_id, "staff")
        services.receive_part(part, staff)
        services.start_part(part, staff)
        services.record_progress(part, staff, 30, "已完成前期调研")
        # An extension granted: the part's own deadline, and the request on record.
        extended = original + timedelta(days=60)
        part.deadline = extended
        db.session.add(ExtensionRequest(part_id=part.id, state="granted", requested_by_id=staff.id,
                                        requested_at=utcnow(), old_deadline=original, new_deadline=extended,
                                        reason="需等待上级批复", progress=30, office_decided_at=utcnow()))
        db.session.add(ExtensionRequest(part_id=part.id, state="pending_lead", requested_by_id=staff.id,
                                        requested_at=utcnow(), old_deadline=extended,
                                        new_deadline=extended + timedelta(days=30), reason="再延", progress=30))
        db.session.commit()
        part_id, other_id = part.id, other.id
        rows = {(r["事项"].value, r["类别"].value, r["序"].value, r["承办单位"].value): r for r in _rows(_sheet(plan_id))}
        row = rows[(task.item.number, task.kind_label, task.seq, part.unit.name)]
        untouched = rows[(other_task.item.number, other_task.kind_label, other_task.seq, other.unit.name)]
        today_local = CLOCK
    assert part_id != other_id
    # Dates are date cells (sortable and filterable in Excel).
    assert isinstance(row["原定时限"].value, datetime) and row["原定时限"].value.date() == original
    assert row["原定时限"].number_format == "yyyy-mm-dd"
    assert row["调整后时限"].value.date() == extended
    assert row["状态"].value == "推进中" and row["完成比例 %"].value == 30
    assert row["最新进展"].value == "已完成前期调研"
    # Recorded today (real time): the date column is the CST date of the entry, not the demo clock.
    assert isinstance(row["最新进展日期"].value, datetime) and isinstance(row["签收日期"].value, datetime)
    # Every request with its decision, oldest first.
    asked = to_local(utcnow()).date().isoformat()
    assert row["延期申请"].value.split("\n") == [
        f"{asked} 申请延至 {extended.isoformat()}，已批准（{asked}）",
        f"{asked} 申请延至 {(extended + timedelta(days=30)).isoformat()}，待牵头单位审核"]
    assert today_local == CLOCK
    # A part without an extension: no adjusted deadline, no request.
    assert untouched["调整后时限"].value is None and untouched["延期申请"].value is None
    assert untouched["原定时限"].value.date() == other_task.deadline_original


def test_ledger_neutralises_formula_text(app):
    with app.app_context():
        plan_id = _plan_id()
        task, part = _a_part()
        task.text = "=HYPERLINK(\"http://example.invalid\",\"点我\")"
        db.session.commit()
        rows = _rows(_sheet(plan_id))
    row = next(r for r in rows if str(r["内容"].value).startswith("'="))
    assert row["内容"].data_type == "s"
    assert not any(c.data_type == "f" for r in rows for c in r.values())


def test_ledger_submitted_and_verified_dates(app):
    from tests.helpers import unit_user
    from workflow import services

    with app.app_context():
        plan_id = _plan_id()
        task, part = _a_part()
        staff = unit_user(part.unit_id, "staff")
        leader = unit_user(task.lead_units[0].id, "leader")
        services.start_part(part, staff)
        services.add_text_evidence(part, staff, "完成情况材料")
        services.submit_part(part, staff, "已完成")
        services.verify_part(part, leader)
        db.session.commit()
        rows = {(r["事项"].value, r["类别"].value, r["序"].value, r["承办单位"].value): r for r in _rows(_sheet(plan_id))}
        row = rows[(task.item.number, task.kind_label, task.seq, part.unit.name)]
    assert row["状态"].value == "已核验"
    assert isinstance(row["提交日期"].value, datetime) and isinstance(row["核验日期"].value, datetime)
    # Handed in: no colour (pace), whatever the date.
    assert row["预警"].value is None


# ---------------------------------------------------------------- JSON

def test_json_export_parts_carry_progress_colour_deadlines_extensions_and_rounds(app):
    from models import ExtensionRequest, ProgressRound, RoundPart
    from tests.helpers import unit_user
    from workflow import pace
    from workflow.export import plan_as_dict
    from workflow.timeutil import utcnow

    with app.app_context():
        plan_id = _plan_id()
        task, part = _a_part()
        staff = unit_user(part.unit_id, "staff")
        extended = task.deadline + timedelta(days=31)
        part.deadline = extended
        asked = datetime(2022, 6, 1, 2, 30)   # naive UTC: 10:30 in China Standard Time
        db.session.add(ExtensionRequest(part_id=part.id, state="granted", requested_by_id=staff.id, requested_at=asked,
                                        old_deadline=task.deadline, new_deadline=extended, reason="原因",
                                        progress=0, lead_decided_at=asked, office_decided_at=asked + timedelta(days=1)))
        rnd = ProgressRound(plan_id=plan_id, title="2022年6月调度", due_on=date(2022, 6, 5), opened_at=utcnow())
        db.session.add(rnd)
        db.session.flush()
        db.session.add(RoundPart(round_id=rnd.id, part_id=part.id, filed_at=asked, late=True))
        db.session.commit()
        data = plan_as_dict(plan_id)
        tasks = {(i["number"], t["kind"], t["seq"]): t for i in data["plan"]["items"] for t in i["tasks"]}
        exported = tasks[(task.item.number, task.kind, task.seq)]["parts"]
        expected = pace.assess_parts([part], CLOCK)[part.id]
        every = [p for t in tasks.values() for p in t["parts"]]
        n_parts = len(_parts_in_order(plan_id))
        unit, original = part.unit.name, task.deadline_original
    assert len(every) == n_parts
    assert set(every[0]) == {"unit", "state", "received_at", "progress", "planned_progress", "warning",
                             "warning_reason", "deadline", "deadline_original", "extensions", "rounds"}
    (p,) = exported
    assert p["unit"] == unit and p["state"] == "planned" and p["received_at"] is None and p["progress"] == 0
    assert p["warning"] == (expected.level.value if expected.level else None)
    assert p["warning_reason"] == expected.reason and p["planned_progress"] == expected.planned
    assert p["deadline"] == extended.isoformat() and p["deadline_original"] == original.isoformat()
    assert p["extensions"] == [{"requested": "2022-06-01T10:30:00+08:00", "new_deadline": extended.isoformat(),
                                "decision": "granted", "decided_at": "2022-06-02T10:30:00+08:00"}]
    assert p["rounds"] == [{"round": "2022年6月调度", "filed_at": "2022-06-01T10:30:00+08:00", "late": True}]
    assert {x["warning"] for x in every} <= {"red", "yellow", "blue", None}
    assert {"red", "yellow"} <= {x["warning"] for x in every}


def test_flask_plan_export_json_has_the_parts(app, runner):
    import json

    with app.app_context():
        plan_id = _plan_id()
    result = runner.invoke(args=["plan", "export", str(plan_id), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    first = data["plan"]["items"][0]["tasks"][0]["parts"][0]
    assert first["unit"] and first["warning"] in ("red", "yellow", "blue", None)
