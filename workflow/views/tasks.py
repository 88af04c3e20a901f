"""Tasks: the home page, the lists, the task page and every action on it.

Each POST view loads its objects (404 when missing or not of the task in the
URL), asks ``require`` (403), reads its form, calls one service and commits;
a ServiceError rolls everything back and is shown to the user as a message.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
from typing import Callable

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf
from jinja2.filters import do_truncate
from markupsafe import Markup, escape
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from models import Evidence, Plan, Role, Task, TaskPart
from workflow import (
    bulk_services, head_cache, pace, queries, reminder_services, round_services, services, storage, tables)
from workflow.extensions import db
from workflow.errors import store_unavailable
from workflow.filestore import evidence_store
from workflow.machine import EVENT_BY_KEY, EVENTS, refusal
from workflow.services import Stale
from workflow.timeutil import today_local

from .forms import (
    BulkReceiveForm, BulkRemindForm, BulkTasksForm, EditTaskForm, EvidenceForm, ProgressForm, TransitionForm, UrgeForm,
)
from .helpers import CONFLICT_MESSAGE, commit_service, first_error, require
from .paging import ListPage, RowsPage, WalkPage
from .templating import due_of
from .urls import MAX_ID, get_row, parse_id, rows_in_order, safe_next

# A ticked row that no longer exists (or never did: a forged form).
GONE = "所选任务不存在，请刷新页面后重新选择。"

bp = Blueprint("tasks", __name__)

# The events a user fires from the task page, by the rows of the event table.
PART_EVENTS = ",".join(e.trigger for e in EVENTS if e.subject == "part" and e.action)
TASK_EVENTS = ",".join(e.trigger for e in EVENTS if e.subject == "task" and e.action)


def _near_days() -> int:
    return current_app.config["NEAR_DUE_DAYS"]


def _receipt_due_days() -> int:
    return current_app.config["RECEIPT_DUE_DAYS"]


def _per_page() -> int:
    return current_app.config["PER_PAGE"]


def paginate(stmt, *count_key, count_stmt=None, walk=None):
    """A page of ``stmt`` (views/paging.py: no deeper than COUNT_LIMIT rows); with ``walk`` (the
    same rows' ids, in the same order) the page is walked as ids and its tasks loaded. With
    ``count_key`` (what the statement depends on, see ``queries.cached_count``) its total — of
    ``count_stmt`` if given, the same rows — is counted once per change of the audit trail."""
    per_page = _per_page()
    page = (WalkPage(walk, queries.tasks_by_ids, per_page) if walk is not None else RowsPage(stmt, per_page))
    counted = stmt if count_stmt is None else count_stmt
    page.total = (queries.cached_count(counted, *count_key) if count_key else queries.count_of(counted))
    return page


# ---------------------------------------------------------------- home, lists

@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    require("plan.view")
    user = current_user._get_current_object()
    if user.is_unit_user:
        today = today_local()
        summary = queries.my_summary(user, today, _near_days())
        todo = db.session.scalars(queries.todo_parts(user).limit(10)).all()
        verify = (db.session.scalars(queries.verify_parts(user).limit(10)).all()
                  if user.role == Role.UNIT_LEADER else [])
        return render_template("tasks/home.html", summary=summary, todo=todo, verify=verify)
    require("overview.view")
    return _overview(home=True)


@bp.route("/overview")
@login_required
def overview():
    require("overview.view")
    return _overview(home=False)


#: Plans per page of the all-plans overview.
PLANS_PER_PAGE = 50
#: 督办 listed on the overview (the rest on the 督办 page).
ESCALATIONS_SHOWN = 8


def _overview(home: bool):
    user = current_user._get_current_object()
    plans = db.session.scalars(select(Plan).order_by(Plan.id.desc())).all()
    plan_id = parse_id(request.args.get("plan"))
    today = today_local()
    # Several plans and none chosen: a summary per plan; the chapter and unit tables are a plan's.
    across = len(plans) > 1 and plan_id is None
    plan_rows, plan_page = [], None
    if across:
        plan_page = ListPage(plans, PLANS_PER_PAGE)     # already loaded for the plan chooser
        plan_rows = queries.plan_summaries(plan_page.items, today, _near_days())
        data, warnings = queries.cross_plan_summary(today, _near_days())
    else:
        # One plan's tables (the chosen one, or the only one): read through the plan's index.
        scope = plan_id if plan_id is not None or not plans else plans[0].id
        data = queries.overview(scope, today, _near_days())
        warnings = queries.warning_breakdown(scope, today)
    to_close = queries.cached_count(queries.to_close_tasks(to_count=True), "to_close") if user.is_office else 0
    verify_waiting = queries.verify_count(user)
    unreceived = queries.unreceived_counts(today, _receipt_due_days(), plan_id)
    # The first few and how many: a province has thousands at a time.
    escalations = reminder_services.active_escalations(plan_id, limit=ESCALATIONS_SHOWN)
    escalation_total = queries.active_escalation_count(plan_id) if escalations else 0
    return render_template("tasks/overview.html", data=data, plans=plans, plan_id=plan_id, home=home,
                           escalations=escalations, escalation_total=escalation_total,
                           to_close=to_close, verify_waiting=verify_waiting, unreceived=unreceived,
                           warnings=warnings, warning_counts=warnings["total"],
                           across=across, plan_rows=plan_rows, plan_page=plan_page)


@bp.route("/tasks/")
@login_required
def task_list():
    require("plan.view")
    user = current_user._get_current_object()
    filters = queries.TaskFilters.from_args(request.args)
    for message in filters.errors:
        flash(message, "warning")
    today = today_local()
    stmt = queries.task_list(filters, user, today, _near_days())
    fmt = tables.requested_format()
    kept_ids = None if fmt else queries.kept_warning_ids(filters, user, today)
    if kept_ids is not None:
        page = ListPage(kept_ids, _per_page(), load=queries.tasks_by_ids)
        warnings = pace.assess_tasks(page.items, today)
    elif fmt or filters.warning:
        # The colour is Python's (workflow/pace.py): the whole filtered set is assessed, then paged.
        tasks, warnings = queries.with_warning(db.session.scalars(stmt).all(), filters.warning, today)
        if fmt:
            return tables.download(fmt, "任务列表", "tasks", tables.task_columns(due_of),
                                   [(t, warnings[t.id]) for t in tasks], today)
        page = ListPage(tasks, _per_page())
    else:
        page = paginate(stmt, "tasks", queries.scope_key(user), tuple(sorted(filters.as_args().items())), today,
                        count_stmt=queries.task_list(filters, user, today, _near_days(), to_count=True),
                        walk=queries.task_list(filters, user, today, _near_days(), ids=True))
        warnings = pace.assess_tasks(page.items, today)
    return render_template("tasks/list.html", page=page, filters=filters,
                           choices=queries.filter_choices(filters.plan, filters.chapter),
                           warnings=warnings, bulk_form=BulkTasksForm() if user.is_office else None)


@bp.route("/tasks/bulk", methods=["POST"])
@login_required
def bulk():
    """批量催办 / 提醒签收 on the ticked tasks of the task list (the office)."""
    require("task.urge")
    user = current_user._get_current_object()
    form = BulkTasksForm()
    back = safe_next(form.next.data) or url_for("tasks.task_list")
    if _form_errors(form):
        return redirect(back)
    if form.action.data not in ("urge", "remind"):
        flash("请选择要执行的批量操作。", "danger")
        return redirect(back)
    tasks = rows_in_order(Task, form.task_ids.data)
    if tasks is None:
        flash(GONE, "danger")
        return redirect(back)
    if form.action.data == "urge":
        outcome = commit_service(lambda: bulk_services.urge_tasks(tasks, user, form.message.data))
        success = "已催办 {} 项任务，相关单位将收到通知。"
    else:
        outcome = commit_service(lambda: bulk_services.remind_tasks(tasks, user, form.message.data))
        success = "已提醒 {} 个单位签收。"
    if outcome.error is not None:
        flash(outcome.error.message, "warning" if isinstance(outcome.error, Stale) else "danger")
    else:
        flash(success.format(outcome.value), "success")
    return redirect(back)


@bp.route("/tasks/todo")
@login_required
def todo():
    user = current_user._get_current_object()
    today = today_local()
    fmt = tables.requested_format()
    if user.is_unit_user:
        stmt = queries.todo_parts(user)
        if fmt:
            parts = db.session.scalars(stmt).all()
            warnings = pace.assess_parts(parts, today)
            columns = tables.todo_columns(due_of, current_app.config["START_WITHOUT_RECEIPT"])
            return tables.download(fmt, "我的待办", "todo", columns, [(p, warnings[p.id]) for p in parts], today)
        page = paginate(stmt, "todo", user.unit_id)
        verify = (db.session.scalars(queries.verify_parts(user).limit(10)).all()
                  if user.role == Role.UNIT_LEADER else [])
        verify_total = queries.verify_count(user) if user.role == Role.UNIT_LEADER else 0
        to_receive = queries.cached_count(queries.unreceived_parts(unit_id=user.unit_id), "unreceived", user.unit_id)
        round_entries, round_total = round_services.open_entries_of_unit(user.unit_id)
        return render_template("tasks/todo.html", page=page, verify=verify, verify_total=verify_total,
                               to_receive=to_receive, warnings=pace.assess_parts(page.items, today),
                               round_entries=round_entries, round_total=round_total)
    if user.is_office:
        stmt = queries.to_close_tasks()
        if fmt:
            tasks = db.session.scalars(stmt).all()
            warnings = pace.assess_tasks(tasks, today)
            return tables.download(fmt, "待办结任务", "to-close", tables.task_columns(due_of),
                                   [(t, warnings[t.id]) for t in tasks], today)
        page = paginate(stmt, "to_close", count_stmt=queries.to_close_tasks(to_count=True),
                        walk=queries.to_close_tasks(ids=True))
        unreceived = queries.unreceived_counts(today, _receipt_due_days())
        return render_template("tasks/todo_office.html", page=page, verify_total=queries.verify_count(user),
                               unreceived=unreceived, warnings=pace.assess_tasks(page.items, today),
                               warning_counts=queries.warning_counts(None, today))
    return render_template("tasks/todo_office.html", page=None, verify_total=0)


@bp.route("/tasks/todo/receive", methods=["POST"])
@login_required
def receive_bulk():
    """全部签收: one transaction for the ticked parts (or all of my unit's not
    yet received); any part that cannot be received refuses the whole batch."""
    user = current_user._get_current_object()
    if not user.is_unit_user:
        abort(403)
    form = BulkReceiveForm()
    if _form_errors(form):
        return redirect(url_for("tasks.todo"))
    if form.scope.data == "all":
        parts = db.session.scalars(queries.unreceived_parts(unit_id=user.unit_id)).all()
        if not parts:
            flash("本单位没有待签收的任务。", "info")
            return redirect(url_for("tasks.todo"))
    else:
        parts = rows_in_order(TaskPart, form.part.data)
        if parts is None:
            flash(GONE, "danger")
            return redirect(url_for("tasks.todo"))
    outcome = commit_service(lambda: services.receive_parts(parts, user))
    if outcome.error is not None:
        flash(outcome.error.message, "warning" if isinstance(outcome.error, Stale) else "danger")
    else:
        flash(f"已签收 {outcome.value} 项任务。", "success")
    return redirect(url_for("tasks.todo"))


@bp.route("/tasks/unreceived")
@login_required
def unreceived():
    """The office's view of who has not acknowledged their parts."""
    require("overview.view")
    today, due_days = today_local(), _receipt_due_days()
    fmt = tables.requested_format()
    if fmt:
        parts = db.session.scalars(queries.unreceived_parts()).all()
        warnings = pace.assess_parts(parts, today)
        columns = tables.unreceived_columns(lambda p: queries.days_since_import(p.task.item.plan, today), due_days)
        return tables.download(fmt, "待签收", "unreceived", columns, [(p, warnings[p.id]) for p in parts], today)
    page = paginate(queries.unreceived_parts())
    total, overdue = queries.unreceived_counts(today, due_days)
    warnings = pace.assess_parts(page.items, today)
    rows = [(p, queries.days_since_import(p.task.item.plan, today), warnings[p.id]) for p in page.items]
    user = current_user._get_current_object()
    return render_template("tasks/unreceived.html", page=page, rows=rows, due_days=due_days, total=total,
                           overdue=overdue, remind_form=BulkRemindForm() if user.is_office else None)


@bp.route("/tasks/unreceived/remind", methods=["POST"])
@login_required
def remind():
    """提醒签收 for the ticked parts of the 待签收 page (the office)."""
    require("part.remind")
    user = current_user._get_current_object()
    form = BulkRemindForm()
    back = safe_next(form.next.data) or url_for("tasks.unreceived")
    if _form_errors(form):
        return redirect(back)
    parts = rows_in_order(TaskPart, form.part.data)
    if parts is None:
        flash(GONE, "danger")
        return redirect(back)
    outcome = commit_service(lambda: bulk_services.remind_receipt(parts, user, form.message.data))
    if outcome.error is not None:
        flash(outcome.error.message, "warning" if isinstance(outcome.error, Stale) else "danger")
    else:
        flash(f"已提醒 {outcome.value} 个单位签收。", "success")
    return redirect(back)


@bp.route("/tasks/verify")
@login_required
def verify():
    require("plan.view")
    user = current_user._get_current_object()
    fmt = tables.requested_format()
    if fmt:
        parts = db.session.scalars(queries.verify_parts(user)).all()
        return tables.download(fmt, "待核验", "verify", tables.verify_columns(due_of), [(p, None) for p in parts],
                               today_local())
    page = paginate(queries.verify_parts(user))
    return render_template("tasks/verify.html", page=page)


# ---------------------------------------------------------------- the task page

#: Stands for the request's CSRF token in a kept task page (never a token: it holds a space).
_TOKEN_MARK = "\x00csrf token\x00"


@bp.route("/tasks/<int:task_id>")
@login_required
def detail(task_id: int):
    """The task page. Its body is kept per user and day until the task's trail or the general
    head moves (``head_cache.cached_page``, ``task_stamp``): everything it shows — the task and its
    parts, their records, the timeline, what the user may do — changes only by an audited action on
    the task, and the user's role and unit, the units, the plan and the rounds by a general one. A
    page shown again after a refused POST (a stale form, extensions._stale_page) is rendered
    afresh: the trail may have moved since this request read the stamp."""
    user = current_user._get_current_object()
    today = today_local()
    token = generate_csrf()

    def render() -> tuple[str, str]:
        task = queries.task_for_page(task_id)
        if task is None:
            abort(404)
        require("task.view", task)
        pace_of = pace.assess_parts(task.parts, today, tasks=[task], from_collections=True)
        body = render_template("tasks/_detail_body.html", task=task, timeline=queries.timeline(task),
                               pace_of=pace_of, task_pace=pace.of_task(task, pace_of))
        title = f"{task.number_label} {do_truncate(current_app.jinja_env, task.text, 20, True, '…')}"
        return str(escape(title)), body.replace(token, _TOKEN_MARK)

    if request.method == "GET":
        title, body = head_cache.cached_page(("task_page", task_id, user.id, today),
                                             head_cache.task_stamp(task_id), render)
    else:
        title, body = render()
    return render_template("tasks/detail.html", title=Markup(title), body=Markup(body.replace(_TOKEN_MARK, token)))


# ---------------------------------------------------------------- actions

def _load_task(task_id: int) -> Task:
    task = get_row(Task, task_id)
    if task is None:
        abort(404)
    return task


@functools.cache
def _part_with_task():
    """Built once: every action on a part runs it (building it cost as much as running it)."""
    return (select(TaskPart).where(TaskPart.id == bindparam("part_id"), TaskPart.task_id == bindparam("task_id"))
            .options(joinedload(TaskPart.task).joinedload(Task.item)))


def _load_part(task_id: int, part_id: int) -> tuple[Task, TaskPart]:
    """The part of the URL with its task and item, in one query: every action on a part reads
    the task (permissions, the event table) and the audit entry names the item's plan."""
    if not 0 < part_id <= MAX_ID:
        abort(404)
    part = db.session.scalar(_part_with_task(), {"part_id": part_id, "task_id": task_id})
    if part is None:
        abort(404)
    return part.task, part


def _to_task(task_id: int, anchor: str | None = None):
    return redirect(url_for("tasks.detail", task_id=task_id, _anchor=anchor))


def _form_errors(form) -> bool:
    """Flash the first problem of an invalid form; True if there was one."""
    problem = first_error(form)
    if problem:
        flash(problem, "danger")
    return problem is not None


def _run(action: Callable[[], object], task_id: int, success: str, anchor: str | None = None,
         cleanup: Callable[[], None] | None = None, after: Callable[[], None] | None = None):
    """Call a service and commit (``commit_service``); on any refusal nothing
    stays and the message is shown on the task page. ``cleanup`` runs after a
    rollback, ``after`` after the commit (each in a transaction of its own)."""
    outcome = commit_service(action, cleanup)
    if outcome.error is not None:
        conflict = isinstance(outcome.error, Stale) or outcome.error.message == CONFLICT_MESSAGE
        flash(outcome.error.message, "warning" if conflict else "danger")
    else:
        flash(success, "success")
        if after is not None:
            after()
    return _to_task(task_id, anchor)


def _fire_event(obj, subject: str, trigger: str, task_id: int, anchor: str | None = None):
    """POST of one row of the event table: its permission, its inputs from the
    form, its service, its success message."""
    event = EVENT_BY_KEY[(subject, trigger)]
    require(event.action, obj)
    form = TransitionForm()
    if _form_errors(form):
        return _to_task(task_id, anchor)
    inputs = {name: getattr(form, name).data for name in event.inputs}
    user = current_user._get_current_object()
    return _run(lambda: services.apply(obj, trigger, user, expected_version=form.version.data, **inputs),
                task_id, event.success, anchor)


@bp.route(f"/tasks/<int:task_id>/parts/<int:part_id>/<any({PART_EVENTS}):event>", methods=["POST"])
@login_required
def part_event(task_id: int, part_id: int, event: str):
    task, part = _load_part(task_id, part_id)
    return _fire_event(part, "part", event, task_id, f"part-{part.id}")


@bp.route(f"/tasks/<int:task_id>/<any({TASK_EVENTS}):event>", methods=["POST"])
@login_required
def task_event(task_id: int, event: str):
    return _fire_event(_load_task(task_id), "task", event, task_id)


@bp.route("/tasks/<int:task_id>/parts/<int:part_id>/progress", methods=["POST"])
@login_required
def progress(task_id: int, part_id: int):
    task, part = _load_part(task_id, part_id)
    require("part.progress", part)
    anchor = f"part-{part.id}"
    form = ProgressForm()
    if _form_errors(form):
        return _to_task(task_id, anchor)
    user = current_user._get_current_object()
    return _run(lambda: services.record_progress(part, user, form.percent.data, form.note.data,
                                                 expected_version=form.version.data),
                task_id, "进度已填报。", anchor)


@bp.route("/tasks/<int:task_id>/parts/<int:part_id>/evidence", methods=["POST"])
@login_required
def add_evidence(task_id: int, part_id: int):
    task, part = _load_part(task_id, part_id)
    require("part.evidence", part)
    anchor = f"part-{part.id}"
    form = EvidenceForm()
    if _form_errors(form):
        return _to_task(task_id, anchor)
    user = current_user._get_current_object()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        if not (form.text.data or "").strip():
            flash("请选择要上传的文件，或填写文字材料。", "danger")
            return _to_task(task_id, anchor)
        return _run(lambda: services.add_text_evidence(part, user, form.text.data,
                                                       expected_version=form.version.data),
                    task_id, "材料已添加（提交时一并报送）。", anchor)

    data = upload.read()
    sha = hashlib.sha256(data).hexdigest()

    def act():
        services.add_file_evidence(part, user, data, upload.filename, form.description.data,
                                   expected_version=form.version.data)

    def cleanup():
        # Decided after the rollback, under the content lock: a concurrent
        # upload of the same bytes that committed keeps its file.
        storage.discard_unreferenced(sha)

    return _run(act, task_id, "文件已上传（提交时一并报送）。", anchor, cleanup=cleanup)


@bp.route("/tasks/<int:task_id>/evidence/<int:evidence_id>/delete", methods=["POST"])
@login_required
def delete_evidence(task_id: int, evidence_id: int):
    evidence = get_row(Evidence, evidence_id)
    if evidence is None or evidence.part.task_id != task_id:
        abort(404)
    require("part.evidence", evidence.part)
    user = current_user._get_current_object()
    anchor = f"part-{evidence.part_id}"
    sha = evidence.content_sha256
    return _run(lambda: services.remove_pending_evidence(evidence, user), task_id, "材料已撤回。", anchor,
                after=(lambda: storage.discard_unreferenced(sha)) if sha else None)


@bp.route("/evidence/<int:evidence_id>/download")
@login_required
def download(evidence_id: int):
    evidence = get_row(Evidence, evidence_id)
    if evidence is None:
        abort(404)
    require("evidence.download", evidence)
    if evidence.kind == "text":
        # A text evidence downloads as a UTF-8 text file (to archive or forward it).
        data = io.BytesIO((evidence.text or "").encode("utf-8"))
        response = send_file(data, as_attachment=True, download_name=f"文字材料-{evidence.id}.txt",
                             mimetype="text/plain")   # werkzeug adds "; charset=utf-8"
    else:
        response = _stored_file(evidence)
    # Evidence is confidential: no shared cache may keep a copy.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _stored_file(evidence: Evidence):
    """The evidence file as an attachment: from its folder (ranges and conditional requests
    answered), or read from the object store (no larger than an upload may be)."""
    if not evidence.content_sha256:
        abort(404)
    store, key = evidence_store(), storage.evidence_key(evidence.content_sha256)
    options = dict(as_attachment=True, download_name=evidence.filename or "文件",
                   mimetype=evidence.mime or "application/octet-stream")
    path = store.local_path(key)
    if path is not None:
        if not os.path.exists(path):
            abort(404)
        return send_file(path, conditional=True, **options)
    try:
        with contextlib.closing(store.open(key)) as fh:
            data = fh.read()
    except FileNotFoundError:
        abort(404)
    except OSError:
        return store_unavailable()
    return send_file(io.BytesIO(data), conditional=True, etag=evidence.content_sha256, **options)


@bp.route("/tasks/<int:task_id>/urge", methods=["POST"])
@login_required
def urge(task_id: int):
    task = _load_task(task_id)
    require("task.urge", task)
    form = UrgeForm()
    if _form_errors(form):
        return _to_task(task_id)
    user = current_user._get_current_object()
    return _run(lambda: services.urge(task, user, form.message.data), task_id, "已催办，相关单位将收到通知。")


@bp.route("/tasks/<int:task_id>/edit", methods=["GET", "POST"])
@login_required
def edit(task_id: int):
    task = _load_task(task_id)
    require("task.edit", task)
    closed = refusal("task.edit", task)
    if closed:
        flash(closed, "warning")
        return _to_task(task_id)
    form = EditTaskForm(obj=task if request.method == "GET" else None)
    if request.method == "GET":
        form.version.data = task.version
        return render_template("tasks/edit.html", task=task, form=form)
    if not form.validate():
        return render_template("tasks/edit.html", task=task, form=form), 400
    user = current_user._get_current_object()
    changes = {"text": form.text.data.strip(), "deadline": form.deadline.data,
               "deadline_text": (form.deadline_text.data or "").strip() or None,
               "long_term": bool(form.long_term.data)}
    outcome = commit_service(lambda: services.edit_task(task, user, expected_version=form.version.data, **changes))
    if isinstance(outcome.error, Stale):
        flash(outcome.error.message, "warning")
        return _to_task(task_id)
    if outcome.error is not None:
        flash(outcome.error.message, "danger")
        return render_template("tasks/edit.html", task=_load_task(task_id), form=form), 409
    flash("任务已修改，修改前后的内容已记入审计日志。", "success")
    return _to_task(task_id)
