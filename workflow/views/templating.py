"""Every Jinja global, filter and context processor of the application, registered by ``register(app)``.

Globals rather than a context processor wherever the value does not depend on the
request: imported macros (templates/_macros.html, reports/pdf/_macros.html) see the
environment's globals but not the render context, and the PDF reports render
outside any request (workflow/reports/render.py uses ``app.jinja_env`` directly).
"""
from __future__ import annotations

from flask import Flask, current_app, g, request, url_for
from flask_login import current_user
from jinja2 import pass_context

from auth.permissions import can, may, office_verifies, pending_submission, verifiers
from models.plan import chapter_heading
from workflow import head_cache, queries
from workflow.audit import ACTION_LABELS
from workflow.due import DUE_LABELS, UNDECIDED_SHOWN, due_status
from workflow.machine import EVENT_LABELS, open_round_entry
from workflow.reports.render import SEAM_ROWS, css_string
from workflow.services import EDITABLE_FIELDS, carryable_evidence
from workflow.timeutil import chinese_date, clock_date, format_local, today_local
from workflow.vocabulary import (
    STATE_LABELS, ExtensionState, MilestoneState, ReportStatus, SubmissionOutcome, TaskKind, TaskState,
    WarningLevel)


def register(app: Flask) -> None:
    app.jinja_env.globals.update(
        # Questions about the signed-in user and the current request.
        may=may_current, can=can_current, own_submission=own_submission, due_of=due_of,
        page_url=page_url, export_url=export_url, has_endpoint=has_endpoint, verifiers=verifiers,
        office_verifies=office_verifies, carryable=carryable_evidence, chapter_heading=chapter_heading,
        round_entry=open_round_entry, pending_extensions=pending_extensions, escalation_count=escalation_count,
        # The demo clock's day, or None: the header shows it on every page when set.
        clock_date=clock_date,
        # The vocabularies and their labels.
        STATE_LABELS=STATE_LABELS, TaskState=TaskState, TaskKind=TaskKind,
        SubmissionOutcome=SubmissionOutcome, ReportStatus=ReportStatus, WarningLevel=WarningLevel,
        ExtensionState=ExtensionState, MilestoneState=MilestoneState,
        DUE_LABELS=DUE_LABELS, EVENT_LABELS=EVENT_LABELS, ACTION_LABELS=ACTION_LABELS,
        EDIT_LABELS=EDITABLE_FIELDS, DEADLINE_UNDECIDED=UNDECIDED_SHOWN,
        # The PDF reports' seams (templates/reports/pdf/_macros.html).
        SEAM_ROWS=SEAM_ROWS,
    )
    app.jinja_env.filters.update(localtime=format_local, chinese_date=chinese_date, state_label=TaskState.label_of,
                                 filesize=filesize, css_string=css_string)
    # A context processor, not a global: the header's count is the signed-in
    # user's unread messages at the moment this page renders, one query per page.
    app.context_processor(_unread_inbox)


# The user object itself, not the ``current_user`` proxy: a task page asks these some sixty
# times, and every look-up through the proxy (Flask-Login's ``_get_user`` behind two proxies)
# costs more than the rule it asks. A page's render context holds the user already (Flask-Login's
# context processor puts the object there); a macro imported without context falls back to the proxy.

def _user_of(context):
    user = context.get("current_user")
    return user if user is not None else current_user._get_current_object()


@pass_context
def may_current(context, action: str, obj=None) -> bool:
    return may(_user_of(context), action, obj)


@pass_context
def can_current(context, action: str, obj) -> bool:
    return can(_user_of(context), action, obj)


def own_submission(part) -> bool:
    """The part's pending submission was handed in by the current user."""
    submission = pending_submission(part)
    return submission is not None and submission.submitted_by_id == current_user.id


# The header's two counts are on every page; requests, decisions and 督办 are audited actions, so
# each is counted once per change of the audit trail (workflow/head_cache.py).

def pending_extensions() -> int:
    """How many extension requests wait for the signed-in user's decision (the header's 延期审批)."""
    if not current_user.is_authenticated:
        return 0
    user = current_user._get_current_object()
    return head_cache.cached(("pending_extensions", user.id), lambda: queries.extension_pending_count(user))


def escalation_count() -> int:
    """督办 open or named in a bulletin, not yet resolved (the header's 督办)."""
    return queries.active_escalation_count()


def due_of(task) -> str | None:
    return due_status(task, today_local(), current_app.config["NEAR_DUE_DAYS"])


def filesize(size: int | None) -> str:
    if not size:
        return ""
    if size < 1024:
        return f"{size} 字节"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def page_url(page: int) -> str:
    """This page's URL with its query args, at another page number. Only
    plain args are carried over: "endpoint" or "_external"/"_scheme" from
    the query string must not reach url_for as its own parameters."""
    args = {k: v for k, v in request.args.items() if k != "endpoint" and not k.startswith("_")}
    args.update(request.view_args or {})
    args["page"] = page
    return url_for(request.endpoint, **args)


def export_url(fmt: str) -> str:
    """This list's export (``?format=csv|xlsx``) with the current filters, as ``page_url`` carries them."""
    args = {k: v for k, v in request.args.items()
            if k not in ("endpoint", "page", "format") and not k.startswith("_")}
    args.update(request.view_args or {})
    args["format"] = fmt
    return url_for(request.endpoint, **args)


def has_endpoint(name: str) -> bool:
    return name in current_app.view_functions


def _unread_inbox() -> dict:
    if current_user.is_authenticated:
        # Counted with the user's load (auth/session.py). A GET changes nothing, so that count holds
        # for its page; a POST that renders (a refused form) counts again after what it did.
        if request.method in ("GET", "HEAD") and "unread_inbox" in g:
            return {"unread_inbox": g.unread_inbox}
        return {"unread_inbox": queries.unread_count(current_user)}
    return {"unread_inbox": 0}
