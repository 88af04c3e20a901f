"""提醒 and 督办: the office's reminder rules, the day's sweeps, rounds on a
schedule (/reminders), and the 督办 list with its 督办通报 (/escalations)."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from auth.permissions import may
from models import Plan, ReminderRule, RoundSchedule, SweepRun
from workflow import background, queries, reminder_services, reminders
from workflow.extensions import db
from workflow.timeutil import today_local
from workflow.vocabulary import EscalationState, ReminderKind, RoundKind

from .forms import FlaskForm, VersionedForm, WholeNumberField
from .helpers import commit_service, first_error, require
from .paging import RowsPage
from .urls import get_row, parse_id

bp = Blueprint("reminders", __name__)


class RuleForm(VersionedForm):
    enabled = BooleanField("启用")
    days_before = StringField("提前几天提醒", validators=[Optional(), Length(max=50, message="提前天数过长。")])
    on_due = BooleanField("当天提醒")
    repeat_days = WholeNumberField("之后每隔几天", validators=[
        InputRequired("请填写重复提醒间隔（0 为不重复）。"), NumberRange(0, 90, "间隔应在 0 到 90 天之间。")],
        invalid_message="间隔须为整数天。")
    escalate_after = WholeNumberField("提醒几次后转督办", validators=[
        InputRequired("请填写转督办的提醒次数（0 为不转督办）。"), NumberRange(0, 20, "次数应在 0 到 20 之间。")],
        invalid_message="次数须为整数。")


class ScheduleForm(FlaskForm):
    plan = SelectField("实施方案", validators=[InputRequired("请选择实施方案。")])
    kind = SelectField("类型", choices=[SelectChoice(RoundKind.MONTHLY.value, "每月"),
                                       SelectChoice(RoundKind.WEEKLY.value, "每周")])
    day = WholeNumberField("发起日", validators=[InputRequired("请填写发起日。")], invalid_message="发起日须为整数。")
    due_days = WholeNumberField("发起后几天内报送", validators=[InputRequired("请填写报送期限。")],
                                invalid_message="报送期限须为整数天。")
    instructions = TextAreaField("报送要求", validators=[Optional(), Length(max=2000, message="报送要求不能超过 2000 字。")])


class ToggleForm(FlaskForm):
    active = BooleanField()


class PlanForm(FlaskForm):
    plan = SelectField("实施方案", validators=[InputRequired("请选择实施方案。")])


def _plan_choices(form) -> None:
    form.plan.choices = [SelectChoice(str(pid), f"#{pid} {title}") for pid, title in
                         db.session.execute(select(Plan.id, Plan.title).order_by(Plan.id.desc())).all()]


def _chosen_plan(form):
    """The plan a posted form names, or None after flashing why (the form's first problem)."""
    _plan_choices(form)
    problem = first_error(form)
    plan = None if problem else get_row(Plan, parse_id(form.plan.data) or 0)
    if plan is None:
        flash(problem or "所选方案不存在，请刷新页面后重试。", "danger")
    return plan


@bp.route("/reminders/")
@login_required
def index():
    require("reminders.view")
    rules = {r.kind: r for r in db.session.scalars(select(ReminderRule))}
    for kind in ReminderKind:
        rules.setdefault(kind.value, reminders.default_row(kind.value))
    forms = {kind: RuleForm(obj=row, prefix=kind) for kind, row in rules.items()}
    schedule_form = ScheduleForm()
    _plan_choices(schedule_form)
    sweeps = db.session.scalars(select(SweepRun).order_by(SweepRun.as_of.desc()).limit(14)).all()
    schedules = db.session.scalars(select(RoundSchedule).order_by(RoundSchedule.id)).all()
    return render_template("reminders/index.html", rules=rules, forms=forms, kinds=list(ReminderKind),
                           sweeps=sweeps, schedules=schedules, schedule_form=schedule_form,
                           worker_alive=background.worker_alive(), today=today_local(),
                           sweep_time=reminders.sweep_time())


@bp.route("/reminders/rules/<kind>", methods=["POST"])
@login_required
def update_rule(kind: str):
    require("reminders.manage")
    if kind not in ReminderKind.values():
        flash("提醒类型无效。", "danger")
        return redirect(url_for("reminders.index"))
    form = RuleForm(prefix=kind)
    problem = first_error(form)
    if problem:
        flash(problem, "danger")
        return redirect(url_for("reminders.index"))
    user = current_user._get_current_object()
    outcome = commit_service(lambda: reminder_services.update_rule(
        user, kind, enabled=form.enabled.data, days_before=form.days_before.data or "", on_due=form.on_due.data,
        repeat_days=form.repeat_days.data, escalate_after=form.escalate_after.data,
        expected_version=form.version.data))
    if outcome.error is not None:
        flash(outcome.error.message, "danger")
    else:
        flash(f"“{ReminderKind.label_of(kind)}”提醒规则已保存，下次巡查起生效。", "success")
    return redirect(url_for("reminders.index"))


@bp.route("/reminders/sweep", methods=["POST"])
@login_required
def sweep_now():
    require("reminders.manage")
    form = FlaskForm()
    if not form.validate():
        flash("页面已过期，请刷新后重试。", "danger")
        return redirect(url_for("reminders.index"))
    user = current_user._get_current_object()
    outcome = commit_service(lambda: reminder_services.sweep_now(user))
    if outcome.error is not None:
        flash(outcome.error.message, "warning")
    else:
        flash("今天的提醒巡查已交给后台处理程序，几分钟内完成；结果见下方“巡查记录”。", "success")
    return redirect(url_for("reminders.index"))


@bp.route("/reminders/schedules", methods=["POST"])
@login_required
def add_schedule():
    require("round.open")
    form = ScheduleForm()
    plan = _chosen_plan(form)
    if plan is None:
        return redirect(url_for("reminders.index"))
    user = current_user._get_current_object()
    outcome = commit_service(lambda: reminder_services.add_schedule(
        user, plan, kind=form.kind.data, day=form.day.data, due_days=form.due_days.data,
        instructions=form.instructions.data))
    if outcome.error is not None:
        flash(outcome.error.message, "danger")
    else:
        flash("定时调度已设置：到发起日由每日巡查自动发起。", "success")
    return redirect(url_for("reminders.index"))


@bp.route("/reminders/schedules/<int:schedule_id>/active", methods=["POST"])
@login_required
def toggle_schedule(schedule_id: int):
    require("round.open")
    schedule = db.get_or_404(RoundSchedule, schedule_id)
    form = ToggleForm()
    if not form.validate():
        flash("页面已过期，请刷新后重试。", "danger")
        return redirect(url_for("reminders.index"))
    user = current_user._get_current_object()
    outcome = commit_service(lambda: reminder_services.set_schedule_active(user, schedule, form.active.data))
    if outcome.error is not None:
        flash(outcome.error.message, "danger")
    else:
        flash("定时调度已" + ("启用。" if form.active.data else "停用。"), "success")
    return redirect(url_for("reminders.index"))


# ---------------------------------------------------------------- 督办

@bp.route("/escalations/")
@login_required
def escalations():
    require("escalation.view")
    page = RowsPage(reminder_services.active_escalations_query(), current_app.config["PER_PAGE"],
                    total=queries.active_escalation_count())
    # A cause already gone (handed in, received, filed) is resolved by the next sweep; the page says so now.
    ended = reminders.ended_reasons(page.items)
    form = PlanForm()
    _plan_choices(form)
    recent = reminder_services.resolved_escalations(limit=20)
    return render_template("reminders/escalations.html", page=page, rows=page.items, ended=ended, form=form,
                           recent=recent,
                           may_bulletin=may(current_user, "escalation.bulletin"), states=EscalationState)


@bp.route("/escalations/bulletin", methods=["POST"])
@login_required
def bulletin():
    require("escalation.bulletin")
    form = PlanForm()
    plan = _chosen_plan(form)
    if plan is None:
        return redirect(url_for("reminders.escalations"))
    user = current_user._get_current_object()
    outcome = commit_service(lambda: reminder_services.issue_bulletin(user, plan))
    if outcome.error is not None:
        flash(outcome.error.message, "warning")
        return redirect(url_for("reminders.escalations"))
    flash("督办通报已开始生成，完成后会在消息中通知您；被通报单位的负责人已收到通知。", "success")
    return redirect(url_for("reports.status", archive_id=outcome.value.archive.id))
