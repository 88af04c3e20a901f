"""Report figures: queries → plain dicts and lists.

Everything a report prints is computed here, from the database and the
parameters alone: the as-of date stands in for "today" in every due-date rule
(workflow/due.py), and rows are ordered by stable keys, so the same data and
parameters always give the same figures. Templates only lay these out.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from models import AuditEntry, Evidence, Item, RoundPart, Submission, Task, TaskPart, task_lead_units
from workflow import pace, scores
from workflow.audit import ACTION_LABELS
from workflow.due import DUE_LABELS, LATE, NEAR, days_late, deadline_shown, due_status
from workflow.extensions import db
from workflow.machine import EVENT_LABELS
from workflow.reports import charts
from workflow.services import EDITABLE_FIELDS
from workflow.timeutil import format_local
from workflow.vocabulary import (
    PART_STATES, STATE_LABELS, TASK_STATES, RoundKind, RoundState, SubmissionOutcome, TaskKind, TaskState, WarningLevel)

DONE_STATES = (TaskState.VERIFIED, TaskState.CLOSED)
WARNING_ORDER = tuple(WarningLevel.values())     # red, yellow, blue
CN_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1 → 一, 10 → 十, 12 → 十二, 25 → 二十五 (chapter numbers)."""
    if n <= 0 or n >= 100:
        return str(n)
    tens, ones = divmod(n, 10)
    if tens == 0:
        return CN_DIGITS[ones]
    return ("" if tens == 1 else CN_DIGITS[tens]) + "十" + (CN_DIGITS[ones] if ones else "")


def rate(done: int, total: int) -> float:
    return round(100.0 * done / total, 1) if total else 0.0


def unit_names(units) -> str:
    return "、".join(u.name for u in units)


def _deadlines(task) -> dict:
    """原定时限 / 调整后时限: the plan's date, and the one in force when it differs
    (the office's edit, or a part's granted extension)."""
    original = task.deadline_original
    adjusted = [{"unit": p.unit.name, "deadline": p.deadline.isoformat()} for p in task.parts if p.deadline]
    changed = original is not None and task.deadline != original
    return {"deadline_original": original.isoformat() if original and (changed or adjusted) else "",
            "deadline_adjusted": (deadline_shown(task) if changed else ""), "extended": adjusted}


def _warning(assessment) -> dict:
    return {"warning": assessment.level.value if assessment.level else None,
            "warning_label": assessment.label, "warning_reason": assessment.reason or "",
            "planned": assessment.planned}


def _task_row(task, as_of: date, near_days: int, by_part: dict | None = None) -> dict:
    status = due_status(task, as_of, near_days)
    by_part = by_part if by_part is not None else pace.assess_parts(task.parts, as_of)
    return {
        "id": task.id,
        "number": task.number_label,
        "label": task.label,
        "kind": task.kind_label,
        "text": task.text,
        "lead": unit_names(task.lead_units),
        "parts": [{"unit": p.unit.name, "state": p.state, "state_label": STATE_LABELS[p.state],
                   "progress": p.progress, **_warning(by_part[p.id])} for p in task.parts],
        **_warning(pace.of_task(task, by_part)),
        **_deadlines(task),
        "deadline": deadline_shown(task),
        "state": task.state,
        "state_label": STATE_LABELS[task.state],
        "due": status,
        "due_label": DUE_LABELS.get(status, ""),
        "days_late": days_late(task, as_of) if status == LATE else 0,
        "days_left": (task.deadline - as_of).days if status == NEAR else None,
    }


def _state_counts(tasks) -> dict:
    counts = Counter(t.state for t in tasks)
    return {s: counts.get(s, 0) for s in TASK_STATES}


def _summary(tasks, as_of: date, near_days: int) -> dict:
    statuses = [due_status(t, as_of, near_days) for t in tasks]
    done = sum(1 for t in tasks if t.state in DONE_STATES)
    return {
        "tasks": len(tasks),
        "by_state": _state_counts(tasks),
        "done": done,
        "rate": rate(done, len(tasks)),
        "late": statuses.count(LATE),
        "near": statuses.count(NEAR),
    }


def plan_header(plan) -> dict:
    return {"id": plan.id, "title": plan.title, "issuer": plan.issuer or "",
            "issued_on": plan.issued_on.isoformat() if plan.issued_on else "", "batch": plan.batch or ""}


def _plan_tasks(plan_id: int):
    tasks = db.session.scalars(
        select(Task).join(Item).where(Item.plan_id == plan_id).options(
            joinedload(Task.item),
            selectinload(Task.lead_units),
            selectinload(Task.parts).joinedload(TaskPart.unit),
        )).unique().all()
    return sorted(tasks, key=lambda t: t.document_key)


# ------------------------------------------------------------------ size

def scope(kind: str, plan_id: int, unit_id: int | None = None, item_id: int | None = None) -> dict:
    """What a report covers, counted in SQL before anything is read: its tasks
    (for a unit report, the ones it hands in and the ones it leads) and their
    parts (承办部分). Each count filters by the plan, the unit or the item."""
    tasks = select(Task.id).join(Item).where(Item.plan_id == plan_id)
    if kind == "unit":
        parts = db.session.scalar(
            select(func.count(TaskPart.id)).join(Task).join(Item)
            .where(Item.plan_id == plan_id, TaskPart.unit_id == unit_id))
        led = db.session.scalar(
            select(func.count()).select_from(task_lead_units).join(Task, Task.id == task_lead_units.c.task_id)
            .join(Item).where(Item.plan_id == plan_id, task_lead_units.c.unit_id == unit_id))
        return {"tasks": parts + led, "parts": parts, "led": led}
    if kind == "item":
        tasks = select(Task.id).join(Item).where((Item.id == item_id) | (Item.parent_id == item_id))
    n_tasks = db.session.scalar(select(func.count()).select_from(tasks.subquery()))
    parts = db.session.scalar(select(func.count(TaskPart.id)).where(TaskPart.task_id.in_(tasks)))
    return {"tasks": n_tasks, "parts": parts, "led": 0}


# ------------------------------------------------------------------ overall

def overall(plan, as_of: date, near_days: int) -> dict:
    tasks = _plan_tasks(plan.id)
    items = db.session.scalars(
        select(Item).where(Item.plan_id == plan.id).order_by(Item.position)
        .options(selectinload(Item.owner_units))).all()
    by_part = pace.assess_parts([p for t in tasks for p in t.parts], as_of)
    rows = [_task_row(t, as_of, near_days, by_part) for t in tasks]
    row_by_id = {r["id"]: r for r in rows}
    warned = sorted((r for r in rows if r["warning"]),
                    key=lambda r: WARNING_ORDER.index(r["warning"]))   # stable: document order within a colour

    chapters = []
    for chapter in plan.chapters:
        chapter_tasks = [t for t in tasks if t.item.chapter_id == chapter.id]
        chapter_items = [i for i in items if i.chapter_id == chapter.id]
        chapters.append({
            "number": chapter.number,
            "label": chapter.heading(chinese_number),
            "n_items": len(chapter_items),
            "not_applicable": sum(1 for i in chapter_items if not i.applicable),
            **_summary(chapter_tasks, as_of, near_days),
            "rows": [row_by_id[t.id] for t in chapter_tasks],
        })

    by_unit: dict[int, list] = defaultdict(list)
    units = {}
    for task in tasks:
        for unit in task.lead_units:
            by_unit[unit.id].append(task)
            units[unit.id] = unit
    lead_units = [{"name": units[uid].name, **_summary(unit_tasks, as_of, near_days)}
                  for uid, unit_tasks in by_unit.items()]
    # Ranked: highest completion first; among equals, fewer overdue first.
    lead_units.sort(key=lambda u: (-u["rate"], u["late"], -u["tasks"], u["name"]))
    for rank, row in enumerate(lead_units, 1):
        row["rank"] = rank

    late_rows = []
    near_rows = []
    for task in tasks:
        row = row_by_id[task.id]
        if row["due"] == LATE:
            late_rows.append({**row, "behind": [p for p in row["parts"] if p["state"] != TaskState.VERIFIED]})
        elif row["due"] == NEAR:
            near_rows.append({**row, "behind": [p for p in row["parts"]
                                                if p["state"] in (TaskState.PLANNED, TaskState.IN_PROGRESS)]})
    late_rows.sort(key=lambda r: -r["days_late"])  # stable: document order among equals
    near_rows.sort(key=lambda r: r["days_left"])

    not_applicable = [{"number": i.number, "label": i.label, "subtitle": i.subtitle or "",
                       "policy": i.policy_text, "owners": unit_names(i.owner_units),
                       "explanation": i.explanation or ""}
                      for i in items if not i.applicable]

    return {
        "plan": plan_header(plan),
        "summary": {**_summary(tasks, as_of, near_days), "n_items": len(items),
                    "not_applicable": len(not_applicable),
                    "measures": sum(1 for t in tasks if t.kind == TaskKind.MEASURE)},
        "chapters": chapters,
        "lead_units": lead_units,
        "late": late_rows,
        "near": near_rows,
        "warned": warned,
        "warnings": {level: sum(1 for r in rows if r["warning"] == level) for level in WARNING_ORDER},
        "not_applicable": not_applicable,
        "scores": score_section(plan, as_of),
    }


def score_section(plan, as_of: date) -> dict:
    """单位考核排名 for the report: the as-of date's year up to it, judged on the as-of
    date (it stands in for today, as everywhere in the report)."""
    period = scores.Period(date(as_of.year, 1, 1), as_of)
    result = scores.ranking(period, as_of, plan.id, trend=0, numeral=chinese_number)
    return {"rows": result["units"], "period": period.label, "weights": scores.weights_text(result["weights"]),
            "total": result["total"], "chart": charts.score_bars(result["units"])}


# ------------------------------------------------------------------ unit

def _evidence_rows(part) -> list[dict]:
    rows = []
    for e in part.evidence:
        submission = e.submission
        rows.append({
            "kind": "文件" if e.kind == "file" else "文字",
            "name": e.filename if e.kind == "file" else e.text,
            "description": e.text if e.kind == "file" else "",
            "size": e.size,
            "where": f"第{submission.number}次提交" if submission is not None else "待提交",
            "at": format_local(e.uploaded_at),
            "by": _user_name(e.uploaded_by),
        })
    return rows


def _user_name(user) -> str:
    return user.display_name if user is not None else "系统"


def _submission_rows(part) -> list[dict]:
    return [{
        "number": s.number,
        "statement": s.statement,
        "at": format_local(s.submitted_at),
        "by": _user_name(s.submitted_by),
        "outcome": s.outcome,
        "outcome_label": s.outcome_label,
        "decided_at": format_local(s.decided_at),
        "decided_by": _user_name(s.decided_by) if s.decided_by_id else "",
        "reason": s.decision_reason or "",
    } for s in part.submissions]


def _parts_of_unit(plan_id: int, unit_id: int):
    parts = db.session.scalars(
        select(TaskPart).join(Task).join(Item).where(Item.plan_id == plan_id, TaskPart.unit_id == unit_id)
        .options(
            joinedload(TaskPart.task).joinedload(Task.item),
            joinedload(TaskPart.task).selectinload(Task.lead_units),
            joinedload(TaskPart.task).selectinload(Task.parts).joinedload(TaskPart.unit),
            selectinload(TaskPart.evidence).joinedload(Evidence.submission),
            selectinload(TaskPart.evidence).joinedload(Evidence.uploaded_by),
            selectinload(TaskPart.submissions).joinedload(Submission.submitted_by),
            selectinload(TaskPart.submissions).joinedload(Submission.decided_by),
        )).unique().all()
    return sorted(parts, key=lambda p: p.task.document_key)


def unit(plan, unit, as_of: date, near_days: int) -> dict:
    parts = _parts_of_unit(plan.id, unit.id)
    led = db.session.scalars(
        select(Task).join(Item).join(task_lead_units, task_lead_units.c.task_id == Task.id)
        .where(Item.plan_id == plan.id, task_lead_units.c.unit_id == unit.id)
        .options(joinedload(Task.item), selectinload(Task.lead_units),
                 selectinload(Task.parts).joinedload(TaskPart.unit))).unique().all()
    led = sorted(led, key=lambda t: t.document_key)

    by_part = pace.assess_parts(list({p.id: p for t in [pt.task for pt in parts] + list(led)
                                      for p in t.parts}.values()), as_of)
    part_rows = []
    returns = []
    for part in parts:
        row = _task_row(part.task, as_of, near_days, by_part)
        submissions = _submission_rows(part)
        part_rows.append({**row, "part_state": part.state, "part_state_label": STATE_LABELS[part.state],
                          "progress": part.progress, "evidence": _evidence_rows(part),
                          "submissions": submissions, "own": _warning(by_part[part.id])})
        for s in submissions:
            if s["outcome"] == SubmissionOutcome.RETURNED:
                returns.append({**s, "submission": s["number"], "number": row["number"], "text": row["text"]})
    led_rows = [_task_row(t, as_of, near_days, by_part) for t in led]

    late: dict[int, dict] = {}
    for row in [r for r in part_rows] + led_rows:
        if row["due"] == LATE and row["id"] not in late:
            role = []
            if any(r["id"] == row["id"] for r in part_rows):
                role.append("承办")
            if any(r["id"] == row["id"] for r in led_rows):
                role.append("牵头")
            late[row["id"]] = {**row, "role": "、".join(role)}
    late_rows = sorted(late.values(), key=lambda r: -r["days_late"])

    part_states = Counter(p.state for p in parts)
    return {
        "plan": plan_header(plan),
        "unit": {"id": unit.id, "name": unit.name, "kind": unit.kind_label},
        "summary": {
            "parts": len(parts),
            "part_states": {s: part_states.get(s, 0) for s in PART_STATES},
            "parts_done": part_states.get(TaskState.VERIFIED, 0),
            "parts_rate": rate(part_states.get(TaskState.VERIFIED, 0), len(parts)),
            "led": len(led),
            "led_done": sum(1 for t in led if t.state in DONE_STATES),
            "led_rate": rate(sum(1 for t in led if t.state in DONE_STATES), len(led)),
            "returns": len(returns),
            "late": len(late_rows),
            "awaiting_review": sum(1 for t in led for p in t.parts if p.state == TaskState.SUBMITTED),
        },
        "parts": part_rows,
        "led": led_rows,
        "returns": returns,
        "late": late_rows,
    }


# ------------------------------------------------------------------ item

def _timeline(task_ids: list[int]) -> dict[int, list[dict]]:
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.task_id.in_(task_ids)).order_by(AuditEntry.seq)
        .options(joinedload(AuditEntry.user), joinedload(AuditEntry.unit))).all() if task_ids else []
    out: dict[int, list[dict]] = defaultdict(list)
    for e in entries:
        details = e.details or {}
        what = ACTION_LABELS.get(e.action, e.action)
        if e.action == "transition" and details.get("event"):
            what = EVENT_LABELS.get(details["event"], details["event"])
        if e.from_state and e.to_state:
            what += f"（{STATE_LABELS.get(e.from_state, e.from_state)} → {STATE_LABELS.get(e.to_state, e.to_state)}）"
        notes = []
        if details.get("unit"):
            notes.append(f"承办单位：{details['unit']}")
        if e.action in ("progress", "round_filed"):
            notes.append(f"进度 {details.get('percent')}%：{details.get('note') or ''}")
        if e.action == "evidence_added":
            notes.append(details.get("filename") or details.get("text") or "")
        if details.get("statement"):
            notes.append(f"完成情况说明：{details['statement']}")
        if e.reason:
            notes.append(f"理由：{e.reason}")
        if e.action == "task_edited":
            notes.append("修改：" + "、".join(EDITABLE_FIELDS.get(k, k) for k in details if k != "receipts_cleared"))
        who = e.user.display_name if e.user is not None else (e.username or "系统")
        out[e.task_id].append({"seq": e.seq, "at": format_local(e.at), "who": who,
                               "unit": e.unit.name if e.unit is not None else "", "what": what,
                               "notes": [n for n in notes if n]})
    return out


def item(plan, item_obj, as_of: date, near_days: int) -> dict:
    # The item and its sub-items with what each block prints, in three queries.
    loaded = db.session.scalars(
        select(Item).where((Item.id == item_obj.id) | (Item.parent_id == item_obj.id)).order_by(Item.position)
        .options(joinedload(Item.chapter), selectinload(Item.owner_units), selectinload(Item.contacts))).all()
    items = [item_obj] + [i for i in loaded if i.id != item_obj.id]
    item_ids = [i.id for i in items]
    tasks = db.session.scalars(
        select(Task).where(Task.item_id.in_(item_ids)).options(
            joinedload(Task.item), selectinload(Task.lead_units), selectinload(Task.responsible_units),
            selectinload(Task.parts).joinedload(TaskPart.unit),
            selectinload(Task.parts).selectinload(TaskPart.evidence).joinedload(Evidence.submission),
            selectinload(Task.parts).selectinload(TaskPart.evidence).joinedload(Evidence.uploaded_by),
            selectinload(Task.parts).selectinload(TaskPart.submissions).joinedload(Submission.submitted_by),
            selectinload(Task.parts).selectinload(TaskPart.submissions).joinedload(Submission.decided_by),
        )).unique().all()
    tasks = sorted(tasks, key=lambda t: t.document_key)
    timeline = _timeline([t.id for t in tasks])
    # Every part's colour in one pass (a handful of queries), not a pass per task.
    by_part = pace.assess_parts([p for t in tasks for p in t.parts], as_of, tasks=tasks)

    def item_block(i: Item) -> dict:
        own = [t for t in tasks if t.item_id == i.id]
        rows = []
        for t in own:
            row = _task_row(t, as_of, near_days, by_part)
            row["responsible"] = unit_names(t.responsible_units)
            row["part_details"] = [{
                "unit": p.unit.name, "state": p.state, "state_label": STATE_LABELS[p.state],
                "progress": p.progress, "evidence": _evidence_rows(p), "submissions": _submission_rows(p),
            } for p in t.parts]
            row["timeline"] = timeline.get(t.id, [])
            rows.append(row)
        return {
            "number": i.number, "label": i.label, "subtitle": i.subtitle or "",
            "chapter": i.chapter.heading(chinese_number),
            "policy": i.policy_text, "goal": i.goal or "", "applicable": i.applicable,
            "explanation": i.explanation or "", "owners": unit_names(i.owner_units),
            "contacts": [{"name": c.name, "phone": c.phone or ""} for c in i.contacts],
            "summary": _summary(own, as_of, near_days),
            "tasks": rows,
        }

    blocks = [item_block(i) for i in items]
    return {
        "plan": plan_header(plan),
        "item": blocks[0],
        "children": blocks[1:],
        "summary": _summary(tasks, as_of, near_days),
    }


# ------------------------------------------------------------------ round (调度通报)

def round_report(plan, round_) -> dict:
    """The 调度通报 of one round: what it asked, and per unit which parts filed
    on time, late (with the date, China Standard Time) or not at all."""
    entries = db.session.scalars(
        select(RoundPart).where(RoundPart.round_id == round_.id).options(
            joinedload(RoundPart.part).joinedload(TaskPart.task).joinedload(Task.item),
            joinedload(RoundPart.part).joinedload(TaskPart.unit),
            joinedload(RoundPart.note))).unique().all()
    units: dict[int, dict] = {}
    for entry in sorted(entries, key=lambda e: (e.part.task.document_key, e.part.position, e.part.id)):
        part, task = entry.part, entry.part.task
        row = {"number": task.number_label, "text": task.text, "deadline": deadline_shown(task),
               "filed_at": format_local(entry.filed_at), "filed_on": format_local(entry.filed_at, "%Y-%m-%d"),
               "percent": entry.note.percent if entry.note is not None else None,
               "note": entry.note.note if entry.note is not None else "",
               "status": "missing" if entry.note_id is None else ("late" if entry.late else "on_time")}
        row["status_label"] = {"missing": "未报送", "late": "逾期报送", "on_time": "按时报送"}[row["status"]]
        unit = units.setdefault(part.unit_id, {"name": part.unit.name, "rows": []})
        unit["rows"].append(row)
    unit_rows = []
    for unit in units.values():
        rows = unit["rows"]
        unit_rows.append({**unit, "parts": len(rows),
                          "on_time": [r for r in rows if r["status"] == "on_time"],
                          "late": [r for r in rows if r["status"] == "late"],
                          "missing": [r for r in rows if r["status"] == "missing"]})
    # Who owes most first, then who was late; among equals by name.
    unit_rows.sort(key=lambda u: (-len(u["missing"]), -len(u["late"]), u["name"]))
    total = len(entries)
    filed = sum(1 for e in entries if e.note_id is not None)
    late = sum(1 for e in entries if e.note_id is not None and e.late)
    return {
        "plan": plan_header(plan),
        "round": {"id": round_.id, "title": round_.title, "kind": RoundKind.label_of(round_.kind),
                  "scope": round_.scope or "全方案", "due_on": round_.due_on.isoformat(),
                  "instructions": round_.instructions or "", "state": RoundState.label_of(round_.state),
                  "opened_at": format_local(round_.opened_at), "closed_at": format_local(round_.closed_at),
                  "opened_by": _user_name(round_.opened_by), "closed_by": _user_name(round_.closed_by)
                  if round_.closed_by_id else ""},
        "summary": {"parts": total, "units": len(unit_rows), "filed": filed, "on_time": filed - late, "late": late,
                    "missing": total - filed, "rate": rate(filed, total), "on_time_rate": rate(filed - late, total),
                    "late_units": sum(1 for u in unit_rows if u["late"]),
                    "missing_units": sum(1 for u in unit_rows if u["missing"])},
        "units": unit_rows,
        "late_units": [u for u in unit_rows if u["late"]],
        "missing_units": [u for u in unit_rows if u["missing"]],
    }
