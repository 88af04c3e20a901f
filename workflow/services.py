"""The only code that changes a task's state, evidence or progress.

Each function checks permission, applies the rules, writes the audit entry
and notifications, and flushes — all in the caller's transaction. It never
commits: the view or CLI command commits (or rolls back) once, so a state
change and its audit entry land together or not at all.
"""
from __future__ import annotations

import functools

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from auth.permissions import may
from models import Role
from workflow import audit
from workflow.extensions import db
from workflow.machine import EVENT_LABELS, TransitionRefused, derived_task_state, fire
from workflow.states import CLOSED, IN_PROGRESS, STATE_LABELS, VERIFIED
from workflow.timeutil import utcnow


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Forbidden(ServiceError):
    status = 403


class Refused(ServiceError):
    """The rules say no (wrong state, missing reason …)."""
    status = 409


class Stale(ServiceError):
    """Someone else changed the task since the page was loaded."""
    status = 409


class StorageError(ServiceError):
    """The server could not keep a file (disk full, not writable)."""
    status = 507


STALE_MESSAGE = "该任务刚刚已被他人更新，您的操作未生效。页面已刷新为最新状态，请确认后再操作。"


def _check(user, action: str, obj) -> None:
    if not may(user, action, obj):
        raise Forbidden("您没有执行此操作的权限。")


def _check_version(obj, expected_version) -> None:
    if expected_version is not None and int(expected_version) != obj.version:
        raise Stale(STALE_MESSAGE)


def _flush() -> None:
    try:
        db.session.flush()
    except StaleDataError:
        raise Stale(STALE_MESSAGE) from None


def _stale_as_refusal(service):
    """Any flush may find the row changed by another transaction, an autoflush
    before a lazy load included, not only ``_flush``: the caller always gets Stale."""
    @functools.wraps(service)
    def wrapper(*args, **kwargs):
        try:
            return service(*args, **kwargs)
        except StaleDataError:
            raise Stale(STALE_MESSAGE) from None
    return wrapper


# ---------------------------------------------------------------- notifications

def notify_units(units, task, kind: str, message: str, exclude_user=None, roles=None) -> None:
    """One inbox row per active user of the units (optionally only some roles)."""
    from models import Notification, User

    unit_ids = [u.id for u in units]
    if not unit_ids:
        return
    now = utcnow()
    query = select(User).where(User.unit_id.in_(unit_ids), User.active.is_(True))
    if roles:
        query = query.where(User.role.in_(roles))
    users = db.session.scalars(query)
    for user in users:
        if exclude_user is not None and user.id == exclude_user.id:
            continue
        db.session.add(Notification(user_id=user.id, task_id=task.id, kind=kind, message=message, created_at=now))


# ---------------------------------------------------------------- transitions

PART_ACTION_FOR_EVENT = {"start": "part.start", "submit": "part.submit", "verify": "part.verify",
                         "return": "part.return"}
TASK_ACTION_FOR_EVENT = {"close": "task.close", "reopen": "task.reopen"}


@_stale_as_refusal
def transition_part(part, event: str, user, *, expected_version=None, statement: str | None = None,
                    reason: str | None = None):
    """start / submit / verify / return one unit's part of a task."""
    from models import Submission

    action = PART_ACTION_FOR_EVENT.get(event)
    if action is None:
        raise Refused(f"未知的操作：{event}")
    _check(user, action, part)
    _check_version(part, expected_version)
    statement = (statement or "").strip() or None
    reason = (reason or "").strip() or None
    try:
        source, dest = fire(part, event, user=user, statement=statement, reason=reason)
    except TransitionRefused as exc:
        raise Refused(exc.message) from None
    now = utcnow()
    task = part.task
    details: dict = {"unit": part.unit.name}
    if event == "submit":
        submission = Submission(part_id=part.id, number=len(part.submissions) + 1, statement=statement,
                                submitted_by_id=user.id, submitted_at=now)
        db.session.add(submission)
        pending = part.pending_evidence
        for evidence in pending:
            evidence.submission = submission
        part.submissions.append(submission)
        part.progress = 100
        details.update(submission=submission.number, evidence=[e.id for e in pending])
        _flush()
    elif event in ("verify", "return"):
        latest = part.submissions[-1]
        latest.outcome = "verified" if event == "verify" else "returned"
        latest.decided_by_id = user.id
        latest.decided_at = now
        latest.decision_reason = reason
        details["submission"] = latest.number
    _flush()
    audit.append("transition", user=user, part=part, from_state=source, to_state=dest, reason=reason,
                 details={**details, "event": event, "statement": statement})

    label = f"{task.label}（{part.unit.name}）"
    if event == "submit":
        # Only leaders verify, so only they are asked to.
        notify_units(task.lead_units, task, "submitted", f"{part.unit.name}已提交{task.label}的完成材料，请核验。",
                     roles=(Role.UNIT_LEADER,))
    elif event == "return":
        notify_units([part.unit], task, "returned", f"{label}被退回：{reason}")
    elif event == "verify":
        notify_units([part.unit], task, "verified", f"{label}已核验通过。")
    _sync_task(task, user)
    return part


def _sync_task(task, user) -> None:
    """The task follows its parts (a closed task stays closed until reopened)."""
    if task.state == CLOSED:
        return
    new_state = derived_task_state(task.parts)
    if new_state != task.state:
        old = task.state
        task.state = new_state
        _flush()
        audit.append("task_state", user=user, task=task, from_state=old, to_state=new_state,
                     details={"derived": True})


@_stale_as_refusal
def transition_task(task, event: str, user, *, expected_version=None, reason: str | None = None):
    """close / reopen a whole task (the office)."""
    action = TASK_ACTION_FOR_EVENT.get(event)
    if action is None:
        raise Refused(f"未知的操作：{event}")
    _check(user, action, task)
    _check_version(task, expected_version)
    reason = (reason or "").strip() or None
    try:
        source, dest = fire(task, event, user=user, reason=reason)
    except TransitionRefused as exc:
        raise Refused(exc.message) from None
    if event == "reopen":
        for part in task.parts:
            if part.state == VERIFIED:
                part_source, _ = fire(part, "reopen", user=user, reason=reason)
                if part.submissions:
                    part.submissions[-1].outcome = "reopened"
                audit.append("transition", user=user, part=part, from_state=part_source, to_state=part.state,
                             reason=reason, details={"event": "reopen", "unit": part.unit.name})
        notify_units([p.unit for p in task.parts], task, "reopened", f"{task.label}已被办公室重新打开：{reason}")
    _flush()
    audit.append("transition", user=user, task=task, from_state=source, to_state=dest, reason=reason,
                 details={"event": event})
    if event == "close":
        notify_units([p.unit for p in task.parts] + list(task.lead_units), task, "closed", f"{task.label}已办结。")
    return task


# ---------------------------------------------------------------- progress and evidence

@_stale_as_refusal
def record_progress(part, user, percent: int, note: str, *, expected_version=None):
    from models import ProgressNote

    _check(user, "part.progress", part)
    _check_version(part, expected_version)
    if part.state != IN_PROGRESS:
        raise Refused(f"当前状态为“{STATE_LABELS[part.state]}”，只有推进中的任务可以填报进度。")
    note = (note or "").strip()
    if not note:
        raise Refused("请填写进度说明。")
    if not 0 <= int(percent) <= 100:
        raise Refused("完成比例须在 0 到 100 之间。")
    entry = ProgressNote(part_id=part.id, user_id=user.id, at=utcnow(), percent=int(percent), note=note)
    db.session.add(entry)
    part.progress = int(percent)
    _flush()
    audit.append("progress", user=user, part=part, details={"percent": int(percent), "note": note})
    return entry


@_stale_as_refusal
def add_text_evidence(part, user, text: str, *, expected_version=None):
    from models import Evidence

    _check(user, "part.evidence", part)
    _check_version(part, expected_version)
    _require_in_progress(part)
    text = (text or "").strip()
    if not text:
        raise Refused("请填写材料内容。")
    evidence = Evidence(part_id=part.id, kind="text", text=text, uploaded_by_id=user.id, uploaded_at=utcnow())
    db.session.add(evidence)
    part.evidence.append(evidence)
    _touch(part)
    _flush()
    audit.append("evidence_added", user=user, part=part, details={"evidence": evidence.id, "kind": "text",
                                                                    "text": text})
    return evidence


@_stale_as_refusal
def add_file_evidence(part, user, data: bytes, filename: str, description: str | None = None, *,
                      expected_version=None):
    """Check the file by content, store it by hash, add the row. If the
    transaction later fails, the caller calls ``storage.discard_unreferenced``
    after the rollback (see ``views.tasks``): it removes the file only if no
    committed row uses it."""
    from models import Evidence
    from workflow import storage

    _check(user, "part.evidence", part)
    _check_version(part, expected_version)
    _require_in_progress(part)
    name = storage.clean_filename(filename or "")
    try:
        mime = storage.check(data, name)
    except storage.FileRefused as exc:
        raise Refused(exc.message) from None
    try:
        sha, _ = storage.store(data)
    except storage.StorageFailed as exc:
        raise StorageError(exc.message) from None
    evidence = Evidence(part_id=part.id, kind="file", filename=name, content_sha256=sha, size=len(data),
                        mime=mime, text=(description or "").strip() or None, uploaded_by_id=user.id,
                        uploaded_at=utcnow())
    db.session.add(evidence)
    part.evidence.append(evidence)
    _touch(part)
    _flush()
    audit.append("evidence_added", user=user, part=part,
                 details={"evidence": evidence.id, "kind": "file", "filename": name, "sha256": sha,
                          "size": len(data)})
    return evidence


@_stale_as_refusal
def remove_pending_evidence(evidence, user):
    """Evidence not yet submitted may be withdrawn; submitted evidence never."""
    _check(user, "part.evidence", evidence.part)
    if not evidence.is_pending:
        raise Refused("已提交的材料不能删除或修改。")
    part = evidence.part
    audit.append("evidence_removed", user=user, part=part,
                 details={"evidence": evidence.id, "kind": evidence.kind, "filename": evidence.filename})
    part.evidence.remove(evidence)
    _touch(part)
    db.session.delete(evidence)
    _flush()


def _touch(part) -> None:
    """Evidence is part of what a submission hands in: adding or withdrawing it
    updates the part row (and so its version), so that an upload racing a
    submit of the same part cannot land after it as "pending" evidence."""
    flag_modified(part, "progress")


def _require_in_progress(part) -> None:
    if part.state != IN_PROGRESS:
        hint = "请先点击“开始办理”。" if part.state == "planned" else ""
        raise Refused(f"当前状态为“{STATE_LABELS[part.state]}”，不能添加材料。{hint}")


# ---------------------------------------------------------------- office actions

@_stale_as_refusal
def urge(task, user, message: str | None = None):
    """催办: notify every unit whose part is not yet submitted."""
    from auth.permissions import can

    _check(user, "task.urge", task)
    if not can(user, "task.urge", task):
        raise Refused("该任务已全部提交或办结，无需催办。")
    behind = [p for p in task.parts if p.state in ("planned", IN_PROGRESS)]
    message = (message or "").strip() or "请抓紧推进并按时提交完成材料。"
    notify_units([p.unit for p in behind], task, "urged", f"办公室催办{task.label}：{message}")
    audit.append("urge", user=user, task=task, reason=message, details={"units": [p.unit.name for p in behind]})
    _flush()


EDITABLE_FIELDS = {"text": "任务内容", "deadline": "完成时限", "deadline_text": "时限原文", "long_term": "长期任务"}


@_stale_as_refusal
def edit_task(task, user, *, expected_version=None, **changes):
    """Edit a task's fields; the audit entry keeps old and new values."""
    _check(user, "task.edit", task)
    _check_version(task, expected_version)
    diff = {}
    for field, value in changes.items():
        if field not in EDITABLE_FIELDS:
            raise Refused(f"字段“{field}”不能修改。")
        old = getattr(task, field)
        if old != value:
            diff[field] = {"old": old, "new": value}
            setattr(task, field, value)
    if task.long_term and task.deadline is not None:
        raise Refused("长期任务不能同时设置完成时限。")
    if not diff:
        return task
    _flush()
    audit.append("task_edited", user=user, task=task, details=diff)
    return task


__all__ = ["EVENT_LABELS", "Forbidden", "Refused", "ServiceError", "Stale", "StorageError", "add_file_evidence",
           "add_text_evidence", "edit_task", "record_progress", "remove_pending_evidence", "transition_part",
           "transition_task", "urge"]
