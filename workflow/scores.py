"""单位考核排名: each working unit's figures for a period, its score 0–100 and its rank
(docs/scores.md is the formula in words; every rule there is a rule here).

The facts are read once, as compact rows, in a fixed number of queries (``load_facts``:
five, whatever the number of units, parts or months); ``measure`` then computes any
period from them in Python. One read serves the period, its chapters and the twelve
months of the trend: SQL aggregates per period would cost a query per month, and
bucketing by the China Standard Time date in SQL differs between the two databases.

Two days decide a period's figures (``Period.last_day``, ``Period.judge_day``):

- events (hand-ins, decisions, requests, filings) count up to and including
  ``last_day`` = the period's end, or today when the period runs past it;
- "overdue" is judged as due.py judges it, with ``judge_day`` for today: the day
  after the period's end (a part due on its last day and not finished by then is
  one day late), or today for a period still running.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import Flask, current_app, has_app_context
from sqlalchemy import select

from models import (
    Chapter, ExtensionRequest, Item, Plan, ProgressRound, RoundPart, Submission, Task, TaskPart, Unit,
)
from models.plan import chapter_heading
from workflow.extensions import db
from workflow.queries import receipt_cutoff
from workflow.timeutil import CLOCK_MAX, CLOCK_MIN, to_local
from workflow.vocabulary import GRANTED, PLANNED, SubmissionOutcome

# ------------------------------------------------------------------ the weights

COMPONENTS = ("ontime", "overdue", "returns", "filings", "receipt")
COMPONENT_LABELS = {"ontime": "按期完成", "overdue": "逾期", "returns": "退回", "filings": "调度报送",
                    "receipt": "签收"}
WEIGHTS_SETTING = "SCORE_WEIGHTS"
DEFAULT_WEIGHTS = "ontime=40,overdue=20,returns=15,filings=15,receipt=10"
_WEIGHTS_KEY = "luoshi.score_weights"
# An overdue part costs in proportion to its days late, up to this many: a month
# late is as bad as it gets, so one very old part does not outweigh all the rest.
OVERDUE_CAP_DAYS = 30
# A filing made after the round's due date is better than none: half the credit.
LATE_FILING_CREDIT = 0.5


class WeightsError(RuntimeError):
    """SCORE_WEIGHTS cannot be read; the message (Chinese) names the variable."""


def parse_weights(raw) -> dict[str, int]:
    """``"ontime=40,overdue=20,…"`` → {component: weight}. Components left out weigh 0
    (not scored); at least one must weigh more than 0."""
    text = DEFAULT_WEIGHTS if raw is None or not str(raw).strip() else str(raw).strip()
    known = "、".join(COMPONENTS)
    weights = dict.fromkeys(COMPONENTS, 0)
    seen = set()
    for piece in text.split(","):
        name, sep, value = (s.strip() for s in piece.partition("="))
        if not sep or not name:
            raise WeightsError(f"环境变量 {WEIGHTS_SETTING} 的“{piece.strip()[:30]}”应写作 名称=权重，"
                               f"例如 {WEIGHTS_SETTING}={DEFAULT_WEIGHTS}；拒绝启动。")
        if name not in weights:
            raise WeightsError(f"环境变量 {WEIGHTS_SETTING} 中的“{name[:30]}”不是考核项（应为 {known}）；拒绝启动。")
        if name in seen:
            raise WeightsError(f"环境变量 {WEIGHTS_SETTING} 中“{name}”出现了两次；拒绝启动。")
        if not (re.fullmatch(r"\d{1,3}", value) and int(value) <= 100):
            raise WeightsError(f"环境变量 {WEIGHTS_SETTING} 中“{name}”的权重“{value[:30]}”应为 0 到 100 的整数；拒绝启动。")
        seen.add(name)
        weights[name] = int(value)
    if not any(weights.values()):
        raise WeightsError(f"环境变量 {WEIGHTS_SETTING} 的权重全为 0，至少一项须大于 0；拒绝启动。")
    return weights


def configure(app: Flask) -> None:
    """Read SCORE_WEIGHTS once, at start-up: a typo stops the app where it was made."""
    app.extensions[_WEIGHTS_KEY] = parse_weights(app.config.get(WEIGHTS_SETTING))


def current_weights() -> dict[str, int]:
    if has_app_context() and _WEIGHTS_KEY in current_app.extensions:
        return current_app.extensions[_WEIGHTS_KEY]
    return parse_weights(None)


def weights_text(weights: dict[str, int]) -> str:
    return "，".join(f"{COMPONENT_LABELS[k]} {weights[k]}" for k in COMPONENTS if weights[k])


# ------------------------------------------------------------------ periods

PERIOD_KINDS = {"month": "本月", "last_month": "上月", "quarter": "本季度", "year": "本年", "custom": "自定义"}


class PeriodError(ValueError):
    """A period the page cannot measure; the message is Chinese."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    kind: str = "custom"

    @property
    def label(self) -> str:
        span = f"{self.start.isoformat()} 至 {self.end.isoformat()}"
        return span if self.kind == "custom" else f"{PERIOD_KINDS[self.kind]}（{span}）"

    def last_day(self, today: date) -> date:
        return min(self.end, today)

    def judge_day(self, today: date) -> date:
        return min(self.end + timedelta(days=1), today)


def month_period(year: int, month: int) -> Period:
    return Period(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]), "custom")


def period_of(kind: str, today: date, start: date | None = None, end: date | None = None) -> Period:
    """本月 / 上月 / 本季度 / 本年 around ``today``, or 自定义 from ``start`` to ``end``."""
    if kind == "month":
        p = month_period(today.year, today.month)
    elif kind == "last_month":
        first = today.replace(day=1) - timedelta(days=1)
        p = month_period(first.year, first.month)
    elif kind == "quarter":
        q = (today.month - 1) // 3
        p = Period(date(today.year, 3 * q + 1, 1), month_period(today.year, 3 * q + 3).end)
    elif kind == "year":
        p = Period(date(today.year, 1, 1), date(today.year, 12, 31))
    elif kind == "custom":
        if start is None or end is None:
            raise PeriodError("自定义期间请填写开始日期和结束日期。")
        p = Period(start, end)
    else:
        raise PeriodError("考核期间无效，请从列表中选择。")
    p = Period(p.start, p.end, kind)
    if p.start > p.end:
        raise PeriodError("开始日期不能晚于结束日期。")
    if p.start > today:
        raise PeriodError(f"考核期间尚未开始（今天是 {today.isoformat()}），没有可考核的数据。")
    return p


def parse_day(raw: str | None, what: str) -> date | None:
    text = (raw or "").strip()
    if not text:
        return None
    day = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
    if day is None:
        raise PeriodError(f"{what}“{text[:20]}”不是有效日期，请使用 YYYY-MM-DD 格式，例如 2022-09-30。")
    if not CLOCK_MIN <= day <= CLOCK_MAX:
        raise PeriodError(f"{what}须在 {CLOCK_MIN.isoformat()} 至 {CLOCK_MAX.isoformat()} 之间。")
    return day


def trend_months(today: date, period: Period, count: int = 12) -> list[Period]:
    """The ``count`` calendar months ending with the one holding the period's last day."""
    last = period.last_day(today)
    year, month = last.year, last.month
    months = []
    for _ in range(count):
        months.append(month_period(year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


# ------------------------------------------------------------------ the facts

def _day(value: datetime | None) -> date | None:
    return to_local(value).date() if value is not None else None


@dataclass(frozen=True)
class PartFact:
    id: int
    unit_id: int
    chapter_id: int
    deadline: date | None       # in force: the part's own (extended), else the task's
    long_term: bool
    unreceived: bool            # planned and never acknowledged, as queries.unreceived_parts
    imported_at: datetime       # the plan's, naive UTC (receipt is due RECEIPT_DUE_DAYS after it)


@dataclass
class Facts:
    units: dict[int, str]
    chapters: dict[int, str]
    parts: list[PartFact]
    accepted: dict[int, tuple[date, date]]          # part → (hand-in day, verification day) of its verified submission
    decisions: list[tuple[int, date, bool]]         # (unit, decision day, returned?)
    extensions: list[tuple[int, date, date | None]]  # (unit, request day, grant day or None)
    entries: list[tuple[int, date, date | None, bool, date | None]]  # (unit, due, filed day, late, closed day)


def load_facts(plan_id: int | None = None, numeral=str) -> Facts:
    """Everything the scores read, for one plan or all: five queries. ``numeral`` writes
    a chapter's number (reports.data.chinese_number; passed in, as that module reads this one)."""
    scope = select(TaskPart.id).join(Task, TaskPart.task_id == Task.id).join(Item, Task.item_id == Item.id)
    if plan_id is not None:
        scope = scope.where(Item.plan_id == plan_id)

    part_rows = db.session.execute(
        select(TaskPart.id, TaskPart.unit_id, Unit.name, TaskPart.deadline, Task.deadline, Task.long_term,
               TaskPart.state, TaskPart.received_at, Plan.imported_at, Item.chapter_id)
        .join(Task, TaskPart.task_id == Task.id).join(Item, Task.item_id == Item.id)
        .join(Plan, Item.plan_id == Plan.id).join(Unit, TaskPart.unit_id == Unit.id)
        .where(TaskPart.id.in_(scope)).order_by(TaskPart.id)).all()
    units: dict[int, str] = {}
    parts = []
    for pid, uid, name, own, task_deadline, long_term, state, received_at, imported_at, chapter_id in part_rows:
        units[uid] = name
        parts.append(PartFact(pid, uid, chapter_id, own or task_deadline, bool(long_term),
                              received_at is None and state == PLANNED, imported_at))
    unit_of = {p.id: p.unit_id for p in parts}

    chapter_rows = db.session.execute(
        select(Chapter.id, Chapter.plan_id, Chapter.number, Chapter.title)
        .where(Chapter.id.in_({p.chapter_id for p in parts}))
        .order_by(Chapter.plan_id, Chapter.number)).all()
    many_plans = len({r.plan_id for r in chapter_rows}) > 1
    chapters = {r.id: (f"#{r.plan_id} " if many_plans else "") + chapter_heading(r.number, r.title, numeral)
                for r in chapter_rows}

    accepted: dict[int, tuple[date, date]] = {}
    decisions = []
    for part_id, submitted_at, decided_at, outcome in db.session.execute(
            select(Submission.part_id, Submission.submitted_at, Submission.decided_at, Submission.outcome)
            .where(Submission.part_id.in_(scope), Submission.decided_at.is_not(None))
            .order_by(Submission.part_id, Submission.number)):
        decisions.append((unit_of[part_id], _day(decided_at), outcome == SubmissionOutcome.RETURNED))
        # A reopened submission is no longer the part's finish: only the verified one counts.
        if outcome == SubmissionOutcome.VERIFIED:
            accepted[part_id] = (_day(submitted_at), _day(decided_at))

    extensions = [(unit_of[part_id], _day(requested_at), _day(decided_at) if state == GRANTED else None)
                  for part_id, requested_at, state, decided_at in db.session.execute(
                      select(ExtensionRequest.part_id, ExtensionRequest.requested_at, ExtensionRequest.state,
                             ExtensionRequest.office_decided_at)
                      .where(ExtensionRequest.part_id.in_(scope)).order_by(ExtensionRequest.id))]

    entries = [(unit_of[part_id], due_on, _day(filed_at), bool(late), _day(closed_at))
               for part_id, due_on, filed_at, late, closed_at in db.session.execute(
                   select(RoundPart.part_id, ProgressRound.due_on, RoundPart.filed_at, RoundPart.late,
                          ProgressRound.closed_at)
                   .join(ProgressRound, RoundPart.round_id == ProgressRound.id)
                   .where(RoundPart.part_id.in_(scope)).order_by(RoundPart.id))]
    return Facts(units, chapters, parts, accepted, decisions, extensions, entries)


# ------------------------------------------------------------------ the figures

@dataclass
class Figures:
    """One unit's (or a chapter's, or everyone's) counts for a period, and its score."""
    name: str = ""
    unit_id: int | None = None
    parts: int = 0               # dated parts (long-term ones have no deadline to meet)
    judged: int = 0              # due in the period and judged: on time + finished late + still overdue
    on_time: int = 0
    finished_late: int = 0
    still_overdue: int = 0
    past_due: int = 0            # deadline before the judge day, not already finished before the period
    overdue: int = 0             # of those, not finished by the period's last day (any deadline)
    overdue_days: int = 0
    overdue_max: int = 0
    overdue_penalty: int = 0     # Σ min(days, OVERDUE_CAP_DAYS)
    decided: int = 0
    returned: int = 0
    ext_requested: int = 0
    ext_granted: int = 0
    filings_due: int = 0         # counted: on time + late + missing
    filed_on_time: int = 0
    filed_late: int = 0
    filings_missing: int = 0
    receipt_due: int = 0
    receipt_late: int = 0
    components: dict = field(default_factory=dict)
    score: float | None = None
    rank: int | None = None

    @property
    def ontime_rate(self) -> float | None:
        return round(100.0 * self.on_time / self.judged, 1) if self.judged else None

    @property
    def return_rate(self) -> float | None:
        return round(100.0 * self.returned / self.decided, 1) if self.decided else None

    def finish(self, weights: dict[str, int]) -> Figures:
        """The components (None: nothing to measure) and the score over those that apply."""
        c = {
            "ontime": 100.0 * self.on_time / self.judged if self.judged else None,
            "overdue": (100.0 * (1 - self.overdue_penalty / (OVERDUE_CAP_DAYS * self.past_due))
                        if self.past_due else None),
            "returns": 100.0 * (1 - self.returned / self.decided) if self.decided else None,
            "filings": (100.0 * (self.filed_on_time + LATE_FILING_CREDIT * self.filed_late) / self.filings_due
                        if self.filings_due else None),
            "receipt": 100.0 * (1 - self.receipt_late / self.receipt_due) if self.receipt_due else None,
        }
        self.components = {k: (round(v, 1) if v is not None else None) for k, v in c.items()}
        applying = [k for k in COMPONENTS if weights.get(k) and c[k] is not None]
        total = sum(weights[k] for k in applying)
        self.score = round(sum(weights[k] * c[k] for k in applying) / total, 1) if total else None
        return self


def _bucket(table: dict, key, name: str = "", unit_id=None) -> Figures:
    if key not in table:
        table[key] = Figures(name=name, unit_id=unit_id)
    return table[key]


def measure(facts: Facts, period: Period, today: date, due_days: int, weights: dict[str, int],
            chapter_unit: int | None = None) -> dict:
    """The period's figures: ``units`` ranked, ``chapters`` (of ``chapter_unit``'s parts
    only, when given), ``total`` (everyone pooled, scored as one)."""
    last, judge = period.last_day(today), period.judge_day(today)
    units: dict[int, Figures] = {uid: Figures(name=name, unit_id=uid) for uid, name in facts.units.items()}
    chapters: dict[int, Figures] = {}
    total = Figures(name="全部单位")
    receipt_before = receipt_cutoff(judge, due_days)

    for p in facts.parts:
        targets = [units[p.unit_id], total]
        if chapter_unit is None or p.unit_id == chapter_unit:
            targets.append(_bucket(chapters, p.chapter_id, facts.chapters.get(p.chapter_id, "")))
        if p.imported_at < receipt_before:
            for f in (units[p.unit_id], total):
                f.receipt_due += 1
                f.receipt_late += p.unreceived
        if p.long_term or p.deadline is None:
            continue
        accepted = facts.accepted.get(p.id)
        finished = accepted is not None and accepted[1] <= last
        handed_in_by_deadline = finished and accepted[0] <= p.deadline
        in_period = period.start <= p.deadline <= period.end
        days = (judge - p.deadline).days
        for f in targets:
            f.parts += 1
            if in_period and handed_in_by_deadline:
                f.judged += 1
                f.on_time += 1
            elif in_period and days > 0:
                f.judged += 1
                if finished:
                    f.finished_late += 1
                else:
                    f.still_overdue += 1
            if days > 0 and not (finished and accepted[1] < period.start):
                f.past_due += 1
                if not finished:
                    f.overdue += 1
                    f.overdue_days += days
                    f.overdue_max = max(f.overdue_max, days)
                    f.overdue_penalty += min(days, OVERDUE_CAP_DAYS)

    def within(day) -> bool:
        return day is not None and period.start <= day <= last

    for uid, day, returned in facts.decisions:
        if within(day):
            for f in (units[uid], total):
                f.decided += 1
                f.returned += returned
    for uid, asked, granted in facts.extensions:
        for f in (units[uid], total):
            f.ext_requested += within(asked)
            f.ext_granted += within(granted)
    for uid, due_on, filed, late, closed in facts.entries:
        if not period.start <= due_on <= period.end:
            continue
        for f in (units[uid], total):
            if filed is not None and filed <= last:
                f.filings_due += 1
                if late:
                    f.filed_late += 1
                else:
                    f.filed_on_time += 1
            elif due_on < judge or (closed is not None and closed <= last):
                f.filings_due += 1
                f.filings_missing += 1

    ranked = rank([f.finish(weights) for f in units.values()])
    for f in chapters.values():
        f.finish(weights)
    chapter_rows = [chapters[cid] for cid in facts.chapters if cid in chapters]
    return {"units": ranked, "chapters": chapter_rows, "total": total.finish(weights)}


def rank_key(f: Figures) -> tuple:
    """Score high to low; then fewer overdue parts, fewer overdue days, more parts judged;
    then the unit's name and id, so the order never depends on the database's."""
    return (f.score is None, -(f.score or 0.0), f.overdue, f.overdue_days, -f.judged, f.name, f.unit_id or 0)


def rank(rows: list[Figures]) -> list[Figures]:
    rows = sorted(rows, key=rank_key)
    for i, f in enumerate(rows, 1):
        f.rank = i if f.score is not None else None
    return rows


# ------------------------------------------------------------------ the page's and the report's figures

def settings() -> tuple[int, dict[str, int]]:
    return int(current_app.config.get("RECEIPT_DUE_DAYS", 3)), current_weights()


def ranking(period: Period, today: date, plan_id: int | None = None, *, trend: int = 12,
            chapter_unit: int | None = None, numeral=str) -> dict:
    """The period's ranking, chapters and total, and the trend of the ``trend`` months
    ending with it (per unit and overall), from one ``load_facts``."""
    due_days, weights = settings()
    facts = load_facts(plan_id, numeral)
    result = measure(facts, period, today, due_days, weights, chapter_unit)
    months = trend_months(today, period, trend) if trend else []
    by_month = [measure(facts, m, today, due_days, weights) for m in months]
    month_scores = [{f.unit_id: f.score for f in r["units"]} for r in by_month]
    result["trend"] = {
        "months": [f"{m.start.year}-{m.start.month:02d}" for m in months],
        "total": [r["total"].score for r in by_month],
        "units": {uid: [scores[uid] for scores in month_scores] for uid in facts.units},
    }
    result.update(period=period, today=today, last_day=period.last_day(today), weights=weights,
                  due_days=due_days, ranked_count=sum(1 for f in result["units"] if f.rank is not None))
    return result
