"""序时进度 and 红黄蓝: how far along each part should be by today, and its colour.

The rules (docs/warnings.md says the same, with the settings):

Planned progress (序时进度) of a part not yet handed in, on day ``today``:
- a dated part: a line from its start (the day its unit received it, else the
  plan's issue date, else its import date) at 0% to its deadline in force (an
  extension's, else the task's) at 100%; approved milestones (date → %) are
  points on that line, joined straight;
- on and after the deadline: 100%;
- a long-term part (长期, 每月…) has no line: it has checkpoints (the end of every
  month, or the day a "每月N日" deadline names) at which it must have reported.

Colours, worst first (a part has one, with its reason):
- 红 (red): overdue (past its deadline, not handed in); or behind planned
  progress by ≥ WARN_RED_LAG points; or a long-term part that reported nothing
  in the period of its last checkpoint. Red *holds* (``red_since``) when the
  date or the line moves under it (an extension granted, a deadline edited,
  a milestone changed): it is lifted only by a progress report that brings the
  part within WARN_RED_LAG points of the line in force, never by the date alone.
- 黄 (yellow): behind by ≥ WARN_YELLOW_LAG points; or returned WARN_RETURNS
  times or more.
- 蓝 (blue): due within NEAR_DUE_DAYS days (a long-term part: its next
  checkpoint within WARN_CHECKPOINT_DAYS days with nothing reported since the
  last one).
A handed-in part (submitted or verified) has no colour. A task has the worst
colour of its parts, with that part's reason and unit.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from flask import current_app, has_app_context
from sqlalchemy import func, inspect, select, true

from auth.permissions import task_of
from models import Milestone, Plan, ProgressNote, Submission
from workflow.extensions import db
from workflow.timeutil import to_local, utcnow
from workflow.vocabulary import IN_PROGRESS, PLANNED, MilestoneState, SubmissionOutcome, WarningLevel

DEFAULTS = {
    "WARN_YELLOW_LAG": 20,
    "WARN_RED_LAG": 40,
    "WARN_RETURNS": 2,
    "NEAR_DUE_DAYS": 14,
    "WARN_CHECKPOINT_DAYS": 5,
}

OPEN_STATES = (PLANNED, IN_PROGRESS)
HELD = "；红色预警保持至报送进度赶上序时进度"


@dataclass(frozen=True)
class Settings:
    yellow_lag: int
    red_lag: int
    returns: int
    near_days: int
    checkpoint_days: int

    @classmethod
    def current(cls) -> Settings:
        config = current_app.config if has_app_context() else {}
        get = lambda k: int(config.get(k, DEFAULTS[k]))  # noqa: E731
        return cls(get("WARN_YELLOW_LAG"), get("WARN_RED_LAG"), get("WARN_RETURNS"), get("NEAR_DUE_DAYS"),
                   get("WARN_CHECKPOINT_DAYS"))


@dataclass(frozen=True)
class Assessment:
    level: WarningLevel | None
    reason: str | None
    planned: int | None          # 序时进度 (%), None where there is no line
    lag: int | None              # planned − reported, when behind
    deadline: date | None        # in force
    overdue_days: int = 0

    @property
    def label(self) -> str:
        return self.level.label if self.level else ""


@dataclass(frozen=True)
class Facts:
    """What the rules read beyond the part and its task (loaded in bulk by ``assess_parts``)."""
    start: date
    milestones: tuple[tuple[date, int], ...] = ()
    returns: int = 0
    last_report: date | None = None


NONE = Assessment(None, None, None, None, None)


# ---------------------------------------------------------------- the line

def planned_progress(start: date, deadline: date, today: date, milestones=()) -> int:
    """The planned percentage on ``today`` (see the module's docstring)."""
    if today >= deadline:
        return 100
    points = [(start, 0)] + sorted((d, p) for d, p in milestones if start < d < deadline) + [(deadline, 100)]
    if today <= start:
        return 0
    for (d0, p0), (d1, p1) in zip(points, points[1:]):
        if d0 <= today <= d1:
            span = (d1 - d0).days or 1
            return round(p0 + (p1 - p0) * (today - d0).days / span)
    return 100


# ---------------------------------------------------------------- long-term checkpoints

_MONTHLY_DAY = re.compile(r"每月(\d{1,2})[日号]")


def checkpoint_day(deadline_text: str | None) -> int | None:
    """The day of the month a "每月N日前" deadline names, else None (the month's end)."""
    m = _MONTHLY_DAY.search(deadline_text or "")
    if m and 1 <= int(m.group(1)) <= 28:
        return int(m.group(1))
    return None


def _checkpoint_in(year: int, month: int, day: int | None) -> date:
    return date(year, month, day or calendar.monthrange(year, month)[1])


def checkpoints_around(today: date, day: int | None) -> tuple[date, date, date]:
    """(the checkpoint before the last, the last one before today, the next on or
    after today): a checkpoint's own day still belongs to its period."""
    months = [(today.year, today.month)]
    y, m = today.year, today.month
    for _ in range(2):
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
        months.append((y, m))
    ny, nm = (today.year, today.month + 1) if today.month < 12 else (today.year + 1, 1)
    here, last, before = (_checkpoint_in(y, m, day) for y, m in months)
    if here < today:
        return last, here, _checkpoint_in(ny, nm, day)
    return before, last, here


# ---------------------------------------------------------------- the colour

def _lag_reason(lag: int) -> str:
    return f"落后序时进度 {lag} 个百分点"


def raw(part, task, facts: Facts, today: date, settings: Settings) -> Assessment:
    """The colour by the rules alone, without the red latch."""
    if part.state not in OPEN_STATES:
        return NONE
    if task.long_term:
        return _long_term(part, task, facts, today, settings)
    deadline = part.deadline or task.deadline
    if deadline is None:
        return NONE
    planned = planned_progress(facts.start, deadline, today, facts.milestones)
    lag = max(planned - (part.progress or 0), 0)
    overdue = (today - deadline).days if today > deadline else 0
    level, reason = None, None
    if overdue:
        level, reason = WarningLevel.RED, f"已逾期 {overdue} 天"
    elif lag >= settings.red_lag:
        level, reason = WarningLevel.RED, _lag_reason(lag)
    elif lag >= settings.yellow_lag:
        level, reason = WarningLevel.YELLOW, _lag_reason(lag)
    elif facts.returns >= settings.returns:
        level, reason = WarningLevel.YELLOW, f"已被退回 {facts.returns} 次"
    elif (deadline - today).days <= settings.near_days:
        level, reason = WarningLevel.BLUE, f"距完成时限还有 {(deadline - today).days} 天"
    return Assessment(level, reason, planned, lag or None, deadline, overdue)


def _long_term(part, task, facts: Facts, today: date, settings: Settings) -> Assessment:
    day = checkpoint_day(task.deadline_text)
    before_last, last, upcoming = checkpoints_around(today, day)
    reported = facts.last_report
    level, reason = None, None
    # A checkpoint counts once the part existed for a whole period before it.
    if before_last >= facts.start and (reported is None or reported <= before_last):
        level, reason = WarningLevel.RED, f"长期任务：{last.month}月{last.day}日节点前未报送进展"
    elif facts.returns >= settings.returns:
        level, reason = WarningLevel.YELLOW, f"已被退回 {facts.returns} 次"
    elif (upcoming - today).days <= settings.checkpoint_days and (reported is None or reported <= last):
        level, reason = WarningLevel.BLUE, f"长期任务：请于{upcoming.month}月{upcoming.day}日节点前报送进展"
    return Assessment(level, reason, None, None, None)


def assess(part, task, facts: Facts, today: date, settings: Settings | None = None) -> Assessment:
    settings = settings or Settings.current()
    found = raw(part, task, facts, today, settings)
    if part.red_since is not None and part.state in OPEN_STATES and found.level != WarningLevel.RED:
        return Assessment(WarningLevel.RED, f"时限调整前{part.red_reason or '为红色预警'}{HELD}", found.planned, found.lag,
                          found.deadline, found.overdue_days)
    return found


def worst(assessments) -> Assessment:
    """The worst of several (a task's parts): red before yellow before blue, then the larger lag."""
    coloured = [a for a in assessments if a.level is not None]
    if not coloured:
        return NONE
    return min(coloured, key=lambda a: (a.level.rank, -(a.lag or 0), -a.overdue_days))


# ---------------------------------------------------------------- loading the facts

def plan_start(plan) -> date:
    return plan.issued_on or to_local(plan.imported_at).date()


def part_start(received_at, plan_started: date | None, today: date | None) -> date:
    """Where a part's line starts: the day its unit received it, else its plan's start."""
    received = to_local(received_at).date() if received_at is not None else None
    # A receipt stamped after "today" happens only under the demo clock (its
    # timestamps are real): it does not move the line past the clock's day.
    if received is not None and (today is None or received <= today):
        return received
    return plan_started or date.min


def fact_maps(part_ids=None) -> tuple[dict, dict, dict]:
    """(approved milestones, returns, last report) by part id, of the parts given (in queries of
    500) or of every part (``None``: one query each, for a pass over the whole database)."""
    milestones: dict[int, list] = {}
    returns: dict[int, int] = {}
    last: dict[int, date] = {}
    batches = [None] if part_ids is None else [list(c) for c in _chunks(list(part_ids))]
    for ids in batches:
        def scope(column, ids=ids):
            return true() if ids is None else column.in_(ids)
        for part_id, on, percent in db.session.execute(
                select(Milestone.part_id, Milestone.on, Milestone.percent).where(
                    scope(Milestone.part_id), Milestone.state == MilestoneState.APPROVED)):
            milestones.setdefault(part_id, []).append((on, percent))
        for part_id, n in db.session.execute(
                select(Submission.part_id, func.count()).where(
                    scope(Submission.part_id), Submission.outcome == SubmissionOutcome.RETURNED)
                .group_by(Submission.part_id)):
            returns[part_id] = n
        for part_id, at in db.session.execute(
                select(ProgressNote.part_id, func.max(ProgressNote.at)).where(scope(ProgressNote.part_id))
                .group_by(ProgressNote.part_id)):
            last[part_id] = to_local(at).date() if at else None
    return milestones, returns, last


def facts_of(part_id: int, start: date, maps: tuple[dict, dict, dict]) -> Facts:
    milestones, returns, last = maps
    return Facts(start, tuple(milestones.get(part_id, ())), returns.get(part_id, 0), last.get(part_id))


_FACT_COLLECTIONS = frozenset({"milestones", "submissions", "progress_notes"})


def loaded_fact_maps(parts) -> tuple[dict, dict, dict] | None:
    """The same maps as ``fact_maps``, read from the parts' collections when every part has all
    three loaded: no query. ``None`` otherwise. Only for collections just read as they are in the
    database (the task page, queries.task_for_page): a service adds a note or a milestone to the
    session, not to a collection loaded earlier, and only the queries would see it."""
    if any(_FACT_COLLECTIONS & inspect(part).unloaded for part in parts):
        return None
    milestones: dict[int, list] = {}
    returns: dict[int, int] = {}
    last: dict[int, date] = {}
    for part in parts:
        approved = [(m.on, m.percent) for m in part.milestones if m.state == MilestoneState.APPROVED]
        if approved:
            milestones[part.id] = approved
        n = sum(1 for s in part.submissions if s.outcome == SubmissionOutcome.RETURNED)
        if n:
            returns[part.id] = n
        times = [note.at for note in part.progress_notes if note.at is not None]
        if times:
            last[part.id] = to_local(max(times)).date()
    return milestones, returns, last


def facts_for(parts, tasks_by_id, plans_by_id, today: date | None = None, *,
              from_collections: bool = False) -> dict[int, Facts]:
    """The facts of many parts in three queries (milestones, returns, last report); with
    ``from_collections``, from the parts' loaded collections if they are (``loaded_fact_maps``)."""
    maps = (from_collections and loaded_fact_maps(parts)) or fact_maps([p.id for p in parts])
    out = {}
    for part in parts:
        task = tasks_by_id[part.task_id]
        started = plan_start(plans_by_id[task.item.plan_id]) if task.item.plan_id in plans_by_id else None
        out[part.id] = facts_of(part.id, part_start(part.received_at, started, today), maps)
    return out


def _chunks(ids, size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def assess_parts(parts, today: date, settings: Settings | None = None, tasks=None, *,
                 from_collections: bool = False) -> dict[int, Assessment]:
    """Every part's assessment, keyed by part id, with the facts loaded in bulk.
    ``tasks`` (the parts' tasks, where the caller has them) spares reading
    ``part.task``, which on a page that loaded the task with its parts would tie
    the two in a reference cycle (see auth.permissions.task_of). ``from_collections``:
    the facts from the parts' collections, read just now (``loaded_fact_maps``)."""
    parts = list(parts)
    if not parts:
        return {}
    settings = settings or Settings.current()
    known = {t.id: t for t in tasks or ()}
    tasks = {p.task_id: known.get(p.task_id) or task_of(p) for p in parts}
    plan_ids = {t.item.plan_id for t in tasks.values()}
    # A page that loaded the plan with its task (the task page) has it already: no query for it.
    plans = {pid: found for pid in plan_ids if (found := db.session.identity_map.get(
        db.session.identity_key(Plan, pid))) is not None}
    if len(plans) < len(plan_ids):
        plans.update((p.id, p) for p in db.session.scalars(select(Plan).where(Plan.id.in_(plan_ids - set(plans)))))
    facts = facts_for(parts, tasks, plans, today, from_collections=from_collections)
    return {p.id: assess(p, tasks[p.task_id], facts[p.id], today, settings) for p in parts}


def assess_tasks(tasks, today: date, settings: Settings | None = None) -> dict[int, Assessment]:
    """Each task's worst part, its reason prefixed with the unit when the task has several parts."""
    tasks = list(tasks)
    by_part = assess_parts([p for t in tasks for p in t.parts], today, settings, tasks=tasks)
    return {task.id: of_task(task, by_part) for task in tasks}


def of_task(task, by_part: dict[int, Assessment]) -> Assessment:
    """The task's colour from its parts' assessments (``assess_parts``)."""
    pairs = [(p, by_part[p.id]) for p in task.parts]
    chosen = worst(a for _, a in pairs)
    if chosen.level is not None and len(task.parts) > 1:
        unit = next(p.unit.name for p, a in pairs if a is chosen)
        chosen = Assessment(chosen.level, f"{unit}：{chosen.reason}", chosen.planned, chosen.lag,
                            chosen.deadline, chosen.overdue_days)
    return chosen


def assess_one(part, today: date) -> Assessment:
    return assess_parts([part], today)[part.id]


# ---------------------------------------------------------------- the latch

def hold_red(parts, today: date) -> list:
    """Before a part's date or line moves (extension granted, deadline edited,
    milestones changed): a part that is red now stays red (``red_since``) until
    its progress catches up. Returns the parts newly held."""
    held = []
    for part in parts:
        if part.red_since is not None or part.state not in OPEN_STATES:
            continue
        found = assess_one(part, today)
        if found.level == WarningLevel.RED:
            part.red_since = utcnow()
            part.red_reason = found.reason[:200]
            held.append(part)
    return held


def release_if_caught_up(part, today: date) -> bool:
    """After a progress report: the held red is lifted when the part is no
    longer red by the rules (within WARN_RED_LAG of the line, not overdue)."""
    if part.red_since is None:
        return False
    tasks = {part.task_id: part.task}
    plan = db.session.get(Plan, part.task.item.plan_id)
    facts = facts_for([part], tasks, {plan.id: plan}, today)[part.id]
    if raw(part, part.task, facts, today, Settings.current()).level == WarningLevel.RED:
        return False
    part.red_since = None
    part.red_reason = None
    return True
