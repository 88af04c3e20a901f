"""The office's actions on many tasks or parts at once, from the task list and the 待签收 page.

Each is all or nothing, like 全部签收 (``services.receive_parts``): one selected
row that the action does not apply to refuses the whole batch, named in the
message, so that nobody has to work out afterwards which half went out.
Permission is checked per row (``services._require``), then the rules; the
caller commits once.
"""
from __future__ import annotations

from collections import OrderedDict

from auth.permissions import denial
from workflow import audit, notices, services
from workflow.machine import refusal
from workflow.services import Forbidden, Refused, _stale_as_refusal
from workflow.vocabulary import NotificationKind

NAMED = 10   # rows named in a refusal; the rest are counted
DEFAULT_REMIND = "请及时登录系统签收。"


def _names(labels: list[str]) -> str:
    more = f"等 {len(labels)} 项" if len(labels) > NAMED else ""
    return "、".join(labels[:NAMED]) + more


@_stale_as_refusal
def urge_tasks(tasks, user, message: str | None = None) -> int:
    """批量催办: ``services.urge`` on every task (one audit entry and its notices
    each). A task with nothing to urge (all handed in or closed) refuses the
    batch: the office unticks it and sends again, knowing exactly what went out."""
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise Refused("请至少选择一项任务。")
    for task in tasks:
        why = denial(user, "task.urge", task)
        if why:
            raise Forbidden(why)
    blocked = [t for t in tasks if refusal("task.urge", t)]
    if blocked:
        raise Refused("以下任务已全部提交或办结，无需催办，本次未催办任何任务（请取消勾选后重试）："
                      f"{_names([t.number_label for t in blocked])}。")
    for task in tasks:
        services.urge(task, user, message)
    return len(tasks)


@_stale_as_refusal
def remind_receipt(parts, user, message: str | None = None) -> int:
    """提醒签收: the parts not yet received, one audit entry per part
    (``receipt_reminded``), one notice per user of each unit naming all of
    that unit's selected tasks. Returns the number of units reminded."""
    parts = list(dict.fromkeys(parts))
    if not parts:
        raise Refused("请至少选择一项尚未签收的任务。")
    blocked = []
    for part in parts:
        try:
            services._require(user, "part.remind", part)
        except Refused:
            blocked.append(part)
    if blocked:
        raise Refused("以下任务已签收或已开始办理，无需提醒签收，本次未发送任何提醒（请取消勾选后重试）："
                      f"{_names([f'{p.task.number_label}（{p.unit.name}）' for p in blocked])}。")
    message = (message or "").strip() or DEFAULT_REMIND
    by_unit: OrderedDict[int, list] = OrderedDict()
    for part in parts:
        by_unit.setdefault(part.unit_id, []).append(part)
        audit.append("receipt_reminded", user=user, part=part, reason=message,
                     details={"unit": part.unit.name})
    for unit_id, unit_parts in by_unit.items():
        labels = "、".join(p.task.label for p in unit_parts)
        text = f"办公室提醒签收：{len(unit_parts)} 项任务尚未签收（{labels}）。{message}"
        # One task: the notice links to it; several: the unit's to-do page lists them.
        task_id = unit_parts[0].task_id if len({p.task_id for p in unit_parts}) == 1 else None
        notices.send(notices.unit_users([unit_parts[0].unit]), NotificationKind.RECEIPT_REMIND, text,
                     task_id=task_id)
    services._flush()
    return len(by_unit)


def remind_tasks(tasks, user, message: str | None = None) -> int:
    """提醒签收 from the task list: the parts of ``tasks`` not yet received. A
    task with no such part refuses the batch, as in ``remind_receipt``."""
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise Refused("请至少选择一项任务。")
    for task in tasks:
        why = denial(user, "part.remind", task.parts[0] if task.parts else None)
        if why:
            raise Forbidden(why)
    parts = {t.id: [p for p in t.parts if refusal("part.remind", p) is None] for t in tasks}
    blocked = [t for t in tasks if not parts[t.id]]
    if blocked:
        raise Refused("以下任务的承办单位均已签收或已开始办理，无需提醒签收，本次未发送任何提醒（请取消勾选后重试）："
                      f"{_names([t.number_label for t in blocked])}。")
    return remind_receipt([p for t in tasks for p in parts[t.id]], user, message)


__all__ = ["remind_receipt", "remind_tasks", "urge_tasks"]
