"""延期申请 (extension requests) and 序时进度节点 (milestones of the planned-progress line).

The same conventions as workflow/services.py: one function per action, who and
when checked through ``services._require`` / ``services._fire`` (the rows of
``machine.EVENTS`` for the decisions, ``machine.ACTION_RULES`` for asking and
setting), the audit entry and the notices in the caller's transaction, a flush
and never a commit. docs/extensions.md describes the flow.

A request moves pending_lead → pending_office → granted, or to refused at
either step. Granting moves the part's own deadline (``TaskPart.deadline``);
the task keeps the plan's date, so 原定时限 stays visible beside 现行时限.
Anything that moves a part's date or line holds its red first (``pace.hold_red``):
a red part does not turn green by being given more time, only by reporting
progress that catches up (``services.record_progress``).
"""
from __future__ import annotations

from datetime import date

from auth.permissions import denial, office_decides_for_lead, part_of, task_of
from models import ExtensionRequest, Milestone, Plan, Role
from workflow import audit, pace
from workflow.machine import refusal
from workflow.extensions import db
from workflow.services import (
    Forbidden, Refused, _check_version, _fire, _flush, _require, _send_notices, _stale_as_refusal, _touch,
    notify_units, office_units, transition)
from workflow.timeutil import chinese_date, today_local, utcnow
from workflow.vocabulary import PENDING_LEAD, MilestoneState, NotificationKind

REASON_MAX = 2000
NOTE_MAX = 200


# ---------------------------------------------------------------- extension requests

@_stale_as_refusal
def request_extension(part, user, new_deadline: date | None, reason: str | None, *, expected_version=None):
    """延期申请: the part's unit asks for a later deadline, with its reason."""
    _require(user, "part.extend", part, expected_version)
    task = task_of(part)
    deadline = part.deadline_in_force(task)
    reason = (reason or "").strip()
    if new_deadline is None:
        raise Refused("请填写申请延至的日期。")
    if not reason:
        raise Refused("请填写申请延期的理由。")
    if len(reason) > REASON_MAX:
        raise Refused(f"申请理由不能超过 {REASON_MAX} 字。")
    if new_deadline <= deadline:
        raise Refused(f"申请延至的日期须晚于现行完成时限（{chinese_date(deadline)}）。")
    today = today_local()
    if new_deadline <= today:
        raise Refused("申请延至的日期须晚于今天。")
    # After the deadline only when the office allows it (LATE_EXTENSIONS): the rule said yes.
    late = today > deadline
    # The plain value, not the member the model's default is: transitions reads an
    # Enum state by its member name (workflow/vocabulary.py, Vocabulary.values).
    request = ExtensionRequest(state=PENDING_LEAD, requested_by_id=user.id, requested_at=utcnow(), old_deadline=deadline,
                               new_deadline=new_deadline, reason=reason, progress=part.progress or 0, late=late)
    part.extensions.append(request)
    _flush()
    audit.append("extension_requested", user=user, part=part, reason=reason,
                 details={"unit": part.unit.name, "extension": request.id, "to_state": request.state,
                          "old_deadline": deadline.isoformat(), "new_deadline": new_deadline.isoformat(),
                          "progress": request.progress, "late": late})
    message = (f"{part.unit.name}申请将{task.label}的完成时限由{chinese_date(deadline)}延至"
               f"{chinese_date(new_deadline)}{'（已超过原时限）' if late else ''}，请审核。")
    notify_units(task.lead_units, task, NotificationKind.EXTENSION, message, exclude_user=user,
                 roles=(Role.UNIT_LEADER,))
    if office_decides_for_lead(task, user.id):
        notify_units(office_units(), task, NotificationKind.EXTENSION,
                     message + "牵头单位没有其他负责人，由办公室代为审核。", exclude_user=user, roles=Role.OFFICE_ROLES)
    return request


def _record_decision(fired, user, action: str, **details):
    """The decision's audit entry on the part (the request's states, its dates,
    the reason) and the notices of its row, ``{date}`` being the date asked for."""
    _flush()
    request = fired.obj
    part = part_of(request)
    task = task_of(part)
    audit.append(action, user=user, part=part, reason=fired.inputs.get("reason"),
                 details={"unit": part.unit.name, "extension": request.id, "from_state": fired.source,
                          "to_state": fired.dest, "old_deadline": request.old_deadline.isoformat(),
                          "new_deadline": request.new_deadline.isoformat(), **details})
    _send_notices(fired.event, task, part, user, fired.inputs, date=chinese_date(request.new_deadline))
    return request


@transition("extension", "approve")
def approve_extension(request, user, *, expected_version=None):
    """The lead unit's leader agrees: the request goes on to the office."""
    fired = _fire(request, "approve", user, expected_version=expected_version)
    request.lead_decided_by_id, request.lead_decided_at = user.id, utcnow()
    return _record_decision(fired, user, "extension_approved")


@transition("extension", "decline")
def decline_extension(request, user, reason: str | None, *, expected_version=None):
    fired = _fire(request, "decline", user, expected_version=expected_version, reason=reason)
    request.lead_decided_by_id, request.lead_decided_at = user.id, utcnow()
    request.lead_reason = fired.inputs["reason"]
    return _record_decision(fired, user, "extension_declined")


@transition("extension", "grant")
def grant_extension(request, user, *, expected_version=None):
    """The office grants: the part's deadline in force becomes the date asked for."""
    fired = _fire(request, "grant", user, expected_version=expected_version)
    part = part_of(request)
    task = task_of(part)
    # The office may have changed the task since the request was made.
    if task.long_term:
        raise Refused("该任务已改为长期任务，不再有完成时限，无需批准延期；请选择不予延期并说明。")
    before = part.deadline_in_force(task)
    if before is not None and request.new_deadline <= before:
        raise Refused(f"现行完成时限已是{chinese_date(before)}，不早于申请延至的日期，无需批准延期；"
                      "请选择不予延期并说明。")
    # Before the date moves: a part red now stays red until its progress catches up.
    held = pace.hold_red([part], today_local())
    part.deadline = request.new_deadline
    request.office_decided_by_id, request.office_decided_at = user.id, utcnow()
    details = {"deadline_before": before.isoformat() if before else None}
    if held:
        details["red_held"] = True
    return _record_decision(fired, user, "extension_granted", **details)


@transition("extension", "refuse")
def refuse_extension(request, user, reason: str | None, *, expected_version=None):
    fired = _fire(request, "refuse", user, expected_version=expected_version, reason=reason)
    request.office_decided_by_id, request.office_decided_at = user.id, utcnow()
    request.office_reason = fired.inputs["reason"]
    return _record_decision(fired, user, "extension_refused")


# ---------------------------------------------------------------- milestones

def part_start(part, task=None) -> date:
    """Where the part's planned-progress line starts (the rule of workflow/pace.py)."""
    task = task or task_of(part)
    plan = db.session.get(Plan, task.item.plan_id)
    return pace.facts_for([part], {part.task_id: task}, {plan.id: plan}, today_local())[part.id].start


def check_line(part, points, task=None) -> None:
    """Refuse (Chinese) points (date, percent) that do not make a line: each
    after the part's start and before its deadline in force, 1–99%, one a day,
    the percentage rising with the date."""
    task = task or task_of(part)
    start, deadline = part_start(part, task), part.deadline_in_force(task)
    seen = set()
    for on, percent in points:
        if on is None:
            raise Refused("请填写进度节点的日期。")
        if percent is None or not 1 <= percent <= 99:
            raise Refused("进度节点的完成比例须为 1 到 99 之间的整数（100% 即完成时限）。")
        if on <= start:
            raise Refused(f"进度节点的日期须晚于该任务序时进度的起算日（{chinese_date(start)}）。")
        if deadline is not None and on >= deadline:
            raise Refused(f"进度节点的日期须早于现行完成时限（{chinese_date(deadline)}）。")
        if on in seen:
            raise Refused(f"{chinese_date(on)}已有一个进度节点，同一天只能设一个。")
        seen.add(on)
    ordered = sorted(points)
    for (d0, p0), (d1, p1) in zip(ordered, ordered[1:]):
        if p1 <= p0:
            raise Refused(f"进度节点的完成比例须随日期递增：{chinese_date(d1)}的 {p1}% 不高于"
                          f"{chinese_date(d0)}的 {p0}%。")


def _shown(m) -> str:
    return f"{m.on.isoformat()} {m.percent}%" + (f"（{m.note}）" if m.note else "")


def _clean_note(note) -> str | None:
    note = (note or "").strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise Refused(f"节点说明不能超过 {NOTE_MAX} 字。")
    return note


def _approved(part, excluding=None) -> list:
    return [m for m in part.milestones if m.state == MilestoneState.APPROVED and m is not excluding]


@_stale_as_refusal
def set_milestones(part, user, points, *, expected_version=None):
    """The office sets the part's line: ``points`` [(date, percent, note)] replace
    its approved and proposed milestones, approved at once ([] clears them)."""
    _require(user, "milestone.set", part, expected_version)
    task = task_of(part)
    rows = [(on, None if percent is None else int(percent), _clean_note(note)) for on, percent, note in points]
    check_line(part, [(on, percent) for on, percent, _ in rows], task)
    replaced = [m for m in part.milestones if m.state in (MilestoneState.APPROVED, MilestoneState.PROPOSED)]
    before = [_shown(m) for m in replaced if m.state == MilestoneState.APPROVED]
    # Before the line moves (see the module's docstring).
    held = pace.hold_red([part], today_local())
    for m in replaced:
        db.session.delete(m)
    now = utcnow()
    for on, percent, note in sorted(rows, key=lambda r: r[0]):
        db.session.add(Milestone(part_id=part.id, on=on, percent=percent, note=note, state=MilestoneState.APPROVED.value,
                                 proposed_by_id=user.id, proposed_at=now, decided_by_id=user.id, decided_at=now))
    # The line is part of what the unit's page shows: another page open on the part is now stale.
    _touch(part)
    _flush()
    db.session.expire(part, ["milestones"])
    after = [_shown(m) for m in part.milestones]
    details = {"unit": part.unit.name, "milestones_before": before, "milestones": after}
    withdrawn = [_shown(m) for m in replaced if m.state == MilestoneState.PROPOSED]
    if withdrawn:
        details["proposals_replaced"] = withdrawn
    if held:
        details["red_held"] = True
    audit.append("milestones_set", user=user, part=part, details=details)
    notify_units([part.unit], task, NotificationKind.MILESTONE,
                 f"办公室调整了{task.label}（{part.unit.name}）的序时进度节点："
                 + ("、".join(after) if after else "已取消全部节点，按起止日期匀速计算") + "。", exclude_user=user)
    return part.milestones


@_stale_as_refusal
def propose_milestone(part, user, on: date | None, percent, note: str | None, *, expected_version=None):
    """The part's unit proposes a point of its own line; the lead unit's leader decides."""
    _require(user, "milestone.propose", part, expected_version)
    task = task_of(part)
    percent = None if percent is None else int(percent)
    note = _clean_note(note)
    check_line(part, [(m.on, m.percent) for m in _approved(part)] + [(on, percent)], task)
    if any(m.on == on for m in part.milestones if m.state == MilestoneState.PROPOSED):
        raise Refused(f"{chinese_date(on)}已有一个待确认的进度节点，请等待牵头单位确认。")
    milestone = Milestone(on=on, percent=percent, note=note, state=MilestoneState.PROPOSED.value,
                          proposed_by_id=user.id, proposed_at=utcnow())
    part.milestones.append(milestone)
    _flush()
    audit.append("milestone_proposed", user=user, part=part,
                 details={"unit": part.unit.name, "milestone": milestone.id, "on": on.isoformat(),
                          "percent": percent, "note": note})
    message = f"{part.unit.name}提出{task.label}的进度节点：{chinese_date(on)}完成 {percent}%，请确认。"
    notify_units(task.lead_units, task, NotificationKind.MILESTONE, message, exclude_user=user,
                 roles=(Role.UNIT_LEADER,))
    if office_decides_for_lead(task, user.id):
        notify_units(office_units(), task, NotificationKind.MILESTONE,
                     message + "牵头单位没有其他负责人，由办公室代为确认。", exclude_user=user, roles=Role.OFFICE_ROLES)
    return milestone


def _milestone_checks(milestone, trigger: str, user, expected_version):
    """Who, stale page, when — as ``services._require``; a milestone has no
    version of its own: the page's version is the part's."""
    action = f"milestone.{trigger}"
    why = denial(user, action, milestone)
    if why:
        raise Forbidden(why)
    part = part_of(milestone)
    _check_version(part, expected_version)
    why = refusal(action, milestone)
    if why:
        raise Refused(why)
    return part


def _record_milestone(fired, part, user, action: str, **details):
    _flush()
    milestone = fired.obj
    task = task_of(part)
    audit.append(action, user=user, part=part, reason=fired.inputs.get("reason"),
                 details={"unit": part.unit.name, "milestone": milestone.id, "from_state": fired.source,
                          "to_state": fired.dest, "on": milestone.on.isoformat(), "percent": milestone.percent,
                          **details})
    _send_notices(fired.event, task, part, user, fired.inputs, date=chinese_date(milestone.on))
    return milestone


@transition("milestone", "approve")
def approve_milestone(milestone, user, *, expected_version=None):
    part = _milestone_checks(milestone, "approve", user, expected_version)
    # The line may have changed since it was proposed (the office set others).
    check_line(part, [(m.on, m.percent) for m in _approved(part, excluding=milestone)]
               + [(milestone.on, milestone.percent)])
    # Before the line moves (see the module's docstring).
    held = pace.hold_red([part], today_local())
    fired = _fire(milestone, "approve", user)
    milestone.decided_by_id, milestone.decided_at = user.id, utcnow()
    _touch(part)
    return _record_milestone(fired, part, user, "milestone_approved", **({"red_held": True} if held else {}))


@transition("milestone", "refuse")
def refuse_milestone(milestone, user, reason: str | None, *, expected_version=None):
    part = _milestone_checks(milestone, "refuse", user, expected_version)
    fired = _fire(milestone, "refuse", user, reason=reason)
    milestone.decided_by_id, milestone.decided_at = user.id, utcnow()
    milestone.decision_reason = fired.inputs["reason"]
    return _record_milestone(fired, part, user, "milestone_refused")
