"""The office's writes around reminders: its rules, the rounds it schedules,
a sweep asked for now, and the 督办通报 (docs/reminders.md). Like every service:
checks, writes, audits, flushes; the view commits."""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from auth.permissions import denial
from models import Escalation, Item, Plan, ReminderRule, Role, RoundSchedule, Task, TaskPart
from workflow import audit, notices, reminders
from workflow.extensions import db
from workflow.reports import archive
from workflow.services import Forbidden, Refused, _check_version, _flush, _stale_as_refusal
from workflow.timeutil import today_local, utcnow
from workflow.vocabulary import EscalationState, NotificationKind, ReminderKind, ReportKind, RoundKind

DAYS_MAX = 90
ESCALATE_MAX = 20
_DAY_LIST = re.compile(r"^\s*(\d{1,3}\s*([,，、]\s*\d{1,3}\s*)*)?$")


def _require(user, action: str) -> None:
    why = denial(user, action)
    if why:
        raise Forbidden(why)


def parse_days(text: str) -> list[int]:
    """"7,3,1" (or 7，3、1) → [7, 3, 1]; Refused (Chinese) if it is not such a list."""
    text = (text or "").strip()
    if not _DAY_LIST.match(text):
        raise Refused("提前天数请填写以逗号分隔的天数，例如 7,3,1；不提前提醒请留空。")
    days = sorted({int(d) for d in re.split(r"[,，、\s]+", text) if d}, reverse=True)
    if any(d < 1 or d > DAYS_MAX for d in days):
        raise Refused(f"提前天数应在 1 到 {DAYS_MAX} 天之间。")
    return days


@_stale_as_refusal
def update_rule(user, kind: str, *, enabled: bool, days_before: str, on_due: bool, repeat_days: int,
                escalate_after: int, expected_version=None) -> ReminderRule:
    _require(user, "reminders.manage")
    if kind not in ReminderKind.values():
        raise Refused("提醒类型无效。")
    days = parse_days(days_before)
    if not 0 <= int(repeat_days) <= DAYS_MAX:
        raise Refused(f"逾期后重复提醒的间隔应在 0（不重复）到 {DAYS_MAX} 天之间。")
    if not 0 <= int(escalate_after) <= ESCALATE_MAX:
        raise Refused(f"转督办的提醒次数应在 0（不转督办）到 {ESCALATE_MAX} 次之间。")
    if kind == ReminderKind.CHECKPOINT and (on_due or repeat_days):
        raise Refused("长期任务节点只在节点前提醒：请把“当天提醒”和“之后每隔几天”留空。")
    rule = reminders.rule_row(kind)
    _check_version(rule, expected_version)
    old = {"enabled": rule.enabled, "days_before": rule.days_before, "on_due": rule.on_due,
           "repeat_days": rule.repeat_days, "escalate_after": rule.escalate_after}
    rule.enabled = bool(enabled)
    rule.days_before = ",".join(str(d) for d in days)
    rule.on_due = bool(on_due)
    rule.repeat_days = int(repeat_days)
    rule.escalate_after = int(escalate_after)
    rule.updated_by_id = user.id
    rule.updated_at = utcnow()
    new = {"enabled": rule.enabled, "days_before": rule.days_before, "on_due": rule.on_due,
           "repeat_days": rule.repeat_days, "escalate_after": rule.escalate_after}
    if new != old:
        audit.append("reminder_rule_changed", user=user, details={"kind": kind, "old": old, "new": new})
    _flush()
    return rule


def add_schedule(user, plan, *, kind: str, day: int, due_days: int, instructions: str | None) -> RoundSchedule:
    _require(user, "round.open")
    if kind not in (RoundKind.MONTHLY, RoundKind.WEEKLY):
        raise Refused("定时调度只能是月调度或周调度。")
    limit = 28 if kind == RoundKind.MONTHLY else 7
    if not 1 <= int(day) <= limit:
        raise Refused("月调度的发起日应为每月 1–28 日。" if kind == RoundKind.MONTHLY
                      else "周调度的发起日应为星期一到星期日（1–7）。")
    if not 1 <= int(due_days) <= 30:
        raise Refused("报送期限应为发起后 1–30 天。")
    instructions = (instructions or "").strip() or None
    if instructions and len(instructions) > 2000:
        raise Refused("报送要求不能超过 2000 字。")
    row = RoundSchedule(plan_id=plan.id, kind=kind, day=int(day), due_days=int(due_days), instructions=instructions,
                        active=True, created_by_id=user.id, created_at=utcnow())
    db.session.add(row)
    _flush()
    audit.append("round_scheduled", user=user, plan=plan,
                 details={"schedule": row.id, "kind": kind, "day": row.day, "due_days": row.due_days})
    return row


def set_schedule_active(user, schedule: RoundSchedule, active: bool) -> RoundSchedule:
    _require(user, "round.open")
    if schedule.active == bool(active):
        return schedule
    schedule.active = bool(active)
    audit.append("round_schedule_changed", user=user, plan=schedule.plan,
                 details={"schedule": schedule.id, "active": schedule.active})
    _flush()
    return schedule


def sweep_now(user):
    """Queue today's sweep for the worker (if it has not run today)."""
    _require(user, "reminders.manage")
    row = reminders.request_sweep(today_local(), user.username)
    if row is None:
        raise Refused("今天的提醒巡查已经运行或正在运行；同一天的提醒不会重复发送。"
                      "如需按今天重新检查，请用命令 flask reminders run。")
    return row


def active_escalations_query(plan_id: int | None = None):
    """SELECT of the active 督办 (of one plan), oldest first, with their parts, tasks and units."""
    query = (select(Escalation).join(TaskPart, Escalation.part_id == TaskPart.id).join(Task).join(Item)
             .where(Escalation.state.in_(EscalationState.active()))
             .options(joinedload(Escalation.part).joinedload(TaskPart.task).joinedload(Task.item),
                      joinedload(Escalation.part).joinedload(TaskPart.unit))
             .order_by(Escalation.raised_on, Escalation.id))
    if plan_id is not None:
        query = query.where(Item.plan_id == plan_id)
    return query


def active_escalations(plan_id: int | None = None, limit: int | None = None) -> list:
    return db.session.scalars(active_escalations_query(plan_id).limit(limit)).unique().all()


def issue_bulletin(user, plan: Plan, as_of: date | None = None):
    """通报: a 督办通报 naming every active 督办 of the plan; the open ones are
    marked as named in it, and their units' leaders told. Returns the report
    request (queued for the worker once the caller commits)."""
    _require(user, "escalation.bulletin")
    rows = active_escalations(plan.id)
    if not rows:
        raise Refused("目前没有督办事项，无需通报。")
    now = utcnow()
    newly = [r for r in rows if r.state == EscalationState.OPEN]
    for row in newly:
        row.state = EscalationState.BULLETIN.value
        row.bulletin_at = now
    _flush()
    audit.append("bulletin_issued", user=user, plan=plan,
                 details={"escalations": [r.id for r in rows], "newly_named": [r.id for r in newly]})
    try:
        params = archive.make_params(ReportKind.BULLETIN.value, plan_id=plan.id, as_of=as_of or today_local())
    except archive.ReportError as exc:
        raise Refused(exc.message) from None
    request = archive.request_report(params, user=user)
    for row in newly:
        row.bulletin_report_id = request.archive.id
    by_unit: dict[int, list] = {}
    for row in newly:
        by_unit.setdefault(row.part.unit_id, []).append(row)
    for unit_rows in by_unit.values():
        unit = unit_rows[0].part.unit
        labels = "、".join(r.part.task.number_label for r in unit_rows)
        leaders = notices.unit_users([unit], roles=[Role.UNIT_LEADER]) or notices.unit_users([unit])
        notices.send(leaders, NotificationKind.BULLETIN,
                     f"通报：办公室已将{unit.name}的 {len(unit_rows)} 项督办事项（{labels}）列入督办通报，"
                     f"请抓紧办结。", task_id=unit_rows[0].part.task_id if len(unit_rows) == 1 else None)
    _flush()
    return request


def resolved_escalations(limit: int = 20):
    return db.session.scalars(
        select(Escalation).where(Escalation.state == EscalationState.RESOLVED)
        .options(joinedload(Escalation.part).joinedload(TaskPart.task).joinedload(Task.item),
                 joinedload(Escalation.part).joinedload(TaskPart.unit))
        .order_by(Escalation.resolved_at.desc(), Escalation.id.desc()).limit(limit)).unique().all()
