"""Late and near-due: one definition for lists, the dashboard and reports.

red (late): past its deadline and not verified (or closed);
yellow (near): due within NEAR_DUE_DAYS and not yet submitted;
long-term tasks are never late.

And the deadline as every page, ledger and report shows it: 长期, the date, or 未定.
"""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import and_, not_

from workflow.vocabulary import TaskState

LATE = "late"
NEAR = "near"
DUE_LABELS = {LATE: "已逾期", NEAR: "临期"}
LONG_TERM_SHOWN = "长期"
UNDECIDED_SHOWN = "未定"

# Verified or closed: never late. Not yet submitted: may be near.
_FINISHED = (TaskState.VERIFIED, TaskState.CLOSED)
_NOT_HANDED_IN = (TaskState.PLANNED, TaskState.IN_PROGRESS)


def deadline_value(task) -> date | str:
    """The deadline as shown: 长期 for a long-term task, else its date, else 未定
    (the wording as written, ``deadline_text``, is shown beside it where a page has room).
    The date itself, not text, so the ledger keeps a date cell."""
    if task.long_term:
        return LONG_TERM_SHOWN
    if task.deadline is not None:
        return task.deadline
    return UNDECIDED_SHOWN


def deadline_shown(task) -> str:
    value = deadline_value(task)
    return value.isoformat() if isinstance(value, date) else value


def due_status(task, today: date, near_days: int) -> str | None:
    if task.long_term or task.deadline is None:
        return None
    if task.deadline < today and task.state not in _FINISHED:
        return LATE
    if today <= task.deadline <= today + timedelta(days=near_days) and task.state in _NOT_HANDED_IN:
        return NEAR
    return None


def days_late(task, today: date) -> int:
    return (today - task.deadline).days if task.deadline and task.deadline < today else 0


def late_clause(Task, today: date):
    """SQL condition equal to ``due_status(...) == LATE``."""
    return and_(not_(Task.long_term), Task.deadline.is_not(None), Task.deadline < today,
                Task.state.not_in(_FINISHED))


def near_clause(Task, today: date, near_days: int):
    """SQL condition equal to ``due_status(...) == NEAR``."""
    return and_(not_(Task.long_term), Task.deadline.is_not(None), Task.deadline >= today,
                Task.deadline <= today + timedelta(days=near_days), Task.state.in_(_NOT_HANDED_IN))
