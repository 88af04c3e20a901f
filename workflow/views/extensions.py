"""延期申请 and 进度节点: asking, deciding, setting; the 延期审批 page.

Each POST loads its objects (404 when missing or not of the task in the URL),
asks ``require`` (403 with the reason), reads its form, calls one service of
workflow/extension_services.py and commits once (``commit_service``). A stale
page (the version it showed is not the row's any more) is a 409 showing the
page again with the message; any other refusal is flashed on the page the
form came from. Either way nothing changes.
"""
from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from wtforms import DateField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from models import ExtensionRequest, Milestone, TaskPart
from workflow import extension_services, queries, services, tables
from workflow.extensions import db
from workflow.machine import EVENT_BY_KEY
from workflow.services import Stale
from workflow.timeutil import today_local

from .forms import TransitionForm, VersionedForm
from .helpers import CONFLICT_MESSAGE, commit_service, first_error, require
from .paging import counted_page
from .tasks import detail
from .urls import get_row, safe_next

bp = Blueprint("extensions", __name__)


class ExtensionRequestForm(VersionedForm):
    new_deadline = DateField("申请延至", validators=[InputRequired("请填写申请延至的日期。")], format="%Y-%m-%d")
    reason = TextAreaField("申请理由", validators=[Length(max=2000, message="申请理由不能超过 2000 字。")])


class DecisionForm(TransitionForm):
    next = StringField(validators=[Optional()])


class MilestonesForm(VersionedForm):
    mode = StringField(validators=[Optional()])


MAX_MILESTONES = 24


def _load_part(task_id: int, part_id: int) -> TaskPart:
    part = get_row(TaskPart, part_id)
    if part is None or part.task_id != task_id:
        abort(404)
    return part


def _task_url(task_id: int, part_id: int | None = None) -> str:
    return url_for("tasks.detail", task_id=task_id, _anchor=f"part-{part_id}" if part_id else None)


def _stale_page(message: str, task_id: int | None):
    """The page shown again, with the message, as a 409: the user sees what changed."""
    flash(message, "warning")
    if task_id is None:
        return _index_page(), 409
    return detail(task_id), 409


def _run(action, back: str, task_id: int | None, success: str):
    outcome = commit_service(action)
    if isinstance(outcome.error, Stale) or (outcome.error is not None and outcome.error.message == CONFLICT_MESSAGE):
        return _stale_page(outcome.error.message, task_id)
    if outcome.error is not None:
        flash(outcome.error.message, "danger")
    else:
        flash(success, "success")
    return redirect(back)


# ---------------------------------------------------------------- asking

@bp.route("/tasks/<int:task_id>/parts/<int:part_id>/extension", methods=["POST"])
@login_required
def request_extension(task_id: int, part_id: int):
    part = _load_part(task_id, part_id)
    require("part.extend", part)
    back = _task_url(task_id, part_id)
    form = ExtensionRequestForm()
    error = first_error(form)
    if error:
        flash(error, "danger")
        return redirect(back)
    user = current_user._get_current_object()
    return _run(lambda: extension_services.request_extension(part, user, form.new_deadline.data, form.reason.data,
                                                             expected_version=form.version.data),
                back, task_id, "延期申请已提交，等待牵头单位审核。")


# ---------------------------------------------------------------- deciding

def _back(form, task_id: int, part_id: int) -> str:
    return safe_next(form.next.data) or _task_url(task_id, part_id)


def _decide(obj, subject: str, decision: str):
    """POST of one decision row of the event table on a request or a milestone."""
    event = EVENT_BY_KEY[(subject, decision)]
    require(event.action, obj)
    part = db.session.get(TaskPart, obj.part_id)
    form = DecisionForm()
    back = _back(form, part.task_id, part.id)
    error = first_error(form)
    if error:
        flash(error, "danger")
        return redirect(back)
    inputs = {name: getattr(form, name).data for name in event.inputs}
    user = current_user._get_current_object()
    # A decision made on the 延期审批 page goes back there, a stale one too.
    stale_task = None if back.startswith(url_for("extensions.index")) else part.task_id
    return _run(lambda: services.apply(obj, decision, user, expected_version=form.version.data, **inputs),
                back, stale_task, event.success)


@bp.route("/extensions/<int:request_id>/<any(approve,decline,grant,refuse):decision>", methods=["POST"])
@login_required
def decide_extension(request_id: int, decision: str):
    found = get_row(ExtensionRequest, request_id)
    if found is None:
        abort(404)
    return _decide(found, "extension", decision)


@bp.route("/milestones/<int:milestone_id>/<any(approve,refuse):decision>", methods=["POST"])
@login_required
def decide_milestone(milestone_id: int, decision: str):
    found = get_row(Milestone, milestone_id)
    if found is None:
        abort(404)
    return _decide(found, "milestone", decision)


# ---------------------------------------------------------------- milestones

def _milestone_rows() -> tuple[list, str | None]:
    """The rows of the milestone form: (date, percent, note), blank rows left
    out; or the first problem, in Chinese."""
    dates, percents, notes = (request.form.getlist(k) for k in ("on", "percent", "note"))
    count = max(len(dates), len(percents), len(notes))
    if count > MAX_MILESTONES:
        return [], f"进度节点最多 {MAX_MILESTONES} 个。"
    rows = []
    for i in range(count):
        raw_on, raw_percent, note = (values[i].strip() if i < len(values) else ""
                                     for values in (dates, percents, notes))
        if not (raw_on or raw_percent or note):
            continue
        try:
            on = date.fromisoformat(raw_on) if raw_on else None
        except ValueError:
            return [], f"第 {i + 1} 个节点的日期无效，请按 YYYY-MM-DD 填写。"
        if on is None:
            return [], f"请填写第 {i + 1} 个节点的日期。"
        if not (raw_percent.isascii() and raw_percent.isdigit()):
            return [], f"第 {i + 1} 个节点的完成比例须为 1 到 99 之间的整数。"
        rows.append((on, int(raw_percent), note))
    return rows, None


@bp.route("/tasks/<int:task_id>/parts/<int:part_id>/milestones", methods=["POST"])
@login_required
def milestones(task_id: int, part_id: int):
    """The office sets the part's line (mode "set"); the part's unit proposes one point ("propose")."""
    part = _load_part(task_id, part_id)
    form = MilestonesForm()
    mode = form.mode.data if form.mode.data in ("set", "propose") else (
        "set" if current_user.is_office else "propose")
    require(f"milestone.{mode}", part)
    back = _task_url(task_id, part_id)
    error = first_error(form)
    rows, problem = _milestone_rows()
    if error or problem:
        flash(error or problem, "danger")
        return redirect(back)
    user = current_user._get_current_object()
    if mode == "set":
        return _run(lambda: extension_services.set_milestones(part, user, rows, expected_version=form.version.data),
                    back, task_id, "进度节点已设置，序时进度按新的节点计算。")
    if len(rows) != 1:
        flash("请填写一个进度节点（日期和完成比例）。", "danger")
        return redirect(back)
    (on, percent, note), = rows
    return _run(lambda: extension_services.propose_milestone(part, user, on, percent, note,
                                                             expected_version=form.version.data),
                back, task_id, "进度节点已提出，等待牵头单位确认。")


# ---------------------------------------------------------------- 延期审批

SHOW_LABELS = {"decided": "已审结", "granted": "已批准", "refused": "未获批准", "pending": "审批中", "all": "全部"}


def _index_page():
    user = current_user._get_current_object()
    show = request.args.get("show") if request.args.get("show") in SHOW_LABELS else "decided"
    fmt = tables.requested_format()
    if fmt:
        rows = db.session.scalars(queries.extension_requests(user, show)).all()
        return tables.download(fmt, f"延期申请（{SHOW_LABELS[show]}）", f"extensions-{show}",
                               tables.extension_columns(), [(r, None) for r in rows], today_local())
    page = counted_page(queries.extension_requests(user, show))
    return render_template("extensions/index.html", to_decide=queries.extensions_to_decide(user), page=page,
                           show=show, show_labels=SHOW_LABELS)


@bp.route("/extensions")
@login_required
def index():
    """延期审批: what the user may decide now, then the requests already decided."""
    # Everyone signed in: the decided list shows only the tasks the user may see.
    require("plan.view")
    return _index_page()
