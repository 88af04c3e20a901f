"""Progress rounds (调度): the office opens one, each unit in scope files its
parts' progress for it, the office closes it into its 调度通报 (docs/rounds.md).

Like workflow/services.py: each function checks, writes the rows, the audit
entries and the notices, flushes, and never commits; the caller commits once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from auth.permissions import denial
from models import Chapter, Item, ProgressRound, RoundPart, Task, TaskPart, Unit
from workflow import audit, notices, queries, services
from workflow.extensions import db
from workflow.machine import filing_refusal
from workflow.reports import archive
from workflow.reports.data import chinese_number
from workflow.services import Forbidden, Refused, _flush, _stale_as_refusal
from workflow.timeutil import to_local, today_local, utcnow
from workflow.vocabulary import IN_PROGRESS, PLANNED, ROUND_OPEN, NotificationKind, ReportKind, RoundKind

TITLE_MAX = 200
INSTRUCTIONS_MAX = 2000
NOTE_MAX = 5000
ALREADY_FILED = "本轮已报送，不能重复报送。"
ROUND_CLOSED_MESSAGE = "本轮调度已结束，不能再报送。"
NOTHING_TO_ASK = "所选范围内没有尚未提交的任务（均已提交或已核验），无需调度。"


# ---------------------------------------------------------------- opening

def _parts_in_scope(plan, chapter_id, unit_ids, task_ids) -> tuple[list, str]:
    """The open parts a round covers, in document order, and the scope in words."""
    query = (select(TaskPart).join(Task).join(Item).where(Item.plan_id == plan.id,
                                                           TaskPart.state.in_((PLANNED, IN_PROGRESS)))
             .options(joinedload(TaskPart.task).joinedload(Task.item), joinedload(TaskPart.unit)))
    scope = "全方案"
    if task_ids:
        tasks = db.session.scalars(select(Task).join(Item).where(Task.id.in_(task_ids), Item.plan_id == plan.id)
                                   .options(joinedload(Task.item))).unique().all()
        if len(tasks) != len(task_ids):
            raise Refused("所选任务不存在或不属于该方案，请刷新任务列表后重新选择。")
        query = query.where(TaskPart.task_id.in_(task_ids))
        labels = [t.number_label for t in sorted(tasks, key=lambda t: t.document_key)]
        scope = f"所选任务（{len(labels)} 项）：" + "、".join(labels)
    elif unit_ids:
        units = db.session.scalars(select(Unit).where(Unit.id.in_(unit_ids)).order_by(Unit.name)).all()
        if len(units) != len(unit_ids):
            raise Refused("所选单位不存在，请刷新页面后重新选择。")
        query = query.where(TaskPart.unit_id.in_(unit_ids))
        scope = "所选单位：" + "、".join(u.name for u in units)
    elif chapter_id is not None:
        chapter = db.session.get(Chapter, chapter_id)
        if chapter is None or chapter.plan_id != plan.id:
            raise Refused("所选章节不属于该方案。")
        query = query.where(Item.chapter_id == chapter.id)
        scope = chapter.heading(chinese_number)
    parts = db.session.scalars(query).unique().all()
    parts.sort(key=lambda p: (p.task.document_key, p.position, p.id))
    return parts, scope[:300]


@_stale_as_refusal
def open_round(plan, user, *, kind, title, due_on: date, instructions=None, chapter_id=None, unit_ids=(),
               task_ids=()):
    """调度: ask every open part in scope (the plan, one chapter, chosen units or
    chosen tasks) for a progress entry by ``due_on``. One audit entry per part,
    one notice per user of each unit concerned."""
    why = denial(user, "round.open")
    if why:
        raise Forbidden(why)
    if kind not in RoundKind.values():
        raise Refused("调度类型无效，请选择月调度、周调度或专项调度。")
    title = (title or "").strip()
    if not title:
        raise Refused("请填写调度名称。")
    if len(title) > TITLE_MAX:
        raise Refused(f"调度名称不能超过 {TITLE_MAX} 字。")
    instructions = (instructions or "").strip() or None
    if instructions and len(instructions) > INSTRUCTIONS_MAX:
        raise Refused(f"报送要求不能超过 {INSTRUCTIONS_MAX} 字。")
    if not isinstance(due_on, date):
        raise Refused("请填写报送截止日期。")
    if due_on < today_local():
        raise Refused(f"报送截止日期不能早于今天（{today_local().isoformat()}）。")
    unit_ids = list(dict.fromkeys(int(u) for u in unit_ids or ()))
    task_ids = list(dict.fromkeys(int(t) for t in task_ids or ()))
    parts, scope = _parts_in_scope(plan, chapter_id, unit_ids, task_ids)
    if not parts:
        raise Refused(NOTHING_TO_ASK)
    now = utcnow()
    round_ = ProgressRound(plan_id=plan.id, kind=kind, title=title, instructions=instructions, scope=scope,
                           due_on=due_on, state=ROUND_OPEN, opened_by_id=user.id, opened_at=now)
    db.session.add(round_)
    round_.entries = [RoundPart(part_id=p.id) for p in parts]
    _flush()
    for part in parts:
        audit.append("round_opened", user=user, part=part,
                     details={"round": round_.id, "title": title, "unit": part.unit.name,
                              "due_on": due_on.isoformat()})
    counts: dict[int, int] = {}
    for part in parts:
        counts[part.unit_id] = counts.get(part.unit_id, 0) + 1
    notices.send(notices.unit_users(list({p.unit_id: p.unit for p in parts}.values())),
                 NotificationKind.ROUND_OPENED,
                 lambda unit_user: (f"办公室发起“{title}”，请于{due_on.isoformat()}前报送本单位 "
                                    f"{counts[unit_user.unit_id]} 项任务的进展（在“我的待办”中填报）。"))
    _flush()
    return round_


# ---------------------------------------------------------------- filing

@dataclass(frozen=True)
class FileUpload:
    data: bytes
    filename: str


def _entry_refusal(entry) -> str | None:
    # The round's state as committed now: on PostgreSQL the row lock waits for a
    # close in flight, so a filing never lands in a round closed meanwhile.
    state = db.session.scalar(select(ProgressRound.state).where(ProgressRound.id == entry.round_id)
                              .with_for_update())
    if state != ROUND_OPEN:
        return ROUND_CLOSED_MESSAGE
    if entry.note_id is not None:
        return ALREADY_FILED
    return None


def _file(entry, user, percent, note, files=()):
    part = entry.part
    why = denial(user, "part.file", part)
    if why:
        raise Forbidden(why)
    why = _entry_refusal(entry)
    if why:
        raise Refused(why)
    # The part's own state (the entry and its round were checked just above).
    if part.state not in (PLANNED, IN_PROGRESS):
        raise Refused(filing_refusal(part))
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise Refused(f"进展说明不能超过 {NOTE_MAX} 字。")
    round_ = entry.round
    late = today_local() > round_.due_on
    progress_note = services._progress_entry(part, user, percent, note, action="round_filed",
                                             round=round_.id, title=round_.title, late=late)
    filed_at = progress_note.at
    # Conditional: of two filings racing for one entry exactly one matches.
    done = db.session.execute(update(RoundPart).where(RoundPart.id == entry.id, RoundPart.note_id.is_(None))
                              .values(note_id=progress_note.id, filed_at=filed_at, late=late)
                              .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise Refused(ALREADY_FILED)
    db.session.refresh(entry)
    for upload in files:
        services._file_evidence(part, user, upload.data, upload.filename, f"{round_.title}报送材料",
                                progress_note=progress_note)
    return entry


@_stale_as_refusal
def file_round(entry, user, percent, note, files=()):
    """The part's unit files its progress for the round: a progress note (the
    same as 填报进度, for a planned part too), optional files as pending evidence,
    the filing time and whether it came after the due date (China Standard Time)."""
    return _file(entry, user, percent, note, files)


@_stale_as_refusal
def file_rounds(user, filings) -> int:
    """A unit files for several parts at once: ``filings`` is [(entry, percent, note)…],
    every one or none (any refusal names its task and rolls the batch back with the caller)."""
    filings = list(filings)
    if not filings:
        raise Refused("请至少填写一项任务的进展说明。")
    if len({e.id for e, _p, _n in filings}) != len(filings):
        raise Refused("同一任务在本次报送中出现了两次，请刷新页面后重试。")
    for entry, percent, note in filings:
        try:
            _file(entry, user, percent, note)
        except Refused as exc:
            part = entry.part
            raise Refused(f"{part.task.number_label}（{part.unit.name}）：{exc.message}本次未报送任何任务。") from None
    return len(filings)


# ---------------------------------------------------------------- closing

@services.transition("round", "close")
def close_round(round_, user, *, expected_version=None):
    """结束调度: stamps the close and asks the report archive for its 调度通报
    (the caller commits, then hands ``round_.report_id`` to the report worker)."""
    # The row lock first (PostgreSQL; SQLite's writer lock already serialises):
    # a filing in flight commits before the close is stamped, or finds it closed.
    db.session.refresh(round_, with_for_update=True)
    fired = services._fire(round_, "close", user, expected_version=expected_version)
    round_.closed_at = utcnow()
    round_.closed_by_id = user.id
    _flush()
    counts = filing_counts(round_)
    audit.append("round_closed", user=user, plan=round_.plan, from_state=fired.source, to_state=fired.dest,
                 details={"round": round_.id, "title": round_.title, **counts})
    try:
        params = archive.make_params(ReportKind.ROUND.value, plan_id=round_.plan_id, round_id=round_.id,
                                     as_of=today_local())
    except archive.ReportError as exc:
        raise Refused(exc.message) from None
    request = archive.request_report(params, user=user)
    round_.report_id = request.archive.id
    _flush()
    return round_


# ---------------------------------------------------------------- reading

def filing_counts(round_) -> dict:
    entries = round_.entries
    filed = [e for e in entries if e.note_id is not None]
    late = [e for e in filed if e.late]
    return {"entries": len(entries), "filed": len(filed), "late": len(late),
            "missing": len(entries) - len(filed)}


def entries_by_unit(round_) -> list[dict]:
    """The round's entries per unit (units by name), each with its filing state."""
    entries = db.session.scalars(
        select(RoundPart).where(RoundPart.round_id == round_.id).options(
            joinedload(RoundPart.part).joinedload(TaskPart.task).joinedload(Task.item),
            joinedload(RoundPart.part).joinedload(TaskPart.unit))).unique().all()
    units: dict[int, dict] = {}
    for entry in entries:
        unit = entry.part.unit
        row = units.setdefault(unit.id, {"unit": unit, "entries": [], "on_time": 0, "late": 0, "missing": 0})
        row["entries"].append(entry)
        if entry.note_id is None:
            row["missing"] += 1
        elif entry.late:
            row["late"] += 1
        else:
            row["on_time"] += 1
    rows = sorted(units.values(), key=lambda r: r["unit"].name)
    for row in rows:
        row["entries"].sort(key=lambda e: e.part.task.document_key)
    return rows


#: Entries the to-do page's filing form holds at most: a unit of a city's deployment can owe thousands.
TODO_ENTRIES = 50


def open_entries_of_unit(unit_id: int) -> tuple[list, int]:
    """(the unit's first ``TODO_ENTRIES`` entries in open rounds not yet filed, the earliest due first;
    how many it owes in all) — for the to-do page."""
    if unit_id is None:
        return [], 0
    owed = (select(RoundPart).join(ProgressRound).join(TaskPart, RoundPart.part_id == TaskPart.id).where(
        TaskPart.unit_id == unit_id, RoundPart.note_id.is_(None), ProgressRound.state == ROUND_OPEN,
        TaskPart.state.in_((PLANNED, IN_PROGRESS))))
    # Opening, filing and closing are audited: the total is counted once per change of the trail.
    total = queries.cached_count(owed, "round_entries_owed", unit_id)
    if not total:
        return [], 0
    # The open rounds in due order, then the unit's entries round by round (a few rounds first, twice as
    # many each time) until the form is full: each query sorts the entries of its rounds only, not every
    # entry the unit owes — and chunks taken in due order keep the overall order.
    rounds = db.session.scalars(select(ProgressRound.id).where(ProgressRound.state == ROUND_OPEN)
                                .order_by(ProgressRound.due_on, ProgressRound.id)).all()
    entries: list = []
    start, step = 0, 4
    while start < len(rounds) and len(entries) < TODO_ENTRIES:
        entries += db.session.scalars(
            owed.where(RoundPart.round_id.in_(rounds[start:start + step]))
            .order_by(ProgressRound.due_on, ProgressRound.id, RoundPart.id).limit(TODO_ENTRIES - len(entries))
            .options(joinedload(RoundPart.round), joinedload(RoundPart.part).joinedload(TaskPart.task)
                     .joinedload(Task.item))).unique().all()
        start, step = start + step, step * 2
    return sorted(entries, key=lambda e: (e.round.due_on, e.round.id, e.part.task.document_key)), total


# ---------------------------------------------------------------- rounds on a schedule

def schedule_period(schedule, as_of: date) -> tuple[str, date, str] | None:
    """(period key, opening day, title) of the schedule's round current on
    ``as_of``, or None before this period's opening day."""
    if schedule.kind == RoundKind.WEEKLY:
        iso = as_of.isocalendar()
        opens = date.fromisocalendar(iso.year, iso.week, min(max(schedule.day, 1), 7))
        return (f"{iso.year}-W{iso.week:02d}", opens, f"{iso.year}年第{iso.week}周调度") if as_of >= opens else None
    opens = date(as_of.year, as_of.month, min(max(schedule.day, 1), 28))
    return (f"{as_of.year}-{as_of.month:02d}", opens, f"{as_of.year}年{as_of.month}月调度") if as_of >= opens else None


def open_scheduled_rounds(as_of: date) -> tuple[int, list[str]]:
    """Open each active schedule's round for its current period, once (the
    round's unique ``schedule_key``), as the office user who set the schedule
    up. (how many opened, the problems in words). Flushes."""
    from models import RoundSchedule

    opened, problems = 0, []
    for schedule in db.session.scalars(select(RoundSchedule).where(RoundSchedule.active.is_(True))
                                       .order_by(RoundSchedule.id)):
        current = schedule_period(schedule, as_of)
        if current is None:
            continue
        period, opens, title = current
        # A schedule starts with the first period opening after it was set up.
        if opens < to_local(schedule.created_at).date():
            continue
        key = f"schedule:{schedule.id}:{period}"
        if db.session.scalar(select(ProgressRound.id).where(ProgressRound.schedule_key == key)) is not None:
            continue
        due_on = max(opens + timedelta(days=schedule.due_days), as_of)
        creator = schedule.created_by
        try:
            with db.session.begin_nested():
                round_ = open_round(schedule.plan, creator, kind=schedule.kind, title=title, due_on=due_on,
                                    instructions=schedule.instructions)
                round_.schedule_key = key
                _flush()
        except (Forbidden, Refused) as exc:
            if exc.message == NOTHING_TO_ASK:     # every part handed in: nothing to ask this period
                continue
            problems.append(f"定时调度 #{schedule.id} 未能发起：{exc.message}")
            continue
        opened += 1
    return opened, problems
