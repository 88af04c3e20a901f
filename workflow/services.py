"""The only code that changes a task's state, evidence or progress.

Each function checks permission, applies the rules, writes the audit entry
and notifications, and flushes — all in the caller's transaction. It never
commits: the view or CLI command commits (or rolls back) once, so a state
change and its audit entry land together or not at all.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from auth.permissions import denial
from models import Evidence, Notification, ProgressNote, Role, Submission, Unit, User
from workflow import audit, machine, notices, pace, storage
from workflow.extensions import db
from workflow.machine import Event, refusal
from workflow.timeutil import today_local, utcnow
from workflow.vocabulary import CLOSED, VERIFIED, NotificationKind, SubmissionOutcome


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

def notify_units(units, task, kind: NotificationKind, message: str, exclude_user=None, roles=None) -> None:
    """A notice to every active user of the units (optionally only some roles):
    the inbox and each user's channels (workflow/notices/)."""
    notices.send(notices.unit_users(units, roles=roles, exclude_user=exclude_user), kind, message, task)


def mark_read(notification, user) -> bool:
    """The recipient read one notice (the office sees when). Reading is not audited."""
    if notification.user_id != user.id:
        raise Forbidden("这不是您的消息。")
    if notification.read_at is not None:
        return False
    notification.read_at = utcnow()
    _flush()
    return True


def mark_all_read(user) -> int:
    """Every unread notice of the user, read now; how many."""
    result = db.session.execute(update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)).values(read_at=utcnow()))
    return result.rowcount


# Who each recipient name in the event table (workflow/machine.py) is: (units, roles or None).
RECIPIENTS = {
    machine.PART_UNIT: lambda task, part: ([part.unit], None),
    # Only leaders verify, so only they are asked to.
    machine.LEAD_LEADERS: lambda task, part: (task.lead_units, (Role.UNIT_LEADER,)),
    machine.PART_UNITS: lambda task, part: ([p.unit for p in task.parts], None),
    machine.PART_AND_LEAD_UNITS: lambda task, part: ([p.unit for p in task.parts] + list(task.lead_units), None),
    machine.OFFICE: lambda task, part: (office_units(), Role.OFFICE_ROLES),
}


def office_units() -> list:
    """The units the office's admins and staff belong to (usually the one 办公室)."""
    return db.session.scalars(select(Unit).where(Unit.id.in_(
        select(User.unit_id).where(User.role.in_(Role.OFFICE_ROLES), User.active.is_(True))))).all()


def _send_notices(event: Event, task, part, user, inputs: dict, date: str = "") -> None:
    fields = {"task": task.label, "unit": part.unit.name if part is not None else "",
              "reason": inputs.get("reason") or "", "date": date}
    for notice in event.notices:
        units, roles = RECIPIENTS[notice.to](task, part)
        # The one who acted knows already.
        notify_units(units, task, notice.kind, notice.message.format(**fields), exclude_user=user, roles=roles)


# ---------------------------------------------------------------- transitions

@dataclass
class Fired:
    event: Event
    obj: object
    source: str
    dest: str
    inputs: dict


def _require(user, action: str, obj, expected_version=None) -> None:
    """Who (auth/permissions.py), then when (workflow/machine.py): the same two
    answers that decide whether the page shows the button. In between, whether
    the page was stale: a user who lost a race hears that, not the new state."""
    why = denial(user, action, obj)
    if why:
        raise Forbidden(why)
    _check_version(obj, expected_version)
    why = refusal(action, obj)
    if why:
        raise Refused(why)


def _fire(obj, trigger: str, user, *, expected_version=None, **inputs) -> Fired:
    """Check, then run one row of the event table on ``obj``. A row without a
    permission action is only fired by another event's service, which has
    checked its own."""
    event = machine.EVENT_BY_KEY[(machine.subject_of(obj), trigger)]
    if event.action is not None:
        _require(user, event.action, obj, expected_version)
    inputs = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in inputs.items()}
    try:
        source, dest = machine.fire(obj, trigger, user=user, **inputs)
    except machine.TransitionRefused as exc:
        raise Refused(exc.message) from None
    return Fired(event, obj, source, dest, inputs)


def _record(fired: Fired, user, **details):
    """Flush, write the audit entry and the notices; a part's task follows it."""
    _flush()
    obj, event = fired.obj, fired.event
    is_part = event.subject == "part"
    entry = {"event": event.trigger, **({"unit": obj.unit.name} if is_part else {})}
    if "statement" in event.inputs:
        entry["statement"] = fired.inputs.get("statement")
    audit.append("transition", user=user, part=obj if is_part else None, task=None if is_part else obj,
                 from_state=fired.source, to_state=fired.dest, reason=fired.inputs.get("reason"),
                 details={**entry, **details})
    task = obj.task if is_part else obj
    _send_notices(event, task, obj if is_part else None, user, fired.inputs)
    # A part that stays in its state (签收) leaves its task's derived state as it was.
    if is_part and fired.source != fired.dest:
        _sync_task(task, user)
    return obj


TRANSITIONS: dict[tuple[str, str], Callable] = {}


def transition(subject: str, trigger: str):
    """Register the service that fires one row of the event table; the task
    page's routes find it here by the row's key."""
    def register(service):
        wrapped = _stale_as_refusal(service)
        TRANSITIONS[(subject, trigger)] = wrapped
        return wrapped
    return register


@transition("part", "receive")
def receive_part(part, user, *, expected_version=None):
    """签收: the unit acknowledges that the part has reached it."""
    fired = _fire(part, "receive", user, expected_version=expected_version)
    part.received_at = utcnow()
    part.received_by_id = user.id
    return _record(fired, user)


@_stale_as_refusal
def receive_parts(parts, user) -> int:
    """全部签收: every one of ``parts`` or none. A part that cannot be received
    (already received, no longer planned, another unit's) refuses the whole
    batch, named in the message, so nothing is half-done."""
    parts = list(dict.fromkeys(parts))
    if not parts:
        raise Refused("请至少选择一项待签收的任务。")
    blocked = [p for p in parts if denial(user, "part.receive", p) or refusal("part.receive", p)]
    if blocked:
        names = "、".join(f"{p.task.number_label}（{p.unit.name}）" for p in blocked[:10])
        more = f"等 {len(blocked)} 项" if len(blocked) > 10 else ""
        raise Refused(f"以下任务不能签收（已签收、已开始办理或不属于本单位），本次未签收任何任务：{names}{more}。")
    for part in parts:
        receive_part(part, user)
    return len(parts)


@transition("part", "start")
def start_part(part, user, *, expected_version=None):
    return _record(_fire(part, "start", user, expected_version=expected_version), user)


@transition("part", "submit")
def submit_part(part, user, statement: str | None, *, carry=(), expected_version=None):
    """Hand in the pending evidence, and earlier evidence chosen to carry over
    (``carry``: ids of evidence from this part's earlier submissions)."""
    # Who and when first: only then is the choice of earlier evidence worth reading.
    _require(user, "part.submit", part, expected_version)
    carried = _carryable_chosen(part, carry)
    fired = _fire(part, "submit", user, statement=statement, carry=carried)
    submission = Submission(part_id=part.id, number=len(part.submissions) + 1, statement=fired.inputs["statement"],
                            submitted_by_id=user.id, submitted_at=utcnow())
    db.session.add(submission)
    pending = list(part.pending_evidence)
    for evidence in pending:
        evidence.submission = submission
    copies = [_carry(evidence, part, submission) for evidence in carried]
    part.evidence.extend(copies)
    part.submissions.append(submission)
    part.progress = 100
    # Handed in: no colour, and a held red ends (a return starts from the rules again).
    part.red_since = part.red_reason = None
    _flush()
    details = {"submission": submission.number, "evidence": [e.id for e in pending]}
    if copies:
        details["carried"] = [e.carried_from_id for e in copies]
    return _record(fired, user, **details)


@transition("part", "verify")
def verify_part(part, user, *, expected_version=None):
    fired = _fire(part, "verify", user, expected_version=expected_version)
    submission = _decide(part, user, SubmissionOutcome.VERIFIED)
    return _record(fired, user, submission=submission.number)


@transition("part", "return")
def return_part(part, user, reason: str | None, *, expected_version=None):
    fired = _fire(part, "return", user, expected_version=expected_version, reason=reason)
    submission = _decide(part, user, SubmissionOutcome.RETURNED, fired.inputs["reason"])
    _unfinished(part)
    return _record(fired, user, submission=submission.number)


@transition("task", "close")
def close_task(task, user, *, expected_version=None):
    return _record(_fire(task, "close", user, expected_version=expected_version), user)


@transition("task", "reopen")
def reopen_task(task, user, reason: str | None, *, expected_version=None):
    """Every verified part goes back to work with the task."""
    fired = _fire(task, "reopen", user, expected_version=expected_version, reason=reason)
    for part in task.parts:
        if part.state == VERIFIED:
            part_fired = _fire(part, "reopen", user, reason=fired.inputs["reason"])
            if part.submissions:
                part.submissions[-1].outcome = SubmissionOutcome.REOPENED
            _unfinished(part)
            _record(part_fired, user)
    return _record(fired, user)


def apply(obj, trigger: str, user, **inputs):
    """Fire a row of the event table through its service (the task page's routes)."""
    return TRANSITIONS[(machine.subject_of(obj), trigger)](obj, user, **inputs)


def _decide(part, user, outcome: SubmissionOutcome, reason: str | None = None):
    latest = part.submissions[-1]
    latest.outcome = outcome
    latest.decided_by_id = user.id
    latest.decided_at = utcnow()
    latest.decision_reason = reason
    return latest


def _unfinished(part) -> None:
    """Work sent back is not finished, whatever the submission claimed: the
    part shows the progress last reported before it, below 100%."""
    # Asked of the database, not ``part.progress_notes``: loaded earlier in the
    # transaction, that collection does not have the notes added since.
    reported = db.session.scalar(select(ProgressNote.percent).where(ProgressNote.part_id == part.id)
                                 .order_by(ProgressNote.at.desc(), ProgressNote.id.desc()).limit(1)) or 0
    part.progress = min(reported, 99)


def carryable_evidence(part) -> list:
    """Evidence handed in with the part's earlier submissions, once per item
    (an item carried over several times is offered as its latest copy)."""
    latest: dict[int, Evidence] = {}
    for submission in part.submissions:
        for evidence in submission.evidence:
            latest[evidence.carried_from_id or evidence.id] = evidence
    return list(latest.values())


def _carryable_chosen(part, chosen) -> list:
    ids = list(dict.fromkeys(int(i) for i in chosen or ()))
    if not ids:
        return []
    offered = {e.id: e for e in carryable_evidence(part)}
    unknown = [i for i in ids if i not in offered]
    if unknown:
        raise Refused("所选的以前材料不存在或不属于该任务，请刷新页面后重新选择。")
    return [offered[i] for i in ids]


def _carry(evidence, part, submission):
    """A copy in the new submission: the earlier submission keeps what it was
    handed in with, unchanged."""
    copy = Evidence(part_id=part.id, submission=submission, kind=evidence.kind, text=evidence.text,
                    filename=evidence.filename, content_sha256=evidence.content_sha256, size=evidence.size,
                    mime=evidence.mime, uploaded_by_id=evidence.uploaded_by_id, uploaded_at=evidence.uploaded_at,
                    carried_from_id=evidence.carried_from_id or evidence.id)
    db.session.add(copy)
    return copy


def _sync_task(task, user) -> None:
    """The task follows its parts (a closed task stays closed until reopened)."""
    if task.state == CLOSED:
        return
    new_state = machine.derived_task_state(task.parts)
    if new_state != task.state:
        old = task.state
        task.state = new_state
        _flush()
        audit.append("task_state", user=user, task=task, from_state=old, to_state=new_state,
                     details={"derived": True})


# ---------------------------------------------------------------- progress and evidence

@_stale_as_refusal
def record_progress(part, user, percent: int, note: str, *, expected_version=None):
    _require(user, "part.progress", part, expected_version)
    return _progress_entry(part, user, percent, note)


def _progress_entry(part, user, percent, note: str, *, action: str = "progress", **details):
    """A progress note on an allowed part (the caller checked who and when):
    the note, ``part.progress``, the red latch and the audit entry, in one place
    for a plain progress report and a round's filing (workflow/round_services.py)."""
    note = (note or "").strip()
    if not note:
        raise Refused("请填写进度说明。")
    if percent is None or not 0 <= int(percent) <= 100:
        raise Refused("完成比例须在 0 到 100 之间。")
    entry = ProgressNote(part_id=part.id, user_id=user.id, at=utcnow(), percent=int(percent), note=note)
    db.session.add(entry)
    part.progress = int(percent)
    _flush()
    details = {"percent": int(percent), "note": note, **details}
    # The one way out of a held red: progress that catches up with the line in force.
    if pace.release_if_caught_up(part, today_local()):
        details["red_released"] = True
        _flush()
    audit.append(action, user=user, part=part, details=details)
    return entry


@_stale_as_refusal
def add_text_evidence(part, user, text: str, *, expected_version=None):
    _require(user, "part.evidence", part, expected_version)
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
    _require(user, "part.evidence", part, expected_version)
    return _file_evidence(part, user, data, filename, description)


def _file_evidence(part, user, data: bytes, filename: str, description: str | None = None, *,
                   progress_note=None):
    """Check the file by content, store it, add the pending evidence row and its
    audit entry (the caller checked who and when). A round's filing hands its
    files in here too, tied to its progress note."""
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
                        uploaded_at=utcnow(), progress_note_id=progress_note.id if progress_note else None)
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
    why = denial(user, "part.evidence", evidence.part)
    if why:
        raise Forbidden(why)
    if not evidence.is_pending:
        raise Refused("已提交的材料不能删除或修改。")
    _require(user, "part.evidence", evidence.part)
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


# ---------------------------------------------------------------- office actions

@_stale_as_refusal
def urge(task, user, message: str | None = None):
    """催办: notify every unit whose part is not yet submitted; one audit entry
    per part urged (the unit's record says it was urged, and when)."""
    _require(user, "task.urge", task)
    behind = machine.open_parts(task)
    message = (message or "").strip() or "请抓紧推进并按时提交完成材料。"
    notify_units([p.unit for p in behind], task, NotificationKind.URGED, f"办公室催办{task.label}：{message}")
    for part in behind:
        audit.append("urge", user=user, part=part, reason=message, details={"unit": part.unit.name})
    _flush()


EDITABLE_FIELDS = {"text": "任务内容", "deadline": "完成时限", "deadline_text": "时限原文", "long_term": "长期任务"}
# A task edit's audit details: the fields, and the units whose receipt it cleared.
EDIT_DETAIL_LABELS = {**EDITABLE_FIELDS, "receipts_cleared": "需重新签收的单位",
                      "extensions_superseded": "原批准的延期时限不再适用的单位"}
# Changing these moves a part's planned-progress line.
DATE_FIELDS = {"deadline", "long_term"}


@_stale_as_refusal
def edit_task(task, user, *, expected_version=None, **changes):
    """Edit a task's fields; the audit entry keeps old and new values."""
    _require(user, "task.edit", task, expected_version)
    unknown = [field for field in changes if field not in EDITABLE_FIELDS]
    if unknown:
        raise Refused(f"字段“{unknown[0]}”不能修改。")
    if set(audit.changes(task, changes, apply=False)) & DATE_FIELDS:
        # A red part stays red through a date change until its progress catches up.
        pace.hold_red(task.parts, today_local())
    diff = audit.changes(task, changes)
    if task.long_term and task.deadline is not None:
        raise Refused("长期任务不能同时设置完成时限。")
    if not diff:
        return task
    cleared = _clear_receipts(task) if set(diff) & RECEIPT_FIELDS else []
    # The office's own date is the one in force for every part, extended or not.
    extended = [p for p in task.parts if p.deadline is not None] if set(diff) & DATE_FIELDS else []
    for part in extended:
        part.deadline = None
    _flush()
    if cleared:
        diff = {**diff, "receipts_cleared": [p.unit.name for p in cleared]}
    if extended:
        diff = {**diff, "extensions_superseded": [p.unit.name for p in extended]}
    audit.append("task_edited", user=user, task=task, details=diff)
    if cleared:
        notify_units([p.unit for p in cleared], task, NotificationKind.RECEIPT_RESET,
                     f"{task.label}：任务内容或时限已修改，请重新签收。")
    return task


# What a unit acknowledged when it received a part: changing any of these asks for a new receipt.
RECEIPT_FIELDS = {"text", "deadline", "deadline_text", "long_term"}


def _clear_receipts(task) -> list:
    """The received parts that are still planned (a part already started
    cannot be received again, and its work goes on) lose their receipt."""
    cleared = [p for p in task.parts if p.received_at is not None and p.state == machine.PLANNED]
    for part in cleared:
        part.received_at = None
        part.received_by_id = None
    return cleared


__all__ = ["Forbidden", "Refused", "ServiceError", "Stale", "StorageError", "TRANSITIONS", "add_file_evidence",
           "add_text_evidence", "apply", "close_task", "edit_task", "record_progress", "remove_pending_evidence",
           "receive_part", "receive_parts", "reopen_task", "return_part", "start_part", "submit_part", "urge", "verify_part"]
