"""A plan as JSON (shape documented in docs/export.md) and as the office's xlsx ledger (台账)."""
from __future__ import annotations

import io

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models import Item, Plan, Task
from workflow.due import deadline_value
from workflow.extensions import db
from workflow.vocabulary import TaskState


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
        ))


def plan_as_dict(plan_id: int) -> dict | None:
    plan = _load_plan(plan_id)
    if plan is None:
        return None
    return {"plan": {
        "title": plan.title,
        "issuer": plan.issuer,
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
                "deadline": t.deadline.isoformat() if t.deadline else None,
                "deadline_text": t.deadline_text,
                "long_term": t.long_term,
                "state": t.state,
            } for t in item.tasks],
        } for item in plan.items],
    }}


LEDGER_HEADERS = ["序号", "章节", "事项", "类别", "序", "内容", "牵头单位", "责任单位", "责任科室",
                  "完成时限", "时限原文", "状态"]


def plan_as_xlsx(plan_id: int) -> bytes | None:
    # Here: openpyxl is loaded by the first ledger export, not by every process.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    plan = _load_plan(plan_id)
    if plan is None:
        return None
    wb = Workbook()
    ws = wb.active
    ws.title = "任务台账"
    ws.append([plan.title])
    ws.append(LEDGER_HEADERS)
    for cell in ws[2]:
        cell.font = Font(bold=True)
    row = 0
    for item in plan.items:
        for t in item.tasks:
            row += 1
            ws.append([
                row, f"{item.chapter.number}、{item.chapter.title}", item.number, t.kind_label, t.seq, t.text,
                "、".join(u.name for u in t.lead_units), "、".join(u.name for u in t.responsible_units),
                "、".join(s.name for s in t.sections),
                deadline_value(t), t.deadline_text or "",
                TaskState.label_of(t.state),
            ])
    widths = [6, 18, 8, 10, 4, 60, 20, 24, 20, 12, 14, 8]
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w
    for cells in ws.iter_rows(min_row=3):
        cells[5].alignment = Alignment(wrap_text=True, vertical="top")
        if cells[9].value and not isinstance(cells[9].value, str):
            cells[9].number_format = "yyyy-mm-dd"
    ws.freeze_panes = "A3"
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
