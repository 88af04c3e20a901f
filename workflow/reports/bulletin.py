"""The 督办通报: the 督办 active when the office issued it, unit by unit
(workflow/reminder_services.issue_bulletin asks for it)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from models import Escalation, Item, Task, TaskPart
from workflow.due import deadline_shown
from workflow.extensions import db
from workflow.vocabulary import EscalationState, ReminderKind

from .data import plan_header


def bulletin_report(plan) -> dict:
    rows = db.session.scalars(
        select(Escalation).join(TaskPart, Escalation.part_id == TaskPart.id).join(Task).join(Item)
        .where(Item.plan_id == plan.id, Escalation.state.in_(EscalationState.active()))
        .options(joinedload(Escalation.part).joinedload(TaskPart.task).joinedload(Task.item),
                 joinedload(Escalation.part).joinedload(TaskPart.unit))).unique().all()
    units: dict[int, dict] = {}
    kinds: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: (r.part.task.document_key, r.part.position, r.id)):
        part, task = row.part, row.part.task
        unit = units.setdefault(part.unit_id, {"name": part.unit.name, "rows": []})
        unit["rows"].append({"number": task.number_label, "text": task.text, "deadline": deadline_shown(task),
                             "kind": ReminderKind.label_of(row.kind), "reason": row.reason,
                             "reminders": row.reminders, "raised_on": row.raised_on.isoformat()})
        kinds[row.kind] = kinds.get(row.kind, 0) + 1
    unit_rows = sorted(units.values(), key=lambda u: (-len(u["rows"]), u["name"]))
    return {"plan": plan_header(plan), "units": unit_rows,
            "summary": {"count": len(rows), "units": len(unit_rows),
                        "by_kind": [(ReminderKind.label_of(k), kinds.get(k.value, 0)) for k in ReminderKind
                                    if kinds.get(k.value)]}}
