"""A plan as JSON (shape documented in docs/export.md) and as the office's xlsx ledger (台账).

Both are computed at the application's clock (``timeutil.today_local``): the
序时进度 and 红黄蓝 are ``workflow.pace``'s for that day.
"""
from __future__ import annotations

import io
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models import Item, Plan, ProgressRound, RoundPart, Task, TaskPart
from workflow import pace
from workflow.due import LONG_TERM_SHOWN, UNDECIDED_SHOWN, deadline_value
from workflow.extensions import db
from workflow.tables import neutralise
from workflow.timeutil import to_local, today_local
from workflow.vocabulary import ExtensionState, SubmissionOutcome, TaskState


def _load_plan(plan_id: int):
    return db.session.scalar(
        select(Plan).where(Plan.id == plan_id).options(
            selectinload(Plan.chapters),
            selectinload(Plan.items).selectinload(Item.owner_units),
            selectinload(Plan.items).selectinload(Item.contacts),
            selectinload(Plan.items).selectinload(Item.chapter),
            selectinload(Plan.items).selectinload(Item.parent),
            selectinload(Plan.items).selectinload(Item.tasks).selectinload(Task.lead_units),
            selectinload(Plan.items).selectinload(Item.tasks).selectinload(Task.responsible_units),
            selectinload(Plan.items).selectinload(Item.tasks).selectinload(Task.sections),
            selectinload(Plan.items).selectinload(Item.tasks).selectinload(Task.item),
            *(selectinload(Plan.items).selectinload(Item.tasks).selectinload(Task.parts).selectinload(rel)
              for rel in (TaskPart.unit, TaskPart.progress_notes, TaskPart.submissions, TaskPart.extensions)),
        ))


def _parts(plan) -> list:
    return [p for item in plan.items for t in item.tasks for p in t.parts]


def _rounds_of(parts) -> dict[int, list]:
    """Each part's round entries (调度), oldest round first, in one query."""
    out: dict[int, list] = {}
    ids = [p.id for p in parts]
    if not ids:
        return out
    rows = db.session.execute(
        select(RoundPart, ProgressRound).join(ProgressRound, ProgressRound.id == RoundPart.round_id)
        .where(RoundPart.part_id.in_(ids)).order_by(ProgressRound.opened_at, ProgressRound.id))
    for entry, rnd in rows:
        out.setdefault(entry.part_id, []).append((entry, rnd))
    return out


def _iso_local(value) -> str | None:
    """A stored (naive UTC) instant as ISO 8601 in China Standard Time (+08:00)."""
    local = to_local(value)
    return local.isoformat(timespec="seconds") if local else None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _part_as_dict(part, task, assessment, rounds) -> dict:
    return {
        "unit": part.unit.name,
        "state": part.state,
        "received_at": _iso_local(part.received_at),
        "progress": part.progress or 0,
        "planned_progress": assessment.planned,
        "warning": assessment.level.value if assessment.level else None,
        "warning_reason": assessment.reason,
        "deadline": _iso(part.deadline_in_force(task)),
        "deadline_original": _iso(task.deadline_original),
        "extensions": [{
            "requested": _iso_local(x.requested_at),
            "new_deadline": _iso(x.new_deadline),
            "decision": x.state,
            "decided_at": _iso_local(x.decided_at),
        } for x in part.extensions],
        "rounds": [{"round": rnd.title, "filed_at": _iso_local(entry.filed_at), "late": bool(entry.late)}
                   for entry, rnd in rounds],
    }


def plan_as_dict(plan_id: int, today: date | None = None) -> dict | None:
    plan = _load_plan(plan_id)
    if plan is None:
        return None
    parts = _parts(plan)
    assessed = pace.assess_parts(parts, today or today_local())
    rounds = _rounds_of(parts)
    return {"plan": {
        "title": plan.title,
        "issuer": plan.issuer,
        "shape": plan.shape,
        "issued_on": plan.issued_on.isoformat() if plan.issued_on else None,
        "batch": plan.batch,
        "source_sha256": plan.source_sha256,
        "chapters": [{"number": c.number, "title": c.title} for c in plan.chapters],
        "items": [{
            "number": item.number,
            "parent": item.parent.number if item.parent else None,
            "chapter": item.chapter.number,
            "subtitle": item.subtitle,
            "applicable": item.applicable,
            "policy_text": item.policy_text,
            "explanation": item.explanation,
            "goal": item.goal,
            "owner_units": [u.name for u in item.owner_units],
            "contacts": [{"name": c.name, "phone": c.phone} for c in item.contacts],
            "tasks": [{
                "kind": t.kind,
                "seq": t.seq,
                "text": t.text,
                "lead_units": [u.name for u in t.lead_units],
                "responsible_units": [u.name for u in t.responsible_units],
                "sections": [s.name for s in t.sections],
                "leaders": list(t.leaders or ()), "addressees": list(t.addressees or ()), "note": t.note,
                "deadline": t.deadline.isoformat() if t.deadline else None,
                "deadline_text": t.deadline_text,
                "long_term": t.long_term,
                "state": t.state,
                "parts": [_part_as_dict(p, t, assessed[p.id], rounds.get(p.id, ())) for p in t.parts],
            } for t in item.tasks],
        } for item in plan.items],
    }}


LEDGER_HEADERS = ["序号", "章节", "事项", "类别", "序", "内容", "牵头单位", "承办单位", "责任科室", "状态",
                  "完成比例 %", "序时进度 %", "预警", "预警原因", "最新进展", "最新进展日期", "签收日期", "提交日期",
                  "核验日期", "逾期天数", "原定时限", "调整后时限", "延期申请"]
LEDGER_WIDTHS = [6, 18, 8, 10, 4, 60, 20, 20, 20, 8, 8, 8, 10, 30, 40, 12, 12, 12, 12, 8, 12, 12, 20]
#: The second sheet, "事项": what the task rows do not carry, so that the ledger re-imports as the
#: plan (workflow/importer/tables.py reads it back: items without tasks, texts, owners, contacts).
ITEM_SHEET = "事项"
ITEM_HEADERS = ["章节", "事项", "上级事项", "副标题", "政策原文", "落实目标", "情况说明", "牵头单位", "联系人", "联系电话"]
ITEM_WIDTHS = [18, 8, 8, 16, 60, 40, 40, 20, 16, 20]
DATE_COLUMNS = {"最新进展日期", "签收日期", "提交日期", "核验日期", "原定时限", "调整后时限"}


def _local_date(value) -> date | None:
    local = to_local(value)
    return local.date() if local else None


def _original(task) -> date | str:
    """The plan's own date; 长期 / 未定 as ``due.deadline_value`` says them when it has none."""
    if task.deadline_original is not None:
        return task.deadline_original
    if task.long_term:
        return LONG_TERM_SHOWN
    return deadline_value(task) if task.deadline is not None else UNDECIDED_SHOWN


def _extensions(part) -> str:
    """Every request and its decision, oldest first: "2022-08-16 申请延至 2023-03-31，已批准（2022-08-19）"."""
    lines = []
    for x in part.extensions:
        decided = _local_date(x.decided_at)
        reason = x.office_reason or x.lead_reason
        lines.append(f"{_local_date(x.requested_at).isoformat()} 申请延至 {x.new_deadline.isoformat()}，"
                     f"{ExtensionState.label_of(x.state)}"
                     + (f"（{decided.isoformat()}）" if decided else "") + (f"：{reason}" if reason else ""))
    return "\n".join(lines)


def _part_cells(part, task, a) -> list:
    note = part.progress_notes[-1] if part.progress_notes else None
    handed = part.submissions[-1] if part.submissions else None
    verified = next((s for s in reversed(part.submissions) if s.outcome == SubmissionOutcome.VERIFIED), None)
    in_force = part.deadline_in_force(task)
    original = _original(task)
    return [
        TaskState.label_of(part.state), part.progress or 0, a.planned, a.label, a.reason or "",
        note.note if note else "", _local_date(note.at) if note else None,
        _local_date(part.received_at), _local_date(handed.submitted_at) if handed else None,
        _local_date(verified.decided_at) if verified else None,
        a.overdue_days or None, original,
        in_force if in_force is not None and in_force != original else None,
        _extensions(part),
    ]


def _item_sheet(ws, plan) -> None:
    """One row per item, tasks or none: chapter, number, parent, subtitle, texts, owners, contacts
    (names and phones "；"-separated, in the same order; a contact without a phone leaves its place empty)."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws.append(ITEM_HEADERS)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for item in plan.items:
        ws.append([neutralise(v) for v in [
            f"{item.chapter.number}、{item.chapter.title}", item.number, item.parent.number if item.parent else None,
            item.subtitle, item.policy_text or None, item.goal, item.explanation,
            "、".join(u.name for u in item.owner_units) or None,
            "；".join(c.name for c in item.contacts) or None,
            "；".join(c.phone or "" for c in item.contacts) if any(c.phone for c in item.contacts) else None]])
    for i, w in enumerate(ITEM_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w
    ws.freeze_panes = "A2"


def plan_as_xlsx(plan_id: int, today: date | None = None) -> bytes | None:
    """The ledger: one row per part (承办), the task's columns repeated; a task
    without parts has one row with the part's columns empty."""
    # Here: openpyxl is loaded by the first ledger export, not by every process.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    plan = _load_plan(plan_id)
    if plan is None:
        return None
    today = today or today_local()
    assessed = pace.assess_parts(_parts(plan), today)
    wb = Workbook()
    ws = wb.active
    ws.title = "任务台账"
    ws.append([neutralise(plan.title), f"截至 {today.isoformat()}"])
    ws.append(LEDGER_HEADERS)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    row = 0
    for item in plan.items:
        for t in item.tasks:
            task_cells = [f"{item.chapter.number}、{item.chapter.title}", item.number, t.kind_label, t.seq, t.text,
                          "、".join(u.name for u in t.lead_units)]
            sections = "、".join(s.name for s in t.sections)
            for part in t.parts or [None]:
                row += 1
                if part is None:
                    cells = ["", sections, TaskState.label_of(t.state)] + [None] * 10 + [_original(t), None, ""]
                else:
                    cells = [part.unit.name, sections] + _part_cells(part, t, assessed[part.id])
                ws.append([neutralise(v) for v in [row, *task_cells, *cells]])
    for i, w in enumerate(LEDGER_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w
    dates = [i for i, h in enumerate(LEDGER_HEADERS) if h in DATE_COLUMNS]
    for cells in ws.iter_rows(min_row=3):
        cells[5].alignment = Alignment(wrap_text=True, vertical="top")
        for i in dates:
            if isinstance(cells[i].value, date):
                cells[i].number_format = "yyyy-mm-dd"
    ws.freeze_panes = "A3"
    ws.auto_filter.ref = f"A2:{get_column_letter(len(LEDGER_HEADERS))}{max(ws.max_row, 2)}"
    _item_sheet(wb.create_sheet(ITEM_SHEET), plan)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
