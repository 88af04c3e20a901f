"""Tasks per colour (红黄蓝) for the overview and the to-do, kept per process and brought up to
date from the audit trail instead of assessing every task on every view.

A task's colour is decided in Python (workflow/pace.py) from its parts, their milestones, returns
and progress, its plan and the day. Every change to any of these is an audited action naming its
task (or, for a plan-wide change, its plan), so the entries written since the last look say which
tasks to assess again:

- an entry with a task: that task is assessed again;
- an entry with a plan and no task (an import, a round closed): every task of the plan;
- an entry of an action that changes no colour (``COLOURLESS``: logins, reports, settings of
  notices, users and aliases): nothing;
- any other entry, a new day, other warning settings, or a trail that does not continue the one
  seen last (a restore: the entry at the last seen seq has another hash): everything, in chunks.

Everything, from scratch, takes seconds at a hundred thousand tasks: the worker does it once a
day (and when the settings change) and leaves the result in ``colour_snapshot``; a process that
has nothing for the day starts from that snapshot, if it is of the day, the settings and this
trail, and catches up from its head like from its own.

The counts are kept as running totals (all tasks, per plan, per chapter, per lead unit and per
plan × lead unit), so a view reads them without walking the tasks. A transaction that has
written computes directly (``queries.warning_breakdown_now``): its rows are not yet anybody
else's.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from flask import current_app
from sqlalchemy import select

from models import AuditEntry, ColourSnapshot, Item, Plan, Task, TaskPart
from models.plan import task_lead_units
from workflow import background, head_cache, pace
from workflow.extensions import db
from workflow.sqlite import write_transactions
from workflow.timeutil import today_local, utcnow
from workflow.vocabulary import NON_DATA_ACTIONS, TaskKind, WarningLevel

#: Actions that change no task's colour, beyond those that change no report.
COLOURLESS = frozenset(NON_DATA_ACTIONS) | {
    "user_created", "user_updated", "alias_added", "alias_removed", "notice_settings_changed",
    "unit_robot_changed", "unit_created", "unit_updated", "bulletin_issued",
}
#: Tasks assessed per query batch (memory stays that of one batch).
CHUNK = 2000
#: Past this many tasks to assess again, start from scratch (the chunks are cheaper than IN lists).
REBUILD_OVER = 20000

_KEY = "luoshi.colours"

Row = tuple  # (level value or None, plan_id, chapter_id, lead unit ids, list order key)


def order_key(plan_id: int, position: int, kind: str, seq: int) -> tuple:
    """The task list's order (``queries.task_order``: the newest plan first, then document order)."""
    return (-plan_id, position, TaskKind(kind).rank, seq)


@dataclass
class _Plan:
    total: Counter = field(default_factory=Counter)
    chapters: dict[int, Counter] = field(default_factory=dict)
    units: dict[int, Counter] = field(default_factory=dict)


def _entry(table: dict, key, make):
    """``table[key]``, made on first use (``setdefault`` would build a new one on every call: the
    full pass counts 100k tasks)."""
    found = table.get(key)
    if found is None:
        found = table[key] = make()
    return found


@dataclass
class _Kept:
    head: tuple[int, str]
    today: date
    settings: pace.Settings
    tasks: dict[int, Row] = field(default_factory=dict)
    total: Counter = field(default_factory=Counter)
    units: dict[int, Counter] = field(default_factory=dict)
    plans: dict[int, _Plan] = field(default_factory=dict)
    #: Full passes, tasks assessed and snapshots taken up since the process started (the tests read them).
    rebuilds: int = 0
    reassessed: int = 0
    loaded: int = 0
    #: Moves with every change; the sorted id lists below are of one version.
    version: int = 0
    sorted_ids: dict = field(default_factory=dict)

    def _count(self, row: Row, delta: int) -> None:
        level, plan_id, chapter_id, unit_ids, _ = row
        if level is None:
            return
        plan = _entry(self.plans, plan_id, _Plan)
        self.total[level] += delta
        plan.total[level] += delta
        _entry(plan.chapters, chapter_id, Counter)[level] += delta
        for unit_id in unit_ids:
            _entry(self.units, unit_id, Counter)[level] += delta
            _entry(plan.units, unit_id, Counter)[level] += delta

    def put(self, task_id: int, row: Row | None) -> None:
        self.version += 1
        old = self.tasks.pop(task_id, None)
        if old is not None:
            self._count(old, -1)
        if row is not None:
            self.tasks[task_id] = row
            self._count(row, +1)


class _Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.kept: _Kept | None = None


def _store() -> _Store:
    return current_app.extensions.setdefault(_KEY, _Store())


def _assess(stmt, kept: _Kept) -> set[int]:
    """Assess the tasks ``stmt`` selects (in chunks by id) into ``kept``; the ids seen."""
    from workflow.queries import list_options

    seen: set[int] = set()
    last = 0
    while True:
        tasks = db.session.scalars(stmt.where(Task.id > last).order_by(Task.id).limit(CHUNK)
                                   .options(*list_options())).all()
        if not tasks:
            return seen
        assessed = pace.assess_tasks(tasks, kept.today, kept.settings)
        for task in tasks:
            level = assessed[task.id].level
            kept.put(task.id, (level.value if level else None, task.item.plan_id, task.item.chapter_id,
                               tuple(u.id for u in task.lead_units),
                               order_key(task.item.plan_id, task.item.position, task.kind, task.seq)))
            seen.add(task.id)
        kept.reassessed += len(tasks)
        last = tasks[-1].id


class _PartRow:
    """A part as the rules read it (``pace.raw``), from a plain row."""
    __slots__ = ("id", "task_id", "state", "progress", "deadline", "red_since", "red_reason", "received_at")

    def __init__(self, row):
        (self.id, self.task_id, self.state, self.progress, self.deadline, self.red_since, self.red_reason,
         self.received_at) = row


class _TaskRow:
    __slots__ = ("long_term", "deadline", "deadline_text", "plan_id", "chapter_id", "order")

    def __init__(self, row):
        self.long_term, self.deadline, self.deadline_text, self.plan_id, self.chapter_id = row[:5]
        self.order = order_key(self.plan_id, *row[5:])


def _rebuild(now, today: date, settings: pace.Settings, before: _Kept | None) -> _Kept:
    """Every task assessed, from plain rows: the same rules (``pace.assess``, ``pace.worst``) without
    building ORM objects for a hundred thousand tasks and their parts."""
    kept = _Kept(now, today, settings, rebuilds=(before.rebuilds if before else 0) + 1,
                 reassessed=before.reassessed if before else 0)
    starts = {pid: pace.plan_start(plan) for pid, plan in
              ((p.id, p) for p in db.session.execute(select(Plan.id, Plan.issued_on, Plan.imported_at)))}
    leads: dict[int, list[int]] = {}
    for task_id, unit_id in db.session.execute(select(task_lead_units.c.task_id, task_lead_units.c.unit_id)
                                               .order_by(task_lead_units.c.task_id, task_lead_units.c.position)):
        leads.setdefault(task_id, []).append(unit_id)
    tasks = {row[0]: _TaskRow(row[1:]) for row in db.session.execute(
        select(Task.id, Task.long_term, Task.deadline, Task.deadline_text, Item.plan_id, Item.chapter_id,
               Item.position, Task.kind, Task.seq)
        .join(Item, Item.id == Task.item_id))}
    maps = pace.fact_maps(None)
    by_task: dict[int, list] = {}
    # A part handed in (or closed) has no colour by the rules (pace.raw, pace.assess): only open ones are read.
    for row in db.session.execute(select(TaskPart.id, TaskPart.task_id, TaskPart.state, TaskPart.progress,
                                         TaskPart.deadline, TaskPart.red_since, TaskPart.red_reason,
                                         TaskPart.received_at).where(TaskPart.state.in_(pace.OPEN_STATES))):
        part = _PartRow(row)
        task = tasks[part.task_id]
        facts = pace.facts_of(part.id, pace.part_start(part.received_at, starts.get(task.plan_id), today), maps)
        by_task.setdefault(part.task_id, []).append(pace.assess(part, task, facts, today, settings))
    for task_id, task in tasks.items():
        level = pace.worst(by_task.get(task_id, ())).level
        kept.put(task_id, (level.value if level else None, task.plan_id, task.chapter_id,
                           tuple(leads.get(task_id, ())), task.order))
    kept.reassessed += len(tasks)
    return kept


def _continues(kept: _Kept) -> bool:
    seq, hash_ = kept.head
    if seq == 0:
        return True
    return db.session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == seq)) == hash_


def _catch_up(kept: _Kept, now) -> bool:
    """Assess again what the entries since ``kept.head`` touched; False when only a full pass will do."""
    rows = db.session.execute(
        select(AuditEntry.action, AuditEntry.task_id, AuditEntry.plan_id).distinct()
        .where(AuditEntry.seq > kept.head[0], AuditEntry.seq <= now[0])).all()
    task_ids, plan_ids = set(), set()
    for action, task_id, plan_id in rows:
        if action in COLOURLESS:
            continue
        if task_id is not None:
            task_ids.add(task_id)
        elif plan_id is not None:
            plan_ids.add(plan_id)
        else:
            return False
    for plan_id in plan_ids:
        known = {tid for tid, row in kept.tasks.items() if row[1] == plan_id}
        if len(known) > REBUILD_OVER:
            return False
        seen = _assess(select(Task).join(Task.item).where(Item.plan_id == plan_id), kept)
        for gone in known - seen:
            kept.put(gone, None)
    task_ids = sorted(task_ids)
    if len(task_ids) > REBUILD_OVER:
        return False
    for i in range(0, len(task_ids), 500):
        chunk = task_ids[i:i + 500]
        seen = _assess(select(Task).where(Task.id.in_(chunk)), kept)
        for gone in set(chunk) - seen:
            kept.put(gone, None)
    kept.head = now
    return True


def _up_to_date(store: _Store, today: date) -> _Kept:
    """The kept colours, brought up to the head and day (the caller holds the lock)."""
    now = head_cache.request_head()
    settings = pace.Settings.current()
    kept = store.kept
    if kept is None or kept.today != today or kept.settings != settings or not _continues(kept):
        kept = _from_snapshot(today, settings, kept) or _rebuild(now, today, settings, kept)
    if kept.head != now and not _catch_up(kept, now):
        kept = _rebuild(now, today, settings, kept)
    store.kept = kept
    return kept


# ---------------------------------------------------------------- the day's snapshot

@functools.cache
def rules_version() -> str:
    """A digest of the code that decides a colour: a snapshot written by a worker still on another
    release (a deployment under way) is not taken by processes of this one."""
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in ("pace.py", "colours.py", "due.py", "vocabulary.py"):
        with open(os.path.join(here, name), "rb") as fh:
            digest.update(name.encode() + b"\0" + fh.read() + b"\0")
    return digest.hexdigest()[:12]


def _settings_text(settings: pace.Settings) -> str:
    return json.dumps({**dataclasses.asdict(settings), "rules": rules_version()}, sort_keys=True)


def _from_snapshot(today: date, settings: pace.Settings, before: _Kept | None) -> _Kept | None:
    """The worker's colours of the day, if they are of this day, these settings and this trail."""
    found = db.session.scalar(select(ColourSnapshot).where(ColourSnapshot.id == 1))
    if found is None or found.day != today or found.settings != _settings_text(settings):
        return None
    kept = _Kept((found.head_seq, found.head_hash), today, settings,
                 rebuilds=before.rebuilds if before else 0, reassessed=before.reassessed if before else 0,
                 loaded=(before.loaded if before else 0) + 1)
    if not _continues(kept):
        return None
    for task_id, row in _decode(found.data):
        kept.put(task_id, row)
    return kept


# The snapshot's encoding: one array per column (what JSON of 100k small lists took 0.4 s to read,
# arrays take milliseconds), compressed. Levels as their index in LEVELS (-1: none), a task's lead
# units as a count and a run in one flat array; the order key is rebuilt from its parts.
LEVELS = [level.value for level in WarningLevel]
_COLUMNS = (("ids", "q"), ("levels", "b"), ("plans", "q"), ("chapters", "q"), ("unit_counts", "H"),
            ("units", "q"), ("positions", "q"), ("ranks", "b"), ("seqs", "q"))


def _encode(tasks: dict[int, Row]) -> bytes:
    columns = {name: array(code) for name, code in _COLUMNS}
    for task_id, (level, plan_id, chapter_id, unit_ids, order) in tasks.items():
        _minus_plan, position, rank, seq = order
        columns["ids"].append(task_id)
        columns["levels"].append(LEVELS.index(level) if level is not None else -1)
        columns["plans"].append(plan_id)
        columns["chapters"].append(chapter_id)
        columns["unit_counts"].append(len(unit_ids))
        columns["units"].extend(unit_ids)
        columns["positions"].append(position)
        columns["ranks"].append(rank)
        columns["seqs"].append(seq)
    header = json.dumps({name: len(columns[name]) for name, _ in _COLUMNS}).encode()
    body = b"".join(columns[name].tobytes() for name, _ in _COLUMNS)
    return zlib.compress(len(header).to_bytes(4, "big") + header + body, 6)


def _decode(data: bytes):
    raw = zlib.decompress(data)
    size = int.from_bytes(raw[:4], "big")
    lengths = json.loads(raw[4:4 + size])
    at, columns = 4 + size, {}
    for name, code in _COLUMNS:
        column = array(code)
        end = at + lengths[name] * column.itemsize
        column.frombytes(raw[at:end])
        columns[name], at = column, end
    units, start = columns["units"], 0
    for i, task_id in enumerate(columns["ids"]):
        count, level, plan_id = columns["unit_counts"][i], columns["levels"][i], columns["plans"][i]
        yield task_id, (LEVELS[level] if level >= 0 else None, plan_id, columns["chapters"][i],
                        tuple(units[start:start + count]),
                        (-plan_id, columns["positions"][i], columns["ranks"][i], columns["seqs"][i]))
        start += count


def snapshot_is_current(today: date | None = None) -> bool:
    found = db.session.execute(select(ColourSnapshot.day, ColourSnapshot.settings)
                               .where(ColourSnapshot.id == 1)).first()
    return found is not None and tuple(found) == (today or today_local(), _settings_text(pace.Settings.current()))


@background.every_minute("colours.snapshot")
def write_snapshot() -> bool:
    """Once a day (and when the warning settings change): every task assessed, for the web
    processes to start from. Returns whether it wrote."""
    today = today_local()
    if snapshot_is_current(today):
        return False
    # The full pass reads for seconds: not inside a write transaction (on SQLite the tick's
    # BEGIN IMMEDIATE would hold every writer back meanwhile); only the row is written in one.
    write_transactions(False)
    db.session.rollback()
    try:
        kept = _rebuild(head_cache.head(), today, pace.Settings.current(), None)
    finally:
        write_transactions(True)
    db.session.rollback()
    values = dict(day=today, settings=_settings_text(kept.settings), head_seq=kept.head[0], head_hash=kept.head[1],
                  tasks=len(kept.tasks), data=_encode(kept.tasks), made_at=utcnow())
    found = db.session.get(ColourSnapshot, 1)
    if found is None:
        db.session.add(ColourSnapshot(id=1, **values))
    else:
        for name, value in values.items():
            setattr(found, name, value)
    return True


def _plain(counter: Counter | None) -> dict[str, int]:
    out = {level.value: 0 for level in WarningLevel}
    for level, n in (counter or {}).items():
        out[level] = n
    return out


def breakdown(plan_id: int | None, today: date) -> dict:
    """``queries.warning_breakdown`` from the kept counts: tasks per colour in all (``total``),
    per plan, per chapter and per lead unit, of every plan or of one."""
    store = _store()
    with store.lock:
        kept = _up_to_date(store, today)
        if plan_id is None:
            return {"total": _plain(kept.total),
                    "plans": {pid: _plain(p.total) for pid, p in kept.plans.items()},
                    "chapters": {cid: _plain(c) for p in kept.plans.values() for cid, c in p.chapters.items()},
                    "units": {uid: _plain(c) for uid, c in kept.units.items()},
                    "empty": _plain(None)}
        plan = kept.plans.get(plan_id, _Plan())
        return {"total": _plain(plan.total), "plans": {plan_id: _plain(plan.total)},
                "chapters": {cid: _plain(c) for cid, c in plan.chapters.items()},
                "units": {uid: _plain(c) for uid, c in plan.units.items()},
                "empty": _plain(None)}


def task_ids(level: str, today: date, plan_id: int | None = None) -> list[int]:
    """The ids of the tasks of one colour (of one plan), in the task list's order — kept, like the
    counts, until a change, so that the list's 红黄蓝 filter pages without assessing every task."""
    store = _store()
    with store.lock:
        kept = _up_to_date(store, today)
        key = (level, plan_id)
        found = kept.sorted_ids.get(key)
        if found is None or found[0] != kept.version:
            chosen = [(row[4], tid) for tid, row in kept.tasks.items()
                      if row[0] == level and (plan_id is None or row[1] == plan_id)]
            chosen.sort()
            found = kept.sorted_ids[key] = (kept.version, [tid for _, tid in chosen])
        return found[1]


def statistics() -> tuple[int, int]:
    """(full passes, tasks assessed) by this process so far."""
    kept = _store().kept
    return (kept.rebuilds, kept.reassessed) if kept else (0, 0)


def snapshots_loaded() -> int:
    kept = _store().kept
    return kept.loaded if kept else 0
