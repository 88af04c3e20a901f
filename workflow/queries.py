"""Read-only queries behind the lists, the inbox and the overview.

Every list is built as one SELECT (filtered in SQL, paginated by the caller)
plus a fixed number of ``selectinload`` queries for what its rows show, so a
page costs the same handful of queries whether it shows 5 rows or 50.
"""
from __future__ import annotations

import functools
import re
import unicodedata

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from operator import attrgetter

from flask import current_app
from sqlalchemy import and_, bindparam, case, false, func, or_, select
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from auth.permissions import may
from models import (
    AuditEntry, Chapter, Contact, Escalation, Evidence, ExtensionRequest, Item, Milestone, Notification, Plan,
    ProgressNote, Role, Section, Submission, Task, TaskPart, Unit, User, task_lead_units, task_responsible_units,
    task_sections,
)
from models.plan import chapter_heading
from workflow import colours, head_cache, pace
from workflow.due import late_clause, near_clause
from workflow.extensions import db
from workflow.timeutil import CST
from workflow.vocabulary import (
    IN_PROGRESS, PENDING_LEAD, PENDING_OFFICE, PLANNED, SUBMITTED, TASK_STATES, VERIFIED, ExtensionState,
    EscalationState, SubmissionOutcome, TaskKind, WarningLevel,
)
from workflow.views.urls import MAX_ID, parse_id

UNIT_ROLES = Role.UNIT_ROLES
WARNING_LEVELS = tuple(level.value for level in WarningLevel)


# ---------------------------------------------------------------- helpers

def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` literally (``%`` and ``_`` escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def lead_task_ids(unit_id: int):
    return select(task_lead_units.c.task_id).where(task_lead_units.c.unit_id == unit_id)


def part_task_ids(unit_id: int):
    return select(TaskPart.task_id).where(TaskPart.unit_id == unit_id)


def unit_clause(unit_id: int):
    """Tasks a unit leads or has a part of."""
    return or_(Task.id.in_(lead_task_ids(unit_id)), Task.id.in_(part_task_ids(unit_id)))


def visible_clause(user):
    """The SQL form of ``may(user, 'task.view', task)``: unit users see the
    tasks their unit leads or works on; the office and viewers see all."""
    if user.role in UNIT_ROLES:
        return unit_clause(user.unit_id)
    return True


def count_of(stmt) -> int:
    """How many rows a SELECT returns (its ordering and eager loads dropped)."""
    return db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


def count_up_to(stmt, limit: int) -> int:
    """How many rows a SELECT returns, counting no further than ``limit``: a log that only grows
    (every notice ever sent) is counted in time bounded by the limit, not by its size. The
    statement keeps its order, so the count walks the index that the page itself walks."""
    return db.session.scalar(select(func.count()).select_from(stmt.limit(limit).subquery())) or 0


def show_capped_total(page, total: int, limit: int) -> None:
    """A page's total from a count made up to ``limit + 1``: at most ``limit``, and ``total_capped``
    when there are more (the pager says "N 条以上", templates/_macros.html)."""
    page.total, page.total_capped = min(total, limit), total > limit


def list_options():
    """What a task row shows: item (and chapter), lead units, parts and their units."""
    return (
        joinedload(Task.item).joinedload(Item.chapter),
        selectinload(Task.lead_units),
        selectinload(Task.parts).joinedload(TaskPart.unit),
    )


def task_order():
    """The newest plan first, then document order (models/plan.py Task.document_order); the
    statement joins Item. Index ``ix_item_plan_position`` serves it under a LIMIT."""
    return (Item.plan_id.desc(), *Task.document_order())


# ---------------------------------------------------------------- task list

@dataclass
class TaskFilters:
    plan: int | None = None
    chapter: int | None = None
    item: int | None = None
    unit: int | None = None
    state: str | None = None
    due: str | None = None
    q: str | None = None
    warning: str | None = None       # red | yellow | blue: applied in Python (``with_warning``)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> TaskFilters:
        """Read filters from query args; a malformed value is dropped with a
        note rather than answered with an error page."""
        f = cls()
        for name in ("plan", "chapter", "item", "unit"):
            raw = (args.get(name) or "").strip()
            if raw:
                value = parse_id(raw)
                if value is not None:
                    setattr(f, name, value)
                else:
                    f.errors.append(f"筛选条件“{name}”无效，已忽略。")
        state = (args.get("state") or "").strip()
        if state:
            if state in TASK_STATES:
                f.state = state
            else:
                f.errors.append("状态筛选无效，已忽略。")
        due = (args.get("due") or "").strip()
        if due:
            if due in ("late", "near"):
                f.due = due
            else:
                f.errors.append("时限筛选无效，已忽略。")
        q = (args.get("q") or "").strip()
        f.q = q[:100] or None
        warning = (args.get("warning") or "").strip()
        if warning:
            if warning in WARNING_LEVELS:
                f.warning = warning
            else:
                f.errors.append("预警筛选无效，已忽略。")
        return f

    def as_args(self) -> dict:
        return {k: v for k, v in (("plan", self.plan), ("chapter", self.chapter), ("item", self.item),
                                   ("unit", self.unit), ("state", self.state), ("due", self.due),
                                   ("q", self.q), ("warning", self.warning)) if v not in (None, "")}

    @property
    def active(self) -> bool:
        return bool(self.as_args())


def _items_first():
    """The join of tasks to their items, walked from the items in list order.

    SQLite, without statistics, prefers to read every task and sort them all; ``item.id + 0``
    (no index on the expression) leaves it one way in: ``ix_item_plan_position`` in order, each
    item's tasks by their index, stopping at the page's LIMIT. PostgreSQL plans from its
    statistics and gets the plain join."""
    if db.engine.dialect.name == "sqlite":
        return Item.id + 0 == Task.item_id
    return Item.id == Task.item_id


def task_list(filters: TaskFilters, user, today: date, near_days: int, *, to_count: bool = False,
              ids: bool = False):
    """SELECT of the tasks matching the filters that ``user`` may see, in list order; ``ids``: only
    their ids, the walk of a page (views/paging.py WalkPage); ``to_count``: joined plainly, for a
    count (the filters' own indexes serve it better than the walk in order)."""
    stmt = (select(Task.id if ids else Task).join(Item, Item.id == Task.item_id if to_count else _items_first())
            .where(visible_clause(user)))
    if filters.plan is not None:
        stmt = stmt.where(Item.plan_id == filters.plan)
    if filters.chapter is not None:
        stmt = stmt.where(Item.chapter_id == filters.chapter)
    if filters.item is not None:
        # An item's sub-items (19-1 under 19) belong to it too.
        stmt = stmt.where(or_(Item.id == filters.item, Item.parent_id == filters.item))
    if filters.unit is not None:
        stmt = stmt.where(unit_clause(filters.unit))
    if filters.state is not None:
        stmt = stmt.where(Task.state == filters.state)
    if filters.due == "late":
        stmt = stmt.where(late_clause(Task, today))
    elif filters.due == "near":
        stmt = stmt.where(near_clause(Task, today, near_days))
    if filters.q:
        pattern = like_pattern(filters.q)
        stmt = stmt.where(or_(Task.text.ilike(pattern, escape="\\"), Task.deadline_text.ilike(pattern, escape="\\"),
                              Item.subtitle.ilike(pattern, escape="\\"), Item.number == filters.q))
    return (stmt if ids else stmt.options(*list_options())).order_by(*task_order())


def kept_warning_ids(filters: TaskFilters, user, today: date) -> list[int] | None:
    """The ids, in list order, of the tasks of the filter's colour (and plan) from the kept colours
    (workflow/colours.py) — for the office and viewers, when no other filter applies and this
    transaction has not written; else None (the filtered set is assessed: ``with_warning``)."""
    others = {k for k in filters.as_args() if k not in ("warning", "plan")}
    if not filters.warning or others or user.role in UNIT_ROLES or head_cache.writing():
        return None
    return colours.task_ids(filters.warning, today, filters.plan)


def tasks_by_ids(ids: list[int]) -> list:
    """The tasks of ``ids`` (a page of them) with what a list row shows, in the order given."""
    found = {t.id: t for t in db.session.scalars(select(Task).where(Task.id.in_(ids)).options(*list_options()))}
    return [found[i] for i in ids if i in found]


def with_warning(tasks, level: str | None, today: date) -> tuple[list, dict]:
    """(the tasks whose colour is ``level`` — all of them when None —, every
    task's assessment). The colour is decided in Python (workflow/pace.py), so
    the filter assesses the whole filtered set: at the seed's scale (189 tasks)
    a few queries and some milliseconds."""
    tasks = list(tasks)
    assessed = pace.assess_tasks(tasks, today)
    if level is None:
        return tasks, assessed
    return [t for t in tasks if assessed[t.id].level == level], assessed


def warning_counts(plan_id: int | None, today: date) -> dict[str, int]:
    """Tasks per colour (red, yellow, blue)."""
    return warning_breakdown(plan_id, today)["total"]


def cross_plan_summary(today: date, near_days: int) -> tuple[dict, dict]:
    """(``overview_totals``, ``warning_breakdown``) of every plan: the totals counted once per change
    of the audit trail and day (workflow/head_cache.py), the colours kept by workflow/colours.py."""
    totals = head_cache.cached(("overview_totals", today, near_days), lambda: overview_totals(today, near_days))
    return totals, warning_breakdown(None, today)


def cached_count(stmt, *key) -> int:
    """``count_of(stmt)``, counted once per change of the audit trail: ``key`` must name
    everything the statement depends on (its filters, whose rows the user sees, the day)."""
    return head_cache.cached(("count", *key), lambda: count_of(stmt))


def scope_key(user) -> tuple:
    """What ``visible_clause(user)`` depends on, for a cache key."""
    return ("unit", user.unit_id) if user.role in UNIT_ROLES else ("all",)


def plan_summaries(plans, today: date, near_days: int) -> list[dict]:
    """One row per plan given (a page of them): its tasks by state, late and near — one GROUP BY
    over those plans' tasks."""
    late = late_clause(Task, today)
    near = near_clause(Task, today, near_days)
    rows = {plan.id: {"id": plan.id, "title": plan.title, "states": {}, "total": 0, "late": 0, "near": 0}
            for plan in plans}
    if rows:
        for pid, state, n, n_late, n_near in db.session.execute(
                select(Item.plan_id, Task.state, func.count(Task.id),
                       func.coalesce(func.sum(case((late, 1), else_=0)), 0),
                       func.coalesce(func.sum(case((near, 1), else_=0)), 0))
                .select_from(Task).join(Item, Item.id == Task.item_id)
                .where(Item.plan_id.in_(list(rows))).group_by(Item.plan_id, Task.state)):
            row = rows[pid]
            row["states"][state] = n
            row["total"] += n
            row["late"] += int(n_late)
            row["near"] += int(n_near)
    return list(rows.values())


def warning_breakdown(plan_id: int | None, today: date) -> dict:
    """Tasks per colour in all (``total``), per plan id, per chapter id and per lead unit id
    (a task with several lead units counts under each), for the overview and the to-do: kept
    per process and brought up to date from the audit trail (workflow/colours.py), or counted
    now by a transaction that has written."""
    if head_cache.writing():
        return warning_breakdown_now(plan_id, today)
    return colours.breakdown(plan_id, today)


def warning_breakdown_now(plan_id: int | None, today: date) -> dict:
    """``warning_breakdown`` by one assessment of the plan's (or every plan's) tasks."""
    stmt = (select(Task).join(Task.item).options(*list_options()))
    if plan_id is not None:
        stmt = stmt.where(Item.plan_id == plan_id)
    tasks = db.session.scalars(stmt).all()
    assessed = pace.assess_tasks(tasks, today)

    def empty() -> dict[str, int]:
        return {level.value: 0 for level in WarningLevel}

    total, plans, chapters, units = empty(), {}, {}, {}
    for task in tasks:
        level = assessed[task.id].level
        if level is None:
            continue
        total[level.value] += 1
        plans.setdefault(task.item.plan_id, empty())[level.value] += 1
        chapters.setdefault(task.item.chapter_id, empty())[level.value] += 1
        for unit in task.lead_units:
            units.setdefault(unit.id, empty())[level.value] += 1
    return {"total": total, "plans": plans, "chapters": chapters, "units": units, "empty": empty()}


def filter_choices(plan_id: int | None = None, chapter_id: int | None = None) -> dict:
    """Options for the filter selects (plans, chapters, units), as plain rows kept until the audit
    trail moves (workflow/head_cache.py). The chapters are the chosen plan's (or the only plan's);
    with several plans and none chosen, only a chosen chapter is listed — every plan's chapters
    would make each list page hundreds of KB."""
    return head_cache.cached(("filter_choices", plan_id, chapter_id), lambda: _filter_choices(plan_id, chapter_id))


def _filter_choices(plan_id: int | None, chapter_id: int | None) -> dict:
    plans = db.session.execute(select(Plan.id, Plan.title).order_by(Plan.id.desc())).all()
    chapter_rows = select(Chapter.id, Chapter.number, Chapter.title, Plan.id, Plan.title).join(Plan)
    if plan_id is None and len(plans) == 1:
        plan_id = plans[0].id
    if plan_id is not None:
        chapter_rows = chapter_rows.where(Chapter.plan_id == plan_id)
    elif chapter_id is not None:
        chapter_rows = chapter_rows.where(Chapter.id == chapter_id)
    else:
        chapter_rows = chapter_rows.where(false())
    chapters = db.session.execute(chapter_rows.order_by(Plan.id.desc(), Chapter.number)).all()
    # Every unit with work, for unit users too: a lead unit filters its tasks
    # by the units doing them (the list itself stays limited to what they may see).
    # EXISTS per unit: a look-up in each unit's index, not a pass over every part.
    units = db.session.execute(
        select(Unit.id, Unit.name).where(or_(select(task_lead_units.c.unit_id)
                                             .where(task_lead_units.c.unit_id == Unit.id).exists(),
                                             select(TaskPart.id).where(TaskPart.unit_id == Unit.id).exists()))
        .order_by(Unit.kind, Unit.name)).all()
    return {"plans": plans, "chapters": chapters, "units": units}


# ---------------------------------------------------------------- my work

def todo_parts(user):
    """Parts of my unit waiting for us to start or finish."""
    return (select(TaskPart).join(TaskPart.task).join(Task.item)
            .where(TaskPart.unit_id == user.unit_id, TaskPart.state.in_((PLANNED, IN_PROGRESS)))
            .options(selectinload(TaskPart.task).selectinload(Task.item),
                     selectinload(TaskPart.task).selectinload(Task.lead_units),
                     selectinload(TaskPart.unit),
                     selectinload(TaskPart.submissions))
            .order_by(Task.deadline.is_(None), Task.deadline, *task_order()))


# ---------------------------------------------------------------- receipt (签收)

def unreceived_parts(unit_id: int | None = None, plan_id: int | None = None):
    """Parts not yet acknowledged: still planned and never received (a part
    already started has reached its unit, whatever the setting), oldest plan first."""
    stmt = (select(TaskPart).join(TaskPart.task).join(Task.item).join(Item.plan)
            .where(TaskPart.received_at.is_(None), TaskPart.state == PLANNED))
    if unit_id is not None:
        stmt = stmt.where(TaskPart.unit_id == unit_id)
    if plan_id is not None:
        stmt = stmt.where(Item.plan_id == plan_id)
    return (stmt.options(selectinload(TaskPart.task).selectinload(Task.item).selectinload(Item.plan),
                         selectinload(TaskPart.unit))
            .order_by(Plan.imported_at, Plan.id, *task_order(), TaskPart.position))


def receipt_cutoff(today: date, due_days: int) -> datetime:
    """The naive UTC instant before which a plan was imported more than
    ``due_days`` days ago, counted in China Standard Time days."""
    midnight = datetime.combine(today - timedelta(days=due_days), time(0), tzinfo=CST)
    return midnight.astimezone(timezone.utc).replace(tzinfo=None)


def days_since_import(plan, today: date) -> int:
    """Whole China Standard Time days since the plan was imported; never negative:
    the demo clock (LUOSHI_TODAY) may read a day before a plan imported for real."""
    return max(0, (today - plan.imported_at.replace(tzinfo=timezone.utc).astimezone(CST).date()).days)


def unreceived_counts(today: date, due_days: int, plan_id: int | None = None) -> tuple[int, int]:
    """(parts not yet received, of which overdue for receipt), one query, made once per change of
    the audit trail (a receipt is an audited action)."""
    def count() -> tuple[int, int]:
        sub = unreceived_parts(plan_id=plan_id).order_by(None).with_only_columns(TaskPart.id, Plan.imported_at)
        sub = sub.subquery()
        late = func.sum(case((sub.c.imported_at < receipt_cutoff(today, due_days), 1), else_=0))
        total, overdue = db.session.execute(select(func.count(), late).select_from(sub)).one()
        return total or 0, overdue or 0
    return head_cache.cached(("unreceived", today, due_days, plan_id), count)


def _pending_submitted_at():
    """When the part's pending submission was made (the latest hand-in), per row of the outer query:
    a look-up in the part's submissions, not a GROUP BY over every submission."""
    return (select(func.max(Submission.submitted_at))
            .where(Submission.part_id == TaskPart.id, Submission.outcome == SubmissionOutcome.PENDING)
            .correlate(TaskPart).scalar_subquery())


def _awaiting(user):
    """The SQL form of "submitted, and waiting for this user's side": of the
    tasks my unit leads for unit users — except what I handed in myself, which
    someone else verifies (auth/permissions.py) — all of them for the office."""
    clause = TaskPart.state == SUBMITTED
    if user.role in UNIT_ROLES:
        mine = (select(Submission.id).where(Submission.part_id == TaskPart.id,
                                            Submission.outcome == SubmissionOutcome.PENDING,
                                            Submission.submitted_by_id == user.id))
        clause = and_(clause, TaskPart.task_id.in_(lead_task_ids(user.unit_id)), ~mine.exists())
    return clause


def verify_parts(user):
    """Submitted parts awaiting a decision (``_awaiting``), oldest hand-in first."""
    at = _pending_submitted_at()
    stmt = select(TaskPart).join(TaskPart.task).join(Task.item).where(_awaiting(user))
    return (stmt.options(selectinload(TaskPart.task).selectinload(Task.item),
                         selectinload(TaskPart.task).selectinload(Task.lead_units),
                         selectinload(TaskPart.unit),
                         selectinload(TaskPart.submissions).selectinload(Submission.submitted_by))
            .order_by(at.is_(None), at, TaskPart.id))


def verify_count(user) -> int:
    return db.session.scalar(select(func.count(TaskPart.id)).where(_awaiting(user))) or 0


def to_close_tasks(*, to_count: bool = False, ids: bool = False):
    """The office's own to-do: tasks whose parts are all verified, to close, in list order (walked in
    order under the page's LIMIT; ``to_count``, ``ids``: see ``task_list``)."""
    stmt = (select(Task.id if ids else Task).join(Item, Item.id == Task.item_id if to_count else _items_first())
            .where(Task.state == VERIFIED))
    if to_count:
        return stmt
    return (stmt if ids else stmt.options(*list_options())).order_by(*task_order())


def my_summary(user, today: date, near_days: int) -> dict:
    """Counts for a unit user's home page, in one query per figure group."""
    parts = db.session.execute(
        select(TaskPart.state, func.count(TaskPart.id)).where(TaskPart.unit_id == user.unit_id)
        .group_by(TaskPart.state)).all()
    by_state = {s: n for s, n in parts}
    mine = unit_clause(user.unit_id)
    late = db.session.scalar(select(func.count(Task.id)).where(mine, late_clause(Task, today))) or 0
    near = db.session.scalar(select(func.count(Task.id)).where(mine, near_clause(Task, today, near_days))) or 0
    led = db.session.scalar(select(func.count()).select_from(lead_task_ids(user.unit_id).subquery())) or 0
    return {"parts": by_state, "parts_total": sum(by_state.values()), "late": late, "near": near, "led": led,
            "verify": verify_count(user)}


# ---------------------------------------------------------------- task page

@functools.cache
def _task_page_statements() -> dict:
    """The task page's statements, built once: building a SELECT with its loader options costs more
    Python than running it (the page runs up to ten), and only the ids change between requests."""
    task_id, item_id = bindparam("task_id"), bindparam("item_id")
    ids = bindparam("ids", expanding=True)
    nonempty = {
        "contacts": select(Contact.id).where(Contact.item_id == Task.item_id).exists(),
        "responsible_units": select(task_responsible_units.c.unit_id)
        .where(task_responsible_units.c.task_id == Task.id).exists(),
        "sections": select(task_sections.c.section_id).where(task_sections.c.task_id == Task.id).exists(),
        **{name: select(model.id).join(TaskPart, TaskPart.id == model.part_id)
           .where(TaskPart.task_id == Task.id).exists()
           for name, model in (("progress_notes", ProgressNote), ("submissions", Submission),
                               ("evidence", Evidence), ("extensions", ExtensionRequest),
                               ("milestones", Milestone))},
    }
    links = {name: select(target).join(link, link.c[column] == target.id)
             .where(link.c.task_id == task_id).order_by(link.c.position)
             for name, link, target, column in (("lead_units", task_lead_units, Unit, "unit_id"),
                                                ("responsible_units", task_responsible_units, Unit, "unit_id"),
                                                ("sections", task_sections, Section, "section_id"))}
    return {
        "task": select(Task, *(exists.label(name) for name, exists in nonempty.items()))
        .where(Task.id == task_id).options(joinedload(Task.item).joinedload(Item.chapter),
                                           joinedload(Task.item).joinedload(Item.plan)),
        "contacts": select(Contact).where(Contact.item_id == item_id).order_by(Contact.position),
        **links,
        "parts": select(TaskPart).where(TaskPart.task_id == task_id).order_by(TaskPart.position)
        .options(joinedload(TaskPart.unit), joinedload(TaskPart.received_by)),
        "progress_notes": select(ProgressNote).where(ProgressNote.part_id.in_(ids)).order_by(ProgressNote.at)
        .options(joinedload(ProgressNote.user)),
        "submissions": select(Submission).where(Submission.part_id.in_(ids)).order_by(Submission.number)
        .options(joinedload(Submission.submitted_by), joinedload(Submission.decided_by)),
        "evidence": select(Evidence).where(Evidence.part_id.in_(ids)).order_by(Evidence.id)
        .options(joinedload(Evidence.uploaded_by)),
        "extensions": select(ExtensionRequest).where(ExtensionRequest.part_id.in_(ids))
        .order_by(ExtensionRequest.id).options(joinedload(ExtensionRequest.requested_by),
                                               joinedload(ExtensionRequest.lead_decided_by),
                                               joinedload(ExtensionRequest.office_decided_by)),
        "milestones": select(Milestone).where(Milestone.part_id.in_(ids)).order_by(Milestone.on)
        .options(joinedload(Milestone.proposed_by), joinedload(Milestone.decided_by)),
        "timeline": select(AuditEntry.at, AuditEntry.username, AuditEntry.action, AuditEntry.from_state,
                           AuditEntry.to_state, AuditEntry.reason, AuditEntry.details,
                           User.display_name.label("user_display_name"), Unit.name.label("unit_name"))
        .outerjoin(User, User.id == AuditEntry.user_id).outerjoin(Unit, Unit.id == AuditEntry.unit_id)
        .where(AuditEntry.task_id == task_id).order_by(AuditEntry.seq),
    }


def task_for_page(task_id: int):
    """One task with everything its page shows: the task with its item, chapter and plan, and
    whether each of its collections has rows at all (most tasks have no extension, milestone or
    hand-in yet); then one plain query per collection that has (the rows each points to — a user,
    a unit — joined into it), handed to the objects as loaded (``_fill``), the others empty.
    Loader options would issue every query; built by hand they also cost half the Python."""
    if not 0 < task_id <= MAX_ID:
        return None
    statements = _task_page_statements()
    found = db.session.execute(statements["task"], {"task_id": task_id}).first()
    if found is None:
        return None
    task, has = found[0], found._mapping      # collection name → whether it has rows

    def rows(name, **params) -> list:
        return db.session.scalars(statements[name], params).all() if has.get(name, True) else []

    item = task.item
    _fill([item], "contacts", rows("contacts", item_id=item.id), attrgetter("item_id"))
    for name in ("lead_units", "responsible_units", "sections"):
        set_committed_value(task, name, rows(name, task_id=task_id))
    parts = rows("parts", task_id=task_id)
    set_committed_value(task, "parts", parts)
    ids = [part.id for part in parts] or [0]
    by_part = attrgetter("part_id")
    _fill(parts, "progress_notes", rows("progress_notes", ids=ids), by_part)
    submissions = rows("submissions", ids=ids)
    _fill(parts, "submissions", submissions, by_part)
    evidence = rows("evidence", ids=ids)
    _fill(parts, "evidence", evidence, by_part)
    _fill(submissions, "evidence", [e for e in evidence if e.submission_id is not None], attrgetter("submission_id"))
    _fill(parts, "extensions", rows("extensions", ids=ids), by_part)
    _fill(parts, "milestones", rows("milestones", ids=ids), by_part)
    return task


def _fill(owners, name: str, children, owner_id) -> None:
    """Give each owner its collection ``name`` as if the session had loaded it: the children whose
    ``owner_id`` is the owner's, in the order given; nothing to flush, no lazy load later."""
    by_owner: dict[int, list] = {}
    for child in children:
        by_owner.setdefault(owner_id(child), []).append(child)
    for owner in owners:
        set_committed_value(owner, name, by_owner.get(owner.id, []))


def timeline(task):
    """The audit entries of a task and its parts, in chain order, as plain rows (what the page
    shows of each, with the user's display name and the unit's name). An entry about a part
    always carries its task too (``audit.append``), so the task's index answers it alone."""
    return db.session.execute(_task_page_statements()["timeline"], {"task_id": task.id}).all()


# ---------------------------------------------------------------- overview

def overview_totals(today: date, near_days: int) -> dict:
    """The all-plans overview's tiles: tasks by state, late and near, in two GROUP BY queries."""
    late = late_clause(Task, today)
    near = near_clause(Task, today, near_days)
    by_state = {s: n for s, n in db.session.execute(select(Task.state, func.count(Task.id)).group_by(Task.state))}
    totals = db.session.execute(select(func.count(Task.id), func.coalesce(func.sum(case((late, 1), else_=0)), 0),
                                       func.coalesce(func.sum(case((near, 1), else_=0)), 0))).one()
    return {"by_state": by_state, "total": totals[0], "late": int(totals[1]), "near": int(totals[2]),
            "chapters": [], "units": []}


def overview(plan_id: int | None, today: date, near_days: int) -> dict:
    """Counts by state, by chapter × state and by lead unit × state (with late
    and near-due counts), each one GROUP BY query."""
    late = late_clause(Task, today)
    near = near_clause(Task, today, near_days)
    scope = [Item.plan_id == plan_id] if plan_id is not None else []

    def base(*cols):
        return select(*cols).select_from(Task).join(Item, Item.id == Task.item_id).where(*scope)

    by_state = {s: n for s, n in db.session.execute(base(Task.state, func.count(Task.id)).group_by(Task.state))}
    totals = db.session.execute(base(
        func.count(Task.id),
        func.coalesce(func.sum(case((late, 1), else_=0)), 0),
        func.coalesce(func.sum(case((near, 1), else_=0)), 0))).one()

    chapters: dict[int, dict] = {}
    rows = db.session.execute(
        base(Chapter.id, Chapter.number, Chapter.title, Plan.title, Task.state, func.count(Task.id),
             func.coalesce(func.sum(case((late, 1), else_=0)), 0),
             func.coalesce(func.sum(case((near, 1), else_=0)), 0))
        .join(Chapter, Chapter.id == Item.chapter_id).join(Plan, Plan.id == Item.plan_id)
        .group_by(Chapter.id, Chapter.number, Chapter.title, Plan.id, Plan.title, Task.state)
        .order_by(Plan.id, Chapter.number))
    for cid, number, title, plan_title, state, n, n_late, n_near in rows:
        row = chapters.setdefault(cid, {"id": cid, "number": number, "title": title, "plan": plan_title,
                                        "heading": chapter_heading(number, title),
                                        "states": {}, "total": 0, "late": 0, "near": 0})
        row["states"][state] = n
        row["total"] += n
        row["late"] += n_late
        row["near"] += n_near

    units: dict[int, dict] = {}
    rows = db.session.execute(
        base(Unit.id, Unit.name, Task.state, func.count(Task.id),
             func.coalesce(func.sum(case((late, 1), else_=0)), 0),
             func.coalesce(func.sum(case((near, 1), else_=0)), 0))
        .join(task_lead_units, task_lead_units.c.task_id == Task.id)
        .join(Unit, Unit.id == task_lead_units.c.unit_id)
        .group_by(Unit.id, Unit.name, Task.state))
    for uid, name, state, n, n_late, n_near in rows:
        row = units.setdefault(uid, {"id": uid, "name": name, "states": {}, "total": 0, "late": 0, "near": 0})
        row["states"][state] = n
        row["total"] += n
        row["late"] += n_late
        row["near"] += n_near
    unit_rows = sorted(units.values(), key=lambda r: (-r["late"], -r["total"], r["name"]))
    return {"by_state": by_state, "total": totals[0], "late": int(totals[1]), "near": int(totals[2]),
            "chapters": list(chapters.values()), "units": unit_rows}


# ---------------------------------------------------------------- 延期审批

def _extension_options():
    return (selectinload(ExtensionRequest.part).selectinload(TaskPart.unit),
            selectinload(ExtensionRequest.part).selectinload(TaskPart.task).selectinload(Task.item),
            selectinload(ExtensionRequest.part).selectinload(TaskPart.task).selectinload(Task.lead_units),
            selectinload(ExtensionRequest.requested_by), selectinload(ExtensionRequest.lead_decided_by),
            selectinload(ExtensionRequest.office_decided_by))


def _decision_of(request) -> str:
    return "extension.approve" if request.state == PENDING_LEAD else "extension.grant"


def _deciding(user):
    """The SQL form of "pending, and waiting for this user's decision"
    (``permissions.denial`` for extension.approve / extension.grant), or None."""
    if user.role == Role.UNIT_LEADER:
        return and_(ExtensionRequest.state == PENDING_LEAD, ExtensionRequest.requested_by_id != user.id,
                    TaskPart.task_id.in_(lead_task_ids(user.unit_id)))
    if not user.is_office:
        return None
    if not current_app.config.get("OFFICE_VERIFY_FALLBACK", True):
        return ExtensionRequest.state == PENDING_OFFICE
    # The office steps in where the lead units have no active leader but the requester.
    other_leader = (select(User.id).join(task_lead_units, task_lead_units.c.unit_id == User.unit_id)
                    .where(task_lead_units.c.task_id == TaskPart.task_id, User.role == Role.UNIT_LEADER,
                           User.active.is_(True), User.id != ExtensionRequest.requested_by_id))
    return or_(ExtensionRequest.state == PENDING_OFFICE,
               and_(ExtensionRequest.state == PENDING_LEAD, ~other_leader.exists()))


def extensions_to_decide(user) -> list:
    """The pending requests ``user`` may decide now, oldest first: a lead unit
    leader's are its lead tasks' pending_lead ones not asked by them; the
    office's are every pending_office one, and the pending_lead ones it decides
    in the lead unit's place. ``permissions.may`` has the last word."""
    clause = _deciding(user)
    if clause is None:
        return []
    rows = db.session.scalars(select(ExtensionRequest).join(ExtensionRequest.part).where(clause)
                              .options(*_extension_options())
                              .order_by(ExtensionRequest.requested_at, ExtensionRequest.id)).all()
    return [r for r in rows if may(user, _decision_of(r), r)]


def extension_pending_count(user) -> int:
    """The figure beside 延期审批 in the header (0 for those who decide nothing), one query."""
    clause = _deciding(user)
    if clause is None:
        return 0
    return db.session.scalar(select(func.count(ExtensionRequest.id)).join(ExtensionRequest.part).where(clause)) or 0


EXTENSION_FILTERS = {"decided": ("granted", "refused"), "granted": ("granted",), "refused": ("refused",),
                     "pending": ExtensionState.pending(), "all": ExtensionState.values()}


def extension_requests(user, show: str):
    """The requests on the tasks ``user`` may see, in a state group of
    ``EXTENSION_FILTERS``, latest first (the page paginates)."""
    states = EXTENSION_FILTERS.get(show, EXTENSION_FILTERS["decided"])
    return (select(ExtensionRequest).join(ExtensionRequest.part).join(TaskPart.task)
            .where(ExtensionRequest.state.in_(states), visible_clause(user))
            .options(*_extension_options())
            .order_by(ExtensionRequest.requested_at.desc(), ExtensionRequest.id.desc()))


# ---------------------------------------------------------------- inbox

def inbox(user):
    return (select(Notification).where(Notification.user_id == user.id)
            .options(selectinload(Notification.task).selectinload(Task.item))
            .order_by(Notification.read_at.is_not(None), Notification.created_at.desc(), Notification.id.desc()))


def unread_count(user) -> int:
    return db.session.scalar(select(func.count(Notification.id)).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


# ---------------------------------------------------------------- audit log

#: A task's number as its page shows it (models.plan.Task.number_label): item, 任/保, position.
TASK_NUMBER_RE = re.compile(r"(?P<item>\d{1,6}(?:-\d{1,6})?)-(?P<kind>[任保])(?P<seq>\d{1,6})")
TASK_NUMBER_HINT = "请填写任务页上的编号（如 13-保1、19-2-任3）或任务 ID"


def task_ids_for_number(text: str) -> list[int] | None:
    """The ids of the tasks numbered ``text`` (one per plan that has it), or None
    if ``text`` is not written like a task number. Full-width digits and the
    dashes a document uses (—, －, –) are read as the page's."""
    norm = unicodedata.normalize("NFKC", text).strip()
    norm = re.sub(r"[—–－‐]", "-", norm).replace(" ", "")
    m = TASK_NUMBER_RE.fullmatch(norm)
    if m is None:
        return None
    kind = next(k for k in TaskKind if k.short == m["kind"])
    return list(db.session.scalars(
        select(Task.id).join(Task.item).where(Item.number == m["item"], Task.kind == kind,
                                              Task.seq == int(m["seq"])).order_by(Task.id)))


@dataclass
class AuditFilters:
    unit: int | None = None
    user: str | None = None
    task: str | None = None              # as typed: an id or a task number (13-保1)
    task_ids: list[int] | None = None    # what ``task`` names; None: no task filter
    action: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> AuditFilters:
        f = cls()
        raw = (args.get("unit") or "").strip()
        if raw:
            f.unit = parse_id(raw)
            if f.unit is None:
                f.errors.append("单位编号应为数字，已忽略。")
        raw = (args.get("task") or "").strip()[:40]
        if raw:
            f.task = raw
            task_id = parse_id(raw)
            ids = [task_id] if task_id is not None else task_ids_for_number(raw)
            if ids is None:
                f.errors.append(f"任务编号“{raw}”无法识别，已忽略。{TASK_NUMBER_HINT}。")
            elif not ids:
                f.errors.append(f"没有编号为“{raw}”的任务，已忽略。{TASK_NUMBER_HINT}。")
            else:
                f.task_ids = ids
                if len(ids) > 1:
                    f.errors.append(f"编号“{raw}”在 {len(ids)} 个方案中都有，已列出这些任务的全部记录。")
        f.user = (args.get("user") or "").strip()[:64] or None
        f.action = (args.get("action") or "").strip()[:40] or None
        for name in ("date_from", "date_to"):
            raw = (args.get(name) or "").strip()
            if raw:
                try:
                    value = date.fromisoformat(raw)
                except ValueError:
                    f.errors.append(f"日期“{raw}”格式不正确（应为 2022-04-08），已忽略。")
                    continue
                if not 2000 <= value.year <= 2100:
                    f.errors.append(f"日期“{raw}”超出范围（2000—2100 年），已忽略。")
                    continue
                setattr(f, name, value)
        return f

    def as_args(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in (
            ("unit", self.unit), ("user", self.user), ("task", self.task), ("action", self.action),
            ("date_from", self.date_from), ("date_to", self.date_to)) if v not in (None, "")}


def _utc_start_of_local_day(day: date) -> datetime:
    """The naive-UTC instant at which a CST day begins (entries are stored in UTC)."""
    local = datetime.combine(day, time.min, tzinfo=CST)
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def audit_entries(filters: AuditFilters):
    stmt = select(AuditEntry)
    if filters.unit is not None:
        stmt = stmt.where(AuditEntry.unit_id == filters.unit)
    if filters.user:
        stmt = stmt.where(AuditEntry.username == filters.user)
    if filters.task_ids is not None:
        stmt = stmt.where(AuditEntry.task_id.in_(filters.task_ids))
    if filters.action:
        stmt = stmt.where(AuditEntry.action == filters.action)
    if filters.date_from:
        stmt = stmt.where(AuditEntry.at >= _utc_start_of_local_day(filters.date_from))
    if filters.date_to:
        stmt = stmt.where(AuditEntry.at < _utc_start_of_local_day(filters.date_to + timedelta(days=1)))
    # Newest first. Within dates, by time: the `at` index then finds the dates and walks them in
    # order. By seq it would walk the trail from its newest entry back to the dates asked (the
    # planner does not know that seq and time rise together): 274 ms for a month a year back at
    # 2.7 million entries (bench/audit_partitions.py). The two orders differ only for entries of
    # transactions that committed in another order than they wrote, milliseconds apart.
    order = ((AuditEntry.at.desc(), AuditEntry.seq.desc()) if filters.date_from or filters.date_to
             else (AuditEntry.seq.desc(),))
    # The rows each entry points to, joined (one query; each is a look-up by key under the LIMIT).
    return (stmt.options(joinedload(AuditEntry.user), joinedload(AuditEntry.unit),
                         joinedload(AuditEntry.task).joinedload(Task.item))
            .order_by(*order))


# ---------------------------------------------------------------- admin

def users_list(unit_id: int | None = None, role: str | None = None, q: str | None = None):
    stmt = select(User).join(User.unit)
    if unit_id is not None:
        stmt = stmt.where(User.unit_id == unit_id)
    if role:
        stmt = stmt.where(User.role == role)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(User.username.ilike(pattern, escape="\\"),
                              User.display_name.ilike(pattern, escape="\\"),
                              Unit.name.ilike(pattern, escape="\\")))
    return stmt.options(selectinload(User.unit)).order_by(Unit.kind, Unit.name, User.role, User.username)


def units_page(q: str | None = None):
    stmt = select(Unit)
    if q:
        stmt = stmt.where(Unit.name.ilike(like_pattern(q), escape="\\"))
    return stmt.options(selectinload(Unit.aliases)).order_by(Unit.kind, Unit.name)


def unit_counts(unit_ids: list[int]) -> dict[int, dict[str, int]]:
    """Users, lead tasks and parts per unit, for one page of units (three GROUP BYs)."""
    counts = {uid: {"users": 0, "leads": 0, "parts": 0} for uid in unit_ids}
    if not unit_ids:
        return counts
    for key, stmt in (
        ("users", select(User.unit_id, func.count(User.id)).where(User.unit_id.in_(unit_ids)).group_by(User.unit_id)),
        ("leads", select(task_lead_units.c.unit_id, func.count()).where(task_lead_units.c.unit_id.in_(unit_ids))
         .group_by(task_lead_units.c.unit_id)),
        ("parts", select(TaskPart.unit_id, func.count(TaskPart.id)).where(TaskPart.unit_id.in_(unit_ids))
         .group_by(TaskPart.unit_id)),
    ):
        for uid, n in db.session.execute(stmt):
            counts[uid][key] = n
    return counts


def all_units():
    return db.session.scalars(select(Unit).order_by(Unit.kind, Unit.name)).all()


def unit_choices() -> list:
    """(id, name) of every unit for a filter's select, as plain rows kept until the trail moves
    (units are created, renamed and imported by audited actions)."""
    return head_cache.cached(("unit_choices",), lambda: db.session.execute(
        select(Unit.id, Unit.name).order_by(Unit.kind, Unit.name)).all())


# ---------------------------------------------------------------- 督办

def active_escalation_count(plan_id: int | None = None) -> int:
    """Active 督办 (of one plan), counted once per change of the audit trail."""
    def count() -> int:
        stmt = select(func.count(Escalation.id)).where(Escalation.state.in_(EscalationState.active()))
        if plan_id is not None:
            stmt = (stmt.join(TaskPart, Escalation.part_id == TaskPart.id).join(Task, Task.id == TaskPart.task_id)
                    .join(Item, Item.id == Task.item_id).where(Item.plan_id == plan_id))
        return db.session.scalar(stmt) or 0
    return head_cache.cached(("active_escalations", plan_id), count)
