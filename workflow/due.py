"""Late and near-due: one definition for lists, the dashboard and reports.

red (late): past its deadline and not verified (or closed);
yellow (near): due within NEAR_DUE_DAYS and not yet submitted;
long-term tasks are never late.
"""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import and_, not_

from workflow.states import CLOSED, IN_PROGRESS, PLANNED, VERIFIED

LATE = "late"
NEAR = "near"
DUE_LABELS = {LATE: "已逾期", NEAR: "临期"}


def due_status(task, today: date, near_days: int) -> str | None:
    if task.long_term or task.deadline is None:
        return None
    if task.deadline < today and task.state not in (VERIFIED, CLOSED):
        return LATE
    if today <= task.deadline <= today + timedelta(days=near_days) and task.state in (PLANNED, IN_PROGRESS):
        return NEAR
    return None


def days_late(task, today: date) -> int:
    return (today - task.deadline).days if task.deadline and task.deadline < today else 0


def late_clause(Task, today: date):
    """SQL condition equal to ``due_status(...) == LATE``."""
    return and_(not_(Task.long_term), Task.deadline.is_not(None), Task.deadline < today,
                Task.state.not_in((VERIFIED, CLOSED)))


def near_clause(Task, today: date, near_days: int):
    """SQL condition equal to ``due_status(...) == NEAR``."""
    return and_(not_(Task.long_term), Task.deadline.is_not(None), Task.deadline >= today,
                Task.deadline <= today + timedelta(days=near_days), Task.state.in_((PLANNED, IN_PROGRESS)))
