"""User, unit and alias management (office admin only): load → form → one admin service → commit."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from models import Role, Unit, UnitAlias, User
from workflow import admin_services, queries
from workflow.extensions import db
from workflow.notices import channels

from .forms import AliasForm, FlaskForm, NewUserForm, RobotForm, UnitForm, UserForm, choices
from .helpers import commit_service, first_error, require
from .paging import counted_page
from .urls import get_row, parse_id

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _only_admins():
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    require("admin.manage")


def _unit_choices():
    return choices((u.id, f"{u.name}（{u.kind_label}）") for u in queries.all_units())


def _me() -> User:
    return current_user._get_current_object()


def _show(form, error) -> None:
    """A refusal at its field when it names one of the form's, else as a message above it."""
    field = getattr(error, "field", None)
    if field is not None and field in form:
        form[field].errors.append(error.message)
    else:
        flash(error.message, "danger")


def _flash_first(form) -> None:
    for errors in form.errors.values():
        flash(errors[0], "danger")
        break


# ---------------------------------------------------------------- users

@bp.route("/users")
def users():
    role = request.args.get("role") or None
    q = (request.args.get("q") or "").strip()[:64] or None
    unit_id = parse_id(request.args.get("unit"))
    page = counted_page(queries.users_list(unit_id, role if role in Role.ALL else None, q))
    return render_template("admin/users.html", page=page, units=queries.all_units(), roles=Role.LABELS,
                           unit_id=unit_id, role=role, q=q or "")


@bp.route("/users/new", methods=["GET", "POST"])
def new_user():
    form = NewUserForm()
    form.unit_id.choices = _unit_choices()
    if request.method == "GET" and parse_id(request.args.get("unit")):
        form.unit_id.data = parse_id(request.args.get("unit"))
    if form.validate_on_submit():
        created, error = commit_service(lambda: admin_services.create_user(
            _me(), username=form.username.data, display_name=form.display_name.data, unit_id=form.unit_id.data,
            role=form.role.data, active=bool(form.active.data), password=form.password.data))
        if error is None:
            flash(f"已创建用户 {created.username}（{created.role_label}）。请将初始密码告知本人，并提醒其登录后修改。",
                  "success")
            return redirect(url_for("admin.users"))
        _show(form, error)
        return render_template("admin/user_form.html", form=form, user=None), error.status
    status = 400 if request.method == "POST" else 200
    return render_template("admin/user_form.html", form=form, user=None), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int):
    user = get_row(User, user_id)
    if user is None:
        abort(404)
    form = UserForm(obj=user)
    form.unit_id.choices = _unit_choices()
    if form.validate_on_submit():
        result, error = commit_service(lambda: admin_services.update_user(
            user, _me(), display_name=form.display_name.data, role=form.role.data, unit_id=form.unit_id.data,
            active=bool(form.active.data), password=form.password.data or None))
        if error is None:
            if not result.changes:
                flash("没有任何修改。", "info")
            else:
                message = f"已保存用户 {user.username} 的修改。"
                if result.sessions_ended:
                    message += "该用户需重新登录。"
                flash(message, "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
        _show(form, error)
        return render_template("admin/user_form.html", form=form, user=user), error.status
    status = 400 if request.method == "POST" else 200
    return render_template("admin/user_form.html", form=form, user=user), status


# ---------------------------------------------------------------- units

@bp.route("/units")
def units():
    q = (request.args.get("q") or "").strip()[:64] or None
    page = counted_page(queries.units_page(q))
    counts = queries.unit_counts([u.id for u in page.items])
    return render_template("admin/units.html", page=page, counts=counts, q=q or "", form=UnitForm())


@bp.route("/units/new", methods=["POST"])
def new_unit():
    form = UnitForm()
    if form.validate_on_submit():
        unit, error = commit_service(lambda: admin_services.create_unit(_me(), name=form.name.data,
                                                                        kind=form.kind.data))
        if error is None:
            flash(f"已新建单位“{unit.name}”。", "success")
            return redirect(url_for("admin.edit_unit", unit_id=unit.id))
        flash(error.message, "danger")
    else:
        _flash_first(form)
    return redirect(url_for("admin.units"))


@bp.route("/units/<int:unit_id>", methods=["GET", "POST"])
def edit_unit(unit_id: int):
    unit = get_row(Unit, unit_id)
    if unit is None:
        abort(404)
    form = UnitForm(unit=unit)
    error = None
    if form.validate_on_submit():
        diff, error = commit_service(lambda: admin_services.update_unit(unit, _me(), name=form.name.data,
                                                                        kind=form.kind.data))
        if error is None:
            if diff:
                flash("单位信息已保存。", "success")
            else:
                flash("没有任何修改。", "info")
            return redirect(url_for("admin.edit_unit", unit_id=unit.id))
        _show(form, error)
    users = db.session.scalars(select(User).where(User.unit_id == unit.id).order_by(User.role, User.username)).all()
    status = (error.status if error else 400) if request.method == "POST" else 200
    robot_form = RobotForm(obj=unit)
    return render_template("admin/unit_form.html", unit=unit, form=form, users=users, robot_form=robot_form), status


@bp.route("/units/<int:unit_id>/robot", methods=["POST"])
def unit_robot(unit_id: int):
    unit = get_row(Unit, unit_id)
    if unit is None:
        abort(404)
    form = RobotForm()
    problem = first_error(form)
    if problem:
        flash(problem, "danger")
        return redirect(url_for("admin.edit_unit", unit_id=unit.id))
    changed, error = commit_service(lambda: admin_services.set_robot(
        unit, _me(), kind=form.robot_kind.data, url=form.robot_url.data, secret=form.robot_secret.data))
    if error is not None:
        flash(error.message, "danger")
    else:
        flash("工作群机器人已保存：本单位用户的通知将同时推送到该群。" if changed and unit.robot_kind
              else "已取消工作群机器人。" if changed else "没有任何修改。", "success" if changed else "info")
    return redirect(url_for("admin.edit_unit", unit_id=unit.id))


@bp.route("/units/<int:unit_id>/robot/test", methods=["POST"])
def unit_robot_test(unit_id: int):
    """Post a test message to the unit's robot now and say what the platform answered."""
    unit = get_row(Unit, unit_id)
    if unit is None:
        abort(404)
    if not FlaskForm().validate():
        flash("页面已过期，请刷新后重试。", "danger")
        return redirect(url_for("admin.edit_unit", unit_id=unit.id))
    if not unit.robot_url:
        flash("本单位尚未设置工作群机器人。", "warning")
        return redirect(url_for("admin.edit_unit", unit_id=unit.id))
    content = channels.Content(kind_label="测试", message=f"这是落实督办系统发给{unit.name}工作群的测试消息。",
                               task_label=None, task_text=None, link=url_for("tasks.home", _external=True),
                               created="", recipient=unit.name)
    try:
        answer = channels.send_robot(unit.robot_kind, unit.robot_url, unit.robot_secret,
                                     channels.robot_payload(unit.robot_kind, content, 0))
        flash(f"测试消息已发送（{answer}）。", "success")
    except channels.ChannelError as exc:
        flash(f"测试消息未能发送：{exc.message}", "danger")
    return redirect(url_for("admin.edit_unit", unit_id=unit.id))


# ---------------------------------------------------------------- aliases

@bp.route("/aliases", methods=["GET", "POST"])
def aliases():
    form = AliasForm()
    form.unit_id.choices = _unit_choices() + [(admin_services.NOT_A_UNIT, "（不是单位：导入时作为文字保留）")]
    if request.method == "POST":
        if form.validate_on_submit():
            row, error = commit_service(lambda: admin_services.add_alias(_me(), alias=form.alias.data,
                                                                         unit_id=form.unit_id.data))
            if error is None:
                flash(f"已添加别名：“{row.alias}”归入“{row.unit.name}”。今后导入时按此归并。" if row.unit else
                      f"已登记：“{row.alias}”不是单位，今后导入时作为文字保留在任务中。", "success")
            else:
                flash(error.message, "danger")
        else:
            _flash_first(form)
        return _back_or(url_for("admin.aliases"))
    # Phrases that name no unit (no unit row) are listed last.
    page = counted_page(select(UnitAlias).outerjoin(UnitAlias.unit).options(contains_eager(UnitAlias.unit))
                 .order_by(UnitAlias.unit_id.is_(None), Unit.name, UnitAlias.alias))
    return render_template("admin/aliases.html", page=page, form=form)


@bp.route("/aliases/<int:alias_id>/delete", methods=["POST"])
def delete_alias(alias_id: int):
    row = get_row(UnitAlias, alias_id)
    if row is None:
        abort(404)
    details, error = commit_service(lambda: admin_services.remove_alias(row, _me()))
    if error is None:
        flash(f"已删除别名“{details['alias']}”。", "success")
    else:
        flash(error.message, "danger")
    return _back_or(url_for("admin.aliases"))


def _back_or(default: str):
    """Back to the unit page the form was on (its alias list), else ``default``."""
    back = parse_id(request.form.get("back"))
    if back:
        return redirect(url_for("admin.edit_unit", unit_id=back))
    return redirect(default)
