"""Small helpers shared by views and templates."""
from __future__ import annotations

from flask import Flask, abort
from flask_login import current_user

from auth.permissions import may
from workflow.due import UNDECIDED_SHOWN
from workflow.timeutil import format_local
from workflow.vocabulary import STATE_LABELS, ReportStatus, SubmissionOutcome, TaskKind, TaskState


def safe_next(target: str | None) -> str | None:
    """A redirect target from user input, only if it is a path on this site.

    Browsers drop tabs and newlines and read a backslash as a slash, so
    "/\t/evil.example" would leave the site: any control character or
    backslash disqualifies the target, as does a scheme or a host."""
    from urllib.parse import urlsplit

    if not target or any(ord(ch) < 32 or ch == "\x7f" for ch in target) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def require(action: str, obj=None) -> None:
    if not may(current_user, action, obj):
        abort(403)


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.globals.update(may=lambda action, obj=None: may(current_user, action, obj),
                                 STATE_LABELS=STATE_LABELS, TaskState=TaskState, TaskKind=TaskKind,
                                 SubmissionOutcome=SubmissionOutcome, ReportStatus=ReportStatus,
                                 DEADLINE_UNDECIDED=UNDECIDED_SHOWN)
    app.jinja_env.filters["localtime"] = format_local
    app.jinja_env.filters["detail_value"] = detail_value
    app.jinja_env.filters["state_label"] = TaskState.label_of


def detail_value(v) -> str:
    """An audit entry's details value as text: ``k=v，…`` for a mapping, ``a、b`` for a list.

    A filter, not a macro in the page: a macro defined in a template closes a
    reference cycle around the render context, which then holds the request's
    session and every row on the page until the cyclic garbage collector runs —
    in whichever thread allocates next (issue 7)."""
    if isinstance(v, dict):
        return "，".join(f"{k}={detail_value(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return "、".join(str(x) for x in v)
    return str(v)
