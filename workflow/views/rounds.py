"""Progress rounds (调度): the office's list, the "new round" form, the round
page with its close button; the units' filing from the task page and, for
several parts at once, from the to-do page (docs/rounds.md).

Each POST loads its objects (404 when missing), asks ``require`` per object
(403), reads its form and calls one service of workflow/round_services.py
through ``commit_service``: a refusal rolls everything back and is shown.
"""
from __future__ import annotations

import hashlib

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from wtforms import DateField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from models import Chapter, Item, Plan, ProgressRound, RoundPart, Task, TaskPart, Unit
from workflow import round_services, storage, tables
from workflow.extensions import db
from workflow.reports.data import chinese_number
from workflow.services import Stale
from workflow.text import clean_text
from workflow.timeutil import today_local
from workflow.vocabulary import RoundKind

from .forms import FlaskForm, IdListField, VersionedForm, WholeNumberField
from .helpers import CONFLICT_MESSAGE, commit_service, first_error, require
from .paging import counted_page
from .urls import get_row, parse_id, rows_in_order, safe_next

bp = Blueprint("rounds", __name__, url_prefix="/rounds")


# ---------------------------------------------------------------- forms

class NewRoundForm(FlaskForm):
    plan = SelectField("实施方案", validators=[InputRequired("请选择实施方案。")])
    kind = SelectField("调度类型", choices=[SelectChoice(k.value, k.label) for k in RoundKind],
                       validators=[InputRequired("请选择调度类型。")])
    title = StringField("调度名称", validators=[InputRequired("请填写调度名称。"),
                                              Length(max=round_services.TITLE_MAX, message="调度名称不能超过 200 字。")],
                        render_kw={"placeholder": "如 2022年6月调度"})
    due_on = DateField("报送截止日期", format="%Y-%m-%d", validators=[InputRequired("请填写报送截止日期。")])
    instructions = TextAreaField("报送要求（可选）", validators=[Optional(), Length(
        max=round_services.INSTRUCTIONS_MAX, message="报送要求不能超过 2000 字。")],
        render_kw={"rows": 3, "placeholder": "如 每月5日前报送上月进展"})
    chapter = SelectField("范围：某一章（可选）", validators=[Optional()])
    units = SelectMultipleField("范围：所选单位（可选，可多选）", validators=[Optional()], coerce=str)
    task_ids = IdListField("所选任务", default=list, invalid_message="所选任务无效，请回到任务列表重新选择。")

    def plan_row(self):
        plan_id = parse_id(self.plan.data)
        return db.session.get(Plan, plan_id) if plan_id else None

    def validate_due_on(self, field) -> None:
        if field.data is not None and field.data < today_local():
            raise ValidationError(f"报送截止日期不能早于今天（{today_local().isoformat()}）。")

    def validate_chapter(self, field) -> None:
        if not field.data:
            return
        chapter = get_row(Chapter, parse_id(field.data) or 0)
        plan = self.plan_row()
        if chapter is None or plan is None or chapter.plan_id != plan.id:
            raise ValidationError("所选章节不属于该方案。")

    def validate_units(self, field) -> None:
        ids = [parse_id(v) for v in field.data or ()]
        if None in ids:
            raise ValidationError("所选单位无效，请重新选择。")
        plan = self.plan_row()
        if not ids or plan is None:
            return
        in_plan = set(db.session.scalars(select(TaskPart.unit_id).join(Task).join(Item).where(
            Item.plan_id == plan.id, TaskPart.unit_id.in_(ids)).distinct()))
        if set(ids) - in_plan:
            raise ValidationError("所选单位在该方案中没有承办任务。")

    def validate_task_ids(self, field) -> None:
        plan = self.plan_row()
        if not field.data or plan is None:
            return
        found = db.session.scalar(select(func.count(Task.id)).join(Item).where(
            Task.id.in_(field.data), Item.plan_id == plan.id))
        if found != len(set(field.data)):
            raise ValidationError("所选任务不存在或不属于该方案，请回到任务列表重新选择。")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        chosen = [bool(self.chapter.data), bool(self.units.data), bool(self.task_ids.data)]
        if ok and sum(chosen) > 1:
            self.chapter.errors = list(self.chapter.errors) + ["请只选择一种范围：某一章、所选单位或所选任务（都不选即全方案）。"]
            return False
        return ok


class CloseRoundForm(VersionedForm):
    pass


class FilingForm(FlaskForm):
    percent = WholeNumberField("完成比例（%）", validators=[InputRequired("请填写完成比例。")],
                               invalid_message="完成比例须为 0 到 100 之间的整数。")
    note = TextAreaField("进展说明", validators=[Length(max=round_services.NOTE_MAX, message="进展说明不能超过 5000 字。")])
    next = StringField(validators=[Optional()])


class BulkFilingForm(FlaskForm):
    entry = IdListField("调度任务", default=list, invalid_message="所选任务无效，请刷新页面后重试。")


def _fill_choices(form: NewRoundForm) -> None:
    plans = db.session.execute(select(Plan.id, Plan.title).order_by(Plan.id.desc())).all()
    form.plan.choices = [SelectChoice(str(pid), f"#{pid} {title}") for pid, title in plans]
    chapters = db.session.scalars(select(Chapter).order_by(Chapter.plan_id.desc(), Chapter.number)).all()
    many = len(plans) > 1
    form.chapter.choices = [SelectChoice("", "（不限：全方案）")] + [
        SelectChoice(str(c.id), (f"#{c.plan_id} " if many else "") + c.heading(chinese_number)) for c in chapters]
    units = db.session.execute(select(Unit.id, Unit.name).where(
        Unit.id.in_(select(TaskPart.unit_id).distinct())).order_by(Unit.name)).all()
    form.units.choices = [SelectChoice(str(uid), name) for uid, name in units]


# ---------------------------------------------------------------- the office

@bp.route("/")
@login_required
def index():
    require("round.view")
    page = counted_page(select(ProgressRound).order_by(ProgressRound.id.desc()))
    counts = {r.id: round_services.filing_counts(r) for r in page.items}
    return render_template("rounds/index.html", page=page, counts=counts)


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    require("round.open")
    form = NewRoundForm()
    _fill_choices(form)
    if not form.plan.choices:
        flash("尚未导入任何实施方案，无法发起调度。", "warning")
        return render_template("rounds/new.html", form=form, tasks=[]), 200
    # The task list's bulk form posts only its selection (task_ids): that is a
    # request for the form, prefilled, not an attempt to open the round.
    opening = request.method == "POST" and request.form.get("confirm") == "1"
    if not opening:
        # (CSRF is checked for every POST by CSRFProtect before this view runs.)
        form.plan.data = form.plan.choices[0].value
        form.kind.data = RoundKind.MONTHLY.value
        form.chapter.data = ""
        tasks = []
        if request.method == "POST":
            if form.task_ids.process_errors:
                flash(form.task_ids.process_errors[0], "danger")
            else:
                tasks = _tasks(form.task_ids.data)
            if tasks:
                form.plan.data = str(tasks[0].item.plan_id)
        return render_template("rounds/new.html", form=form, tasks=tasks)
    if not form.validate():
        return render_template("rounds/new.html", form=form, tasks=_tasks(form.task_ids.data or [])), 400
    plan = form.plan_row()
    user = current_user._get_current_object()
    outcome = commit_service(lambda: round_services.open_round(
        plan, user, kind=form.kind.data, title=form.title.data, due_on=form.due_on.data,
        instructions=form.instructions.data, chapter_id=parse_id(form.chapter.data) if form.chapter.data else None,
        unit_ids=[parse_id(u) for u in form.units.data or ()], task_ids=form.task_ids.data or ()))
    if outcome.error is not None:
        flash(outcome.error.message, "danger")
        return render_template("rounds/new.html", form=form, tasks=_tasks(form.task_ids.data or [])), 409
    round_ = outcome.value
    flash(f"已发起“{round_.title}”，涉及 {len(round_.entries)} 项承办任务，相关单位已收到通知。", "success")
    return redirect(url_for("rounds.detail", round_id=round_.id))


def _tasks(ids) -> list:
    if not ids:
        return []
    tasks = db.session.scalars(select(Task).where(Task.id.in_(list(ids)))).all()
    return sorted(tasks, key=lambda t: t.document_key)


def _load_round(round_id: int) -> ProgressRound:
    round_ = get_row(ProgressRound, round_id)
    if round_ is None:
        abort(404)
    return round_


@bp.route("/<int:round_id>")
@login_required
def detail(round_id: int):
    round_ = _load_round(round_id)
    require("round.view", round_)
    units = round_services.entries_by_unit(round_)
    fmt = tables.requested_format()
    if fmt:
        return tables.download(fmt, round_.title, f"round-{round_.id}", tables.round_columns(),
                               [(e, None) for u in units for e in u["entries"]], today_local())
    form = CloseRoundForm()
    return render_template("rounds/detail.html", round=round_, units=units,
                           counts=round_services.filing_counts(round_), form=form)


@bp.route("/<int:round_id>/close", methods=["POST"])
@login_required
def close(round_id: int):
    round_ = _load_round(round_id)
    require("round.close", round_)
    form = CloseRoundForm()
    if not form.validate():
        flash(next(iter(form.errors.values()))[0], "danger")
        return redirect(url_for("rounds.detail", round_id=round_id))
    user = current_user._get_current_object()
    outcome = commit_service(lambda: round_services.close_round(round_, user, expected_version=form.version.data))
    if outcome.error is not None:
        conflict = isinstance(outcome.error, Stale) or outcome.error.message == CONFLICT_MESSAGE
        flash(outcome.error.message, "warning" if conflict else "danger")
        return redirect(url_for("rounds.detail", round_id=round_id))
    # The 调度通报 was queued for the worker by the commit (reports/archive.request_report).
    flash("本轮调度已结束，调度通报正在生成，完成后会在消息中通知您。", "success")
    return redirect(url_for("rounds.detail", round_id=round_id))


# ---------------------------------------------------------------- the units

@bp.route("/entries/<int:entry_id>/file", methods=["POST"])
@login_required
def file_entry(entry_id: int):
    """One part's filing, from its task page, with optional files."""
    entry = get_row(RoundPart, entry_id)
    if entry is None:
        abort(404)
    part = entry.part
    require("part.file", part)
    target = url_for("tasks.detail", task_id=part.task_id, _anchor=f"part-{part.id}")
    form = FilingForm()
    problem = first_error(form)
    if problem:
        flash(problem, "danger")
        return redirect(target)
    uploads = [round_services.FileUpload(f.read(), f.filename) for f in request.files.getlist("file") if f.filename]
    shas = [hashlib.sha256(u.data).hexdigest() for u in uploads]
    user = current_user._get_current_object()

    def cleanup():
        # After the rollback, under each content's lock: a file another row
        # committed meanwhile stays.
        for sha in shas:
            storage.discard_unreferenced(sha)

    outcome = commit_service(lambda: round_services.file_round(entry, user, form.percent.data, form.note.data,
                                                                uploads), cleanup)
    if outcome.error is not None:
        flash(outcome.error.message, "warning" if isinstance(outcome.error, Stale) else "danger")
    else:
        late = "（已过报送截止日期，记为逾期报送）" if outcome.value.late else ""
        flash(f"本轮调度进展已报送{late}。", "success")
    return redirect(safe_next(form.next.data) or target)


@bp.route("/file", methods=["POST"])
@login_required
def file_bulk():
    """Several parts at once, from the to-do page: every row with a 进展说明 is
    filed, all or none."""
    user = current_user._get_current_object()
    if not user.is_unit_user:
        abort(403)
    back = url_for("tasks.todo", _anchor="round-filing")
    form = BulkFilingForm()
    problem = first_error(form)
    if problem:
        flash(problem, "danger")
        return redirect(back)
    entries = rows_in_order(RoundPart, form.entry.data)
    if entries is None:
        flash("所选任务不存在，请刷新页面后重试。", "danger")
        return redirect(back)
    filings = []
    for entry in entries:
        entry_id = entry.id
        # Per object, before reading anything else: another unit's entry is a 403.
        require("part.file", entry.part)
        note = clean_text(request.form.get(f"note-{entry_id}") or "").strip()
        if not note:
            continue
        raw = (request.form.get(f"percent-{entry_id}") or "").strip()
        percent = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else None
        if percent is None:
            flash(f"{entry.part.task.number_label}：完成比例须为 0 到 100 之间的整数。本次未报送任何任务。", "danger")
            return redirect(back)
        if len(note) > round_services.NOTE_MAX:
            flash(f"{entry.part.task.number_label}：进展说明不能超过 5000 字。本次未报送任何任务。", "danger")
            return redirect(back)
        filings.append((entry, percent, note))
    outcome = commit_service(lambda: round_services.file_rounds(user, filings))
    if outcome.error is not None:
        flash(outcome.error.message, "warning" if isinstance(outcome.error, Stale) else "danger")
    else:
        flash(f"已报送 {outcome.value} 项任务的调度进展。", "success")
    return redirect(back)
