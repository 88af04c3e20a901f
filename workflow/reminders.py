"""Reminders that fire by themselves, and 督办 after repeated ones (docs/reminders.md).

The office sets one rule per kind (ReminderRule): remind N days before the date
watched, on the date, and every M days after it; raise a 督办 after K reminders
on or after the date. The dates watched:

- 完成时限 (deadline): a dated part not handed in, its deadline in force;
- 签收 (receipt): a part not yet received, its plan's import date + RECEIPT_DUE_DAYS;
- 调度报送 (filing): a part not yet filed for an open round, the round's due date;
- 长期任务节点 (checkpoint): a long-term part, its next checkpoint (workflow/pace.py).

Once a day (REMINDER_TIME, China Standard Time) the tick queues the day's sweep;
``flask reminders run`` runs the same sweep at once. On day T a part gets the
one occasion current on T — the latest occasion on or before T that the next
has not overtaken — so a sweep missed for a day catches up with one reminder,
not a flood. Each occasion is a Reminder row whose unique key names the rule,
the part, the date watched and the occasion: a sweep run again, resumed after
its worker died, or run by two workers at once sends each reminder once.

The sweep works unit by unit, committing every few hundred parts with its
heartbeat; the notices of one unit and kind go out as one notice per user.
"""
from __future__ import annotations

import logging
import time as time_module
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from models import Escalation, Item, Plan, ProgressRound, Reminder, ReminderRule, Role, RoundPart, SweepRun, Task, \
    TaskPart
from workflow import audit, background, notices, pace
from workflow.extensions import db
from workflow.sqlite import write_transactions
from workflow.timeutil import CST, chinese_date, to_local, today_local, utcnow
from workflow.vocabulary import IN_PROGRESS, PLANNED, ROUND_OPEN, EscalationState, JobStatus, NotificationKind, \
    ReminderKind

log = logging.getLogger(__name__)

SWEEP_JOB = "reminders.sweep"
ACTOR = "系统（自动提醒）"
CHUNK = 300
OPEN_STATES = (PLANNED, IN_PROGRESS)
SWEEP_ATTEMPTS = 3
LISTED = 8   # tasks named in one grouped notice

# The rules a database without rows falls back to (the migration seeds the same).
DEFAULT_RULES = {
    ReminderKind.DEADLINE: ("7,3,1", True, 3, 3),
    ReminderKind.RECEIPT: ("", True, 2, 3),
    ReminderKind.FILING: ("2", True, 1, 2),
    ReminderKind.CHECKPOINT: ("3", False, 0, 0),
}


@dataclass(frozen=True)
class Rule:
    kind: str
    enabled: bool
    before: tuple[int, ...]      # days before, largest first
    on_due: bool
    repeat: int                  # every M days after; 0: never
    escalate_after: int          # K reminders on or after the date; 0: never

    @classmethod
    def of(cls, row: ReminderRule) -> Rule:
        return cls(row.kind, bool(row.enabled), tuple(row.before), bool(row.on_due), max(0, row.repeat_days),
                   max(0, row.escalate_after))


def default_row(kind: str) -> ReminderRule:
    """A rule as a new office has it (not added to the session)."""
    before, on_due, repeat, escalate = DEFAULT_RULES[ReminderKind(kind)]
    return ReminderRule(kind=kind, enabled=True, days_before=before, on_due=on_due, repeat_days=repeat,
                        escalate_after=escalate, version=1)


def rule_row(kind: str) -> ReminderRule:
    """The office's row for ``kind``, made from the defaults the first time it is set."""
    row = db.session.get(ReminderRule, kind)
    if row is None:
        row = default_row(kind)
        db.session.add(row)
        db.session.flush()
    return row


def rules() -> dict[str, Rule]:
    found = {row.kind: Rule.of(row) for row in db.session.scalars(select(ReminderRule))}
    for kind in ReminderKind:
        if kind.value not in found:
            found[kind.value] = Rule.of(default_row(kind.value))
    return found


def occasion(rule: Rule, target: date, today: date) -> tuple[str, date] | None:
    """The occasion of ``rule`` current on ``today`` for the date ``target``:
    ("before-N", day), ("due", day), ("after-K", day) or None."""
    if not rule.enabled:
        return None
    if today < target:
        for n in sorted(rule.before):                    # the nearest first
            if target - timedelta(days=n) <= today:
                return f"before-{n}", target - timedelta(days=n)
        return None
    elapsed = (today - target).days
    if rule.repeat and elapsed >= rule.repeat:
        k = elapsed // rule.repeat
        return f"after-{k}", target + timedelta(days=k * rule.repeat)
    if rule.on_due and elapsed < max(rule.repeat, 1):
        return "due", target
    return None


def counts_toward_escalation(occasion_name: str) -> bool:
    return not occasion_name.startswith("before-")


# ---------------------------------------------------------------- what is due today

@dataclass
class Event:
    kind: str               # ReminderKind
    part: TaskPart
    target: date
    occasion: str
    round_part: RoundPart | None = None

    @property
    def series_key(self) -> str:
        """The part (or round filing) and the date watched: one 督办 per series."""
        subject = f"r{self.round_part.id}" if self.round_part is not None else f"p{self.part.id}"
        return f"{self.kind}:{subject}:{self.target.isoformat()}"

    @property
    def key(self) -> str:
        return f"{self.series_key}:{self.occasion}"

    @property
    def series(self) -> tuple:
        return (self.kind, self.part.id, self.round_part.id if self.round_part else None, self.target)


def receipt_due(plan) -> date:
    """The day a part should have been received by: its plan's import day (China
    Standard Time) + RECEIPT_DUE_DAYS, as the 待签收 page counts it (queries.receipt_cutoff)."""
    return to_local(plan.imported_at).date() + timedelta(days=int(current_app.config.get("RECEIPT_DUE_DAYS", 3)))


def events_for_part(part: TaskPart, task: Task, plan: Plan, today: date, rules_: dict[str, Rule]) -> list[Event]:
    out = []
    if task.long_term:
        _, _, upcoming = pace.checkpoints_around(today, pace.checkpoint_day(task.deadline_text))
        occ = occasion(rules_[ReminderKind.CHECKPOINT], upcoming, today)
        if occ:
            out.append(Event(ReminderKind.CHECKPOINT.value, part, upcoming, occ[0]))
    else:
        deadline = part.deadline or task.deadline
        if deadline is not None:
            occ = occasion(rules_[ReminderKind.DEADLINE], deadline, today)
            if occ:
                out.append(Event(ReminderKind.DEADLINE.value, part, deadline, occ[0]))
    if part.received_at is None and part.state == PLANNED:
        due = receipt_due(plan)
        occ = occasion(rules_[ReminderKind.RECEIPT], due, today)
        if occ:
            out.append(Event(ReminderKind.RECEIPT.value, part, due, occ[0]))
    return out


# ---------------------------------------------------------------- messages

def _days(n: int) -> str:
    return f"{n} 天"


def describe(event: Event, today: date) -> tuple[NotificationKind, str]:
    task, unit = event.part.task, event.part.unit.name
    target = chinese_date(event.target)
    ahead, late = (event.target - today).days, (today - event.target).days
    if event.kind == ReminderKind.DEADLINE:
        if ahead > 0:
            return NotificationKind.DUE_REMIND, f"{task.label}（{unit}）距完成时限（{target}）还有 {_days(ahead)}，请抓紧推进。"
        if late == 0:
            return NotificationKind.DUE_REMIND, (f"{task.label}（{unit}）今天到期（完成时限{target}），请按时提交完成材料；"
                                                 f"确需延期请提出延期申请。")
        return NotificationKind.OVERDUE_REMIND, (f"{task.label}（{unit}）已逾期 {_days(late)}（完成时限{target}），"
                                                 f"请尽快办理并提交完成材料。")
    if event.kind == ReminderKind.RECEIPT:
        when = (f"签收期限为{target}" if ahead > 0 else "今天是签收期限" if late == 0
                else f"已超过签收期限 {_days(late)}")
        return NotificationKind.RECEIPT_REMIND, f"{task.label}已下发，{unit}尚未签收（{when}），请登录签收。"
    if event.kind == ReminderKind.FILING:
        title = event.round_part.round.title
        when = (f"报送截止{target}，还有 {_days(ahead)}" if ahead > 0 else "今天截止报送" if late == 0
                else f"已超过报送截止日期 {_days(late)}")
        return NotificationKind.FILING_REMIND, f"“{title}”{when}，{task.label}（{unit}）尚未报送进展。"
    return NotificationKind.CHECKPOINT_REMIND, (f"长期任务{task.label}（{unit}）的报送节点{target}将至"
                                                f"（还有 {_days(max(ahead, 0))}），请按时报送进展。")


def escalation_reason(event: Event, today: date) -> str:
    late = (today - event.target).days
    if event.kind == ReminderKind.DEADLINE:
        return f"已逾期 {_days(late)}（完成时限{chinese_date(event.target)}）"
    if event.kind == ReminderKind.RECEIPT:
        return f"超过签收期限 {_days(late)}仍未签收"
    if event.kind == ReminderKind.FILING:
        return f"“{event.round_part.round.title}”超过报送截止日期 {_days(late)}仍未报送"
    return f"长期任务节点{chinese_date(event.target)}未报送"


# ---------------------------------------------------------------- the sweep

class SweepBusy(Exception):
    """Another worker is running this day's sweep."""


def request_sweep(as_of: date, requested_by: str) -> SweepRun | None:
    """The day's sweep row, queued (caller commits; the job runs once committed).
    None if that day's sweep already ran or runs."""
    row = db.session.scalar(select(SweepRun).where(SweepRun.as_of == as_of))
    if row is not None:
        return None
    row = SweepRun(as_of=as_of, status=JobStatus.QUEUED.value, requested_by=requested_by, created_at=utcnow(),
                   heartbeat_at=utcnow())
    db.session.add(row)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:          # another worker's tick made it first
        return None
    background.enqueue_after_commit(SWEEP_JOB, row.id)
    return row


@background.job(SWEEP_JOB)
def sweep_job(sweep_id: int) -> None:
    row = db.session.get(SweepRun, sweep_id)
    if row is None:
        return
    # Both read before the rollback: reading one after it would begin a read transaction that the
    # claim's write then fails to upgrade on SQLite ("database is locked") once another thread committed.
    as_of, requested_by = row.as_of, row.requested_by
    db.session.rollback()
    try:
        run_sweep(as_of, requested_by)
    except SweepBusy:
        pass


def _claim(as_of: date, requested_by: str, again: bool) -> int:
    """Take the day's sweep row for this worker (creating it if need be); its id."""
    write_transactions(True)
    try:
        row = db.session.scalar(select(SweepRun).where(SweepRun.as_of == as_of))
        if row is None:
            row = SweepRun(as_of=as_of, status=JobStatus.QUEUED.value, requested_by=requested_by,
                           created_at=utcnow())
            db.session.add(row)
            db.session.flush()
        allowed = [JobStatus.QUEUED.value] + ([JobStatus.DONE.value, JobStatus.FAILED.value] if again else [])
        now = utcnow()
        taken = db.session.execute(
            update(SweepRun).where(SweepRun.id == row.id, SweepRun.status.in_(allowed))
            .values(status=JobStatus.RUNNING.value, attempts=SweepRun.attempts + 1, worker=background.worker_name(),
                    started_at=now, heartbeat_at=now, finished_at=None, error=None),
            execution_options={"synchronize_session": False}).rowcount
        sweep_id = row.id
        db.session.commit()
    finally:
        write_transactions(False)
    if not taken:
        raise SweepBusy(as_of)
    return sweep_id


def run_sweep(as_of: date | None = None, requested_by: str = "scheduler", *, again: bool = False) -> SweepRun:
    """The day's sweep, to the end: scheduled rounds, reminders and 督办, then
    the 督办 whose cause is gone. Commits as it goes; returns the finished row.
    ``again``: run a day that already ran (the command line); its reminders
    already sent are not sent again."""
    as_of = as_of or today_local()
    sweep_id = _claim(as_of, requested_by, again)
    with background.HEARTBEAT.running("sweep", sweep_id):
        try:
            totals = _sweep(as_of, sweep_id)
        except Exception as exc:
            db.session.rollback()
            log.exception("sweep %s failed", as_of)
            _finish(sweep_id, JobStatus.FAILED, error=f"巡查出错：{type(exc).__name__}: {str(exc)[:300]}")
            raise
    _finish(sweep_id, JobStatus.DONE, **totals)
    return db.session.get(SweepRun, sweep_id)


def _finish(sweep_id: int, status: JobStatus, **values) -> None:
    write_transactions(True)
    try:
        row = db.session.get(SweepRun, sweep_id)
        row.status = status.value
        row.finished_at = utcnow()
        for name, value in values.items():
            setattr(row, name, value)
        # The day's notices go out once the sweep is done (and any left pending by a dead pump).
        background.enqueue_after_commit(notices.PUMP)
        db.session.commit()
    finally:
        write_transactions(False)


def _progress(sweep_id: int, **values) -> None:
    db.session.execute(update(SweepRun).where(SweepRun.id == sweep_id).values(heartbeat_at=utcnow(), **values),
                       execution_options={"synchronize_session": False})


def _sweep(as_of: date, sweep_id: int) -> dict[str, int]:
    from workflow import round_services   # round_services imports services, which imports notices only

    rules_ = rules()
    totals = {"checked": 0, "reminders": 0, "escalations": 0, "rounds_opened": 0}
    # End the read that loaded the rules: on SQLite a write begun inside a read transaction fails at
    # once (no busy wait) when the heartbeat thread has committed since; BEGIN IMMEDIATE waits.
    db.session.rollback()

    write_transactions(True)
    try:
        opened, problems = round_services.open_scheduled_rounds(as_of)
        totals["rounds_opened"] = opened
        _progress(sweep_id, rounds_opened=opened, error="；".join(problems) or None)
        db.session.commit()
    finally:
        write_transactions(False)

    part_ids = db.session.execute(
        select(TaskPart.unit_id, TaskPart.id).join(Task).join(Item).where(TaskPart.state.in_(OPEN_STATES))
        .order_by(TaskPart.unit_id, TaskPart.id)).all()
    filing_ids = db.session.execute(
        select(TaskPart.unit_id, RoundPart.id).join(ProgressRound).join(TaskPart, RoundPart.part_id == TaskPart.id)
        .where(ProgressRound.state == ROUND_OPEN, RoundPart.filed_at.is_(None),
               TaskPart.state.in_(OPEN_STATES))
        .order_by(TaskPart.unit_id, RoundPart.id)).all()
    db.session.rollback()

    # The day's notices wait in the outbox until the sweep is done (_finish pumps them):
    # a sweep stopped half-way and resumed sends each of them once.
    with notices.pump_held():
        for chunks, sweep_chunk in ((_unit_chunks(part_ids), _sweep_parts), (_unit_chunks(filing_ids), _sweep_filings)):
            for chunk in chunks:
                sent, raised = sweep_chunk(chunk, as_of, rules_, sweep_id)
                totals["checked"] += len(chunk)
                totals["reminders"] += sent
                totals["escalations"] += raised
                _commit_progress(sweep_id, totals)

    write_transactions(True)
    try:
        resolve_ended(as_of)
        db.session.commit()
    finally:
        write_transactions(False)
    return totals


def _commit_progress(sweep_id: int, totals: dict) -> None:
    _progress(sweep_id, checked=totals["checked"], reminders=totals["reminders"], escalations=totals["escalations"])
    db.session.commit()
    write_transactions(False)
    pause = int(current_app.config.get("SWEEP_PAUSE_MS", 0))
    if pause:     # lets a busy SQLite's web writers in between chunks
        time_module.sleep(pause / 1000)


def _unit_chunks(rows):
    """The ids of (unit id, id) rows ordered by unit, in chunks of about SWEEP_CHUNK
    that never split a unit: its notices of one kind are one notice per user."""
    size = max(1, int(current_app.config.get("SWEEP_CHUNK", CHUNK)))
    chunk, unit = [], None
    for unit_id, row_id in rows:
        if chunk and unit_id != unit and len(chunk) >= size:
            yield chunk
            chunk = []
        chunk.append(row_id)
        unit = unit_id
    if chunk:
        yield chunk


def _sweep_parts(part_ids: list[int], as_of: date, rules_: dict[str, Rule], sweep_id: int) -> tuple[int, int]:
    write_transactions(True)
    parts = db.session.scalars(
        select(TaskPart).where(TaskPart.id.in_(part_ids))
        .options(joinedload(TaskPart.task).joinedload(Task.item).joinedload(Item.plan),
                 joinedload(TaskPart.unit))).unique().all()
    events = []
    for part in sorted(parts, key=lambda p: (p.unit_id, p.task.document_key, p.id)):
        events += events_for_part(part, part.task, part.task.item.plan, as_of, rules_)
    return _fire(events, as_of, rules_, sweep_id)


def _sweep_filings(entry_ids: list[int], as_of: date, rules_: dict[str, Rule], sweep_id: int) -> tuple[int, int]:
    write_transactions(True)
    entries = db.session.scalars(
        select(RoundPart).where(RoundPart.id.in_(entry_ids))
        .options(joinedload(RoundPart.round), joinedload(RoundPart.part).joinedload(TaskPart.task)
                 .joinedload(Task.item), joinedload(RoundPart.part).joinedload(TaskPart.unit))).unique().all()
    events = []
    rule = rules_[ReminderKind.FILING]
    for entry in sorted(entries, key=lambda e: (e.part.unit_id, e.part.task.document_key, e.id)):
        occ = occasion(rule, entry.round.due_on, as_of)
        if occ:
            events.append(Event(ReminderKind.FILING.value, entry.part, entry.round.due_on, occ[0], entry))
    return _fire(events, as_of, rules_, sweep_id)


def _fire(events: list[Event], as_of: date, rules_: dict[str, Rule], sweep_id: int) -> tuple[int, int]:
    """Record and send the events not sent before; raise the 督办 now due. Flushes."""
    if not events:
        return 0, 0
    sent_before = set(db.session.scalars(select(Reminder.key).where(Reminder.key.in_([e.key for e in events]))))
    new = [e for e in events if e.key not in sent_before]
    now = utcnow()
    for event in new:
        db.session.add(Reminder(key=event.key, kind=event.kind, part_id=event.part.id,
                                round_part_id=event.round_part.id if event.round_part else None,
                                target_on=event.target, occasion=event.occasion, sent_on=as_of, sweep_id=sweep_id,
                                created_at=now))
        audit.append("reminder_sent", username=ACTOR, part=event.part,
                     details={"kind": event.kind, "occasion": event.occasion, "target": event.target.isoformat(),
                              "unit": event.part.unit.name, "sweep": sweep_id})
    _notify_grouped(new, as_of)
    raised = _escalate([e for e in new if counts_toward_escalation(e.occasion)], as_of, rules_)
    db.session.flush()
    return len(new), raised


def _notify_grouped(events: list[Event], as_of: date) -> None:
    """One notice per unit and kind of notice: a unit with five parts due hears once, with the five named."""
    groups: dict[tuple[int, str], list[tuple[Event, str]]] = defaultdict(list)
    for event in events:
        kind, text = describe(event, as_of)
        groups[(event.part.unit_id, kind)].append((event, text))
    for (unit_id, kind), items in groups.items():
        unit = items[0][0].part.unit
        recipients = notices.unit_users([unit])
        if len(items) == 1:
            event, text = items[0]
            notices.send(recipients, kind, text, event.part.task)
            continue
        listed = "；".join(text for _, text in items[:LISTED])
        more = f"……共 {len(items)} 项，详见“我的待办”。" if len(items) > LISTED else ""
        tasks = {e.part.task_id for e, _ in items}
        notices.send(recipients, kind, f"今日提醒（{len(items)} 项）：{listed}{more}",
                     task_id=next(iter(tasks)) if len(tasks) == 1 else None)


def _escalate(events: list[Event], as_of: date, rules_: dict[str, Rule]) -> int:
    """督办 for each series reminded K times on or after its date (K of its rule)."""
    events = [e for e in events if rules_[e.kind].escalate_after > 0]
    if not events:
        return 0
    db.session.flush()
    part_ids = list({e.part.id for e in events})
    counts = {}
    for kind, part_id, round_part_id, target, n in db.session.execute(
            select(Reminder.kind, Reminder.part_id, Reminder.round_part_id, Reminder.target_on, func.count(Reminder.id))
            .where(Reminder.part_id.in_(part_ids), ~Reminder.occasion.like("before-%"))
            .group_by(Reminder.kind, Reminder.part_id, Reminder.round_part_id, Reminder.target_on)):
        counts[(kind, part_id, round_part_id, target)] = n
    due = [e for e in events if counts.get(e.series, 0) >= rules_[e.kind].escalate_after]
    if not due:
        return 0
    keys = {e.series_key: e for e in due}
    existing = set(db.session.scalars(select(Escalation.key).where(Escalation.key.in_(list(keys)))))
    now = utcnow()
    raised = 0
    for key, event in keys.items():
        if key in existing:
            continue
        reason = escalation_reason(event, as_of)
        count = counts[event.series]
        row = Escalation(key=key, kind=event.kind, part_id=event.part.id,
                         round_part_id=event.round_part.id if event.round_part else None, target_on=event.target,
                         reminders=count, state=EscalationState.OPEN.value, reason=reason, raised_at=now,
                         raised_on=as_of)
        db.session.add(row)
        db.session.flush()
        audit.append("escalated", username=ACTOR, part=event.part, reason=reason,
                     details={"escalation": row.id, "kind": event.kind, "reminders": count,
                              "unit": event.part.unit.name, "target": event.target.isoformat()})
        task = event.part.task
        leaders = notices.unit_users([event.part.unit], roles=[Role.UNIT_LEADER]) or notices.unit_users(
            [event.part.unit])
        notices.send(leaders, NotificationKind.ESCALATED,
                     f"督办：{task.label}（{event.part.unit.name}）{reason}，已提醒 {count} 次仍未办理。"
                     f"请单位负责人督促落实，办公室已列入督办事项。", task)
        raised += 1
    return raised


# ---------------------------------------------------------------- 督办 that ended

def ended_reason(row: Escalation, part: TaskPart, entry: RoundPart | None) -> str | None:
    """Why an active 督办 no longer applies, or None."""
    if row.kind == ReminderKind.DEADLINE:
        if part.state not in OPEN_STATES:
            return "已提交完成材料"
        if (part.deadline or part.task.deadline) != row.target_on:
            return "完成时限已调整"
    elif row.kind == ReminderKind.RECEIPT:
        if part.received_at is not None or part.state != PLANNED:
            return "已签收"
    elif row.kind == ReminderKind.FILING:
        if entry is None or entry.filed_at is not None:
            return "已报送"
        if entry.round.state != ROUND_OPEN:
            return "调度已结束"
    elif part.state not in OPEN_STATES:
        return "已提交完成材料"
    return None


def ended_reasons(rows) -> dict[int, str | None]:
    """Each 督办's ``ended_reason``, with their round filings loaded in one query
    (the rows come with their parts and tasks loaded)."""
    entries = {e.id: e for e in db.session.scalars(select(RoundPart).where(
        RoundPart.id.in_([r.round_part_id for r in rows if r.round_part_id])).options(joinedload(RoundPart.round)))}
    return {r.id: ended_reason(r, r.part, entries.get(r.round_part_id)) for r in rows}


def resolve_ended(as_of: date) -> int:
    """Resolve the active 督办 whose cause is gone (flushes)."""
    rows = db.session.scalars(select(Escalation).where(Escalation.state.in_(EscalationState.active()))
                              .options(joinedload(Escalation.part).joinedload(TaskPart.task),
                                       joinedload(Escalation.part).joinedload(TaskPart.unit))).unique().all()
    reasons = ended_reasons(rows)
    resolved = 0
    now = utcnow()
    for row in rows:
        why = reasons[row.id]
        if why is None:
            continue
        row.state = EscalationState.RESOLVED.value
        row.resolved_at = now
        row.resolved_reason = why
        audit.append("escalation_resolved", username=ACTOR, part=row.part, reason=why,
                     details={"escalation": row.id, "kind": row.kind, "unit": row.part.unit.name})
        resolved += 1
    db.session.flush()
    return resolved


# ---------------------------------------------------------------- the scheduler's part

def sweep_time() -> time | None:
    """When the daily sweep starts (China Standard Time); None: REMINDER_TIME=off."""
    return parse_sweep_time(current_app.config.get("REMINDER_TIME") or "08:30")


def parse_sweep_time(text: str) -> time | None:
    text = (text or "").strip()
    if text.lower() == "off":
        return None
    try:
        hours, _, minutes = text.partition(":")
        return time(int(hours), int(minutes or 0))
    except ValueError:
        raise ValueError(f"REMINDER_TIME “{text}” 格式应为 HH:MM（北京时间），例如 08:30；off 为不自动巡查。") from None


@background.every_minute("reminders.daily")
def daily() -> SweepRun | None:
    """Queue today's sweep once its time has come (China Standard Time)."""
    starts = sweep_time()
    if starts is None or datetime.now(CST).time() < starts:
        return None
    return request_sweep(today_local(), "scheduler")


@background.every_minute("reminders.watchdog")
def watchdog() -> int:
    """A sweep whose worker died is queued again (SWEEP_ATTEMPTS in all), a
    queued one whose message was lost likewise; caller commits."""
    stale = background.stale_before()
    again = 0
    for row in db.session.scalars(select(SweepRun).where(SweepRun.status.in_(
            (JobStatus.RUNNING.value, JobStatus.QUEUED.value)))):
        dead = row.heartbeat_at is None or row.heartbeat_at < stale or (
            row.status == JobStatus.RUNNING and background.is_dead(row.worker))
        if not dead:
            continue
        if row.status == JobStatus.RUNNING and row.attempts >= SWEEP_ATTEMPTS:
            row.status = JobStatus.FAILED.value
            row.error = f"巡查中断：后台处理程序已停止，重试 {row.attempts} 次仍未完成。"
            row.finished_at = utcnow()
            continue
        row.status = JobStatus.QUEUED.value
        row.heartbeat_at = utcnow()
        background.enqueue_after_commit(SWEEP_JOB, row.id)
        again += 1
    return again


@background.beater("sweep")
def _renew(ids, now) -> None:
    db.session.execute(update(SweepRun).where(SweepRun.id.in_(ids), SweepRun.status == JobStatus.RUNNING.value)
                       .values(heartbeat_at=now), execution_options={"synchronize_session": False})
