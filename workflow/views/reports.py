"""Progress reports: the archive list, the new-report form, a status page that
refreshes itself while the worker renders, and downloads.

Rendering never happens in a request: the form writes a pending archive row
and hands it to the worker thread (workflow/reports/jobs.py).
"""
from __future__ import annotations

import io

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, \
    send_file, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from models import Plan, ProgressRound, ReportArchive, Unit
from workflow import background
from workflow.extensions import db
from workflow.reports import archive, render
from workflow.timeutil import today_local
from workflow.vocabulary import ReportKind, ReportStatus

from .forms import FlaskForm
from .helpers import require
from .paging import counted_page

bp = Blueprint("reports", __name__, url_prefix="/reports")

REFRESH_SECONDS = 3


@bp.record_once
def _check_fonts_tooling(state) -> None:
    # Without HarfBuzz subsetting every report takes several times longer;
    # say so loudly when the app starts rather than when someone waits.
    available = render.harfbuzz_subset_available()
    if not available:
        state.app.logger.warning("!!! %s", render.HARFBUZZ_MISSING_MESSAGE)
    state.app.config["REPORT_HARFBUZZ_SUBSET"] = available


# A 调度通报 comes from closing its round (workflow/round_services.py), a 督办通报 from the
# escalations page (workflow/reminders.py): never from this form.
FORM_KINDS = [k for k in ReportKind if k not in (ReportKind.ROUND, ReportKind.BULLETIN)]


class ReportForm(FlaskForm):
    kind = SelectField("报告类型", choices=[SelectChoice(k.value, k.label) for k in FORM_KINDS],
                       validators=[InputRequired("请选择报告类型。")])
    plan = SelectField("实施方案", validators=[InputRequired("请选择实施方案。")])
    unit = SelectField("单位（单位报告）", validators=[Optional()])
    item = StringField("事项编号（事项详情，如 19-1）", validators=[Optional(), Length(max=20, message="事项编号过长。")])
    # Parsed by archive.parse_as_of, whose message says which format to use.
    as_of = StringField("截至日期", validators=[InputRequired("请填写截至日期。"), Length(max=20, message="截至日期无效。")],
                        render_kw={"type": "date"})


def _fill_choices(form: ReportForm) -> None:
    plans = db.session.execute(select(Plan.id, Plan.title).order_by(Plan.id.desc())).all()
    form.plan.choices = [SelectChoice(str(pid), f"#{pid} {title}") for pid, title in plans]
    units = db.session.execute(select(Unit.id, Unit.name).order_by(Unit.name)).all()
    form.unit.choices = [SelectChoice("", "（请选择）")] + [SelectChoice(str(uid), name) for uid, name in units]


@bp.route("/")
@login_required
def index():
    require("report.view")

    page = counted_page(select(ReportArchive).order_by(ReportArchive.id.desc()))
    return render_template("reports/index.html", page=page, describe=_describe_row)


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    require("report.generate")
    form = ReportForm()
    _fill_choices(form)
    if request.method == "GET":
        form.as_of.data = today_local().isoformat()
        if form.plan.choices:
            form.plan.data = form.plan.choices[0].value
        asked = request.args.get("kind")
        form.kind.data = asked if asked in [k.value for k in FORM_KINDS] else ReportKind.OVERALL
    if not form.plan.choices:
        flash("尚未导入任何实施方案，无法生成报告。", "warning")
    if form.validate_on_submit():
        try:
            params = archive.make_params(form.kind.data, plan_id=form.plan.data, unit_id=form.unit.data or None,
                                         item_number=form.item.data, as_of=form.as_of.data)
        except archive.ReportError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return render_template("reports/new.html", form=form, harfbuzz=_harfbuzz()), 400
        size = archive.estimate(params)
        # The size is stated before anything is queued: on asking (预估规模), and a
        # large report waits for the office to confirm it (确认生成) — that report,
        # with these parameters, not one asked for after changing them.
        if request.form.get("action") == "estimate" or (size.large and request.form.get("confirm") != params.key):
            db.session.rollback()
            return render_template("reports/new.html", form=form, harfbuzz=_harfbuzz(), size=size,
                                   confirm_key=params.key)
        req = archive.request_report(params, user=current_user._get_current_object())
        archive_id = req.archive.id
        db.session.commit()
        if req.reused:
            flash("数据和参数与已存档的报告相同，已直接提供存档的报告，无需重新生成。", "info")
        elif req.in_flight:
            flash("同一报告正在生成，请稍候。", "info")
        else:
            flash(f"报告已开始生成：{size.text}完成后会在消息中通知您。", "success")
        return redirect(url_for("reports.status", archive_id=archive_id))
    status = 400 if request.method == "POST" else 200
    return render_template("reports/new.html", form=form, harfbuzz=_harfbuzz()), status


def _harfbuzz() -> bool:
    return bool(current_app.config.get("REPORT_HARFBUZZ_SUBSET", True))


def _describe_row(row) -> str:
    p = row.params or {}
    if row.kind == ReportKind.UNIT and p.get("unit") is not None:
        unit = db.session.get(Unit, p["unit"])
        return unit.name if unit else f"单位 {p['unit']}"
    if row.kind == ReportKind.ITEM and p.get("item"):
        return f"第{p['item']}项"
    if row.kind == ReportKind.ROUND and p.get("round") is not None:
        round_ = db.session.get(ProgressRound, p["round"])
        return round_.title if round_ else f"调度 {p['round']}"
    return ""


@bp.route("/<int:archive_id>")
@login_required
def status(archive_id: int):
    require("report.view")
    row = db.get_or_404(ReportArchive, archive_id)
    working = row.status in ReportStatus.working()
    params = archive.params_from_archive(row)
    response = make_response(render_template(
        "reports/status.html", row=row, working=working, refresh=REFRESH_SECONDS,
        size=archive.estimate(params) if working else None,
        worker_alive=not working or background.worker_alive(),
        subject=_describe_row(row),
        params_text=archive.describe_params(params)))
    if working:
        # No script (the CSP forbids inline ones): the page reloads itself.
        response.headers["Refresh"] = str(REFRESH_SECONDS)
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:archive_id>/download")
@login_required
def download(archive_id: int):
    require("report.view")
    row = db.get_or_404(ReportArchive, archive_id)
    if row.status != ReportStatus.DONE or not row.sha256:
        abort(404)
    try:
        content = archive.read_pdf(row)
    except FileNotFoundError:
        flash("存档文件缺失，请重新生成该报告。", "danger")
        return redirect(url_for("reports.status", archive_id=row.id))
    except archive.ReportError as exc:
        flash(exc.message, "danger")
        return redirect(url_for("reports.status", archive_id=row.id))
    return send_file(io.BytesIO(content), mimetype="application/pdf", as_attachment=True,
                     download_name=row.filename or f"report-{row.id}.pdf", max_age=0)
