"""User, unit and alias management (office admin only). Every change is audited."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from auth.passwords import hash_password, password_problem
from models import Role, Unit, UnitAlias, User
from workflow import audit, queries
from workflow.extensions import db

from .forms import AliasForm, NewUserForm, UnitForm, UserForm, choices
from .helpers import require

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _only_admins():
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    require("admin.manage")


def _page(stmt):
    return db.paginate(stmt, page=queries.page_number(request.args.get("page")),
                       per_page=current_app.config["PER_PAGE"], error_out=False)


def _unit_choices():
    return choices((u.id, f"{u.name}（{u.kind_label}）") for u in queries.all_units())


def _me() -> User:
    return current_user._get_current_object()


# ---------------------------------------------------------------- users

@bp.route("/users")
def users():
    role = request.args.get("role") or None
    q = (request.args.get("q") or "").strip()[:64] or None
    unit_id = queries.parse_id(request.args.get("unit"))
    page = _page(queries.users_list(unit_id, role if role in Role.ALL else None, q))
    return render_template("admin/users.html", page=page, units=queries.all_units(), roles=Role.LABELS,
                           unit_id=unit_id, role=role, q=q or "")


@bp.route("/users/new", methods=["GET", "POST"])
def new_user():
    form = NewUserForm()
    form.unit_id.choices = _unit_choices()
    if request.method == "GET" and queries.parse_id(request.args.get("unit")):
        form.unit_id.data = queries.parse_id(request.args.get("unit"))
    if form.validate_on_submit():
        username = form.username.data.strip()
        if db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
            form.username.errors.append("该用户名已被使用。")
        elif problem := password_problem(form.password.data):
            form.password.errors.append(problem)
        else:
            user = User(username=username, display_name=form.display_name.data.strip(), unit_id=form.unit_id.data,
                        role=form.role.data, active=bool(form.active.data),
                        password_hash=hash_password(form.password.data))
            db.session.add(user)
            db.session.flush()
            audit.append("user_created", user=_me(), details={
                "user_id": user.id, "username": user.username, "display_name": user.display_name,
                "role": user.role, "unit_id": user.unit_id, "unit": db.session.get(Unit, user.unit_id).name,
                "active": user.active})
            db.session.commit()
            flash(f"已创建用户 {user.username}（{user.role_label}）。请将初始密码告知本人，并提醒其登录后修改。", "success")
            return redirect(url_for("admin.users"))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/user_form.html", form=form, user=None), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int):
    user = queries.get_row(User, user_id)
    if user is None:
        abort(404)
    form = UserForm(obj=user)
    form.unit_id.choices = _unit_choices()
    if form.validate_on_submit():
        me = _me()
        new = {"display_name": form.display_name.data.strip(), "role": form.role.data,
               "unit_id": form.unit_id.data, "active": bool(form.active.data)}
        password = form.password.data or ""
        if user.id == me.id and (new["role"] != user.role or not new["active"]):
            # An admin demoting or disabling themself could leave nobody to undo it.
            form.role.errors.append("不能修改自己的角色或停用自己的账号，请由其他管理员操作。")
        elif password and (problem := password_problem(password)):
            form.password.errors.append(problem)
        elif db.session.get(Unit, new["unit_id"]) is None:
            form.unit_id.errors.append("请选择单位。")
        else:
            diff = {}
            for field, value in new.items():
                old = getattr(user, field)
                if old != value:
                    diff[field] = {"old": old, "new": value}
                    setattr(user, field, value)
            if "unit_id" in diff:
                names = dict(db.session.execute(select(Unit.id, Unit.name).where(
                    Unit.id.in_([diff["unit_id"]["old"], diff["unit_id"]["new"]]))).all())
                diff["unit"] = {"old": names.get(diff["unit_id"]["old"]), "new": names.get(diff["unit_id"]["new"])}
            if password:
                user.password_hash = hash_password(password)
                diff["password"] = "reset"   # never the password itself
            ends_sessions = bool({"role", "active", "password"} & diff.keys())
            if ends_sessions:
                # Every cookie the user holds names the old version and stops working.
                user.session_version += 1
            if not diff:
                flash("没有任何修改。", "info")
                return redirect(url_for("admin.edit_user", user_id=user.id))
            audit.append("user_updated", user=me, details={
                "user_id": user.id, "username": user.username, "changes": diff, "sessions_ended": ends_sessions})
            db.session.commit()
            message = f"已保存用户 {user.username} 的修改。"
            if ends_sessions:
                message += "该用户需重新登录。"
            flash(message, "success")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/user_form.html", form=form, user=user), status


# ---------------------------------------------------------------- units

def _name_taken(name: str, unit_id: int | None = None) -> str | None:
    other = db.session.scalar(select(Unit).where(Unit.name == name))
    if other is not None and other.id != unit_id:
        return "已有同名单位。"
    alias = db.session.scalar(select(UnitAlias).where(UnitAlias.alias == name))
    if alias is not None:
        return f"该名称已登记为“{alias.unit.name}”的别名，请先删除该别名。"
    return None


@bp.route("/units")
def units():
    q = (request.args.get("q") or "").strip()[:64] or None
    page = _page(queries.units_page(q))
    counts = queries.unit_counts([u.id for u in page.items])
    return render_template("admin/units.html", page=page, counts=counts, q=q or "", form=UnitForm())


@bp.route("/units/new", methods=["POST"])
def new_unit():
    form = UnitForm()
    if form.validate_on_submit():
        name = form.name.data.strip()
        problem = _name_taken(name)
        if problem:
            flash(problem, "danger")
        else:
            unit = Unit(name=name, kind=form.kind.data)
            db.session.add(unit)
            db.session.flush()
            audit.append("unit_created", user=_me(), details={"unit_id": unit.id, "name": name, "kind": unit.kind})
            db.session.commit()
            flash(f"已新建单位“{name}”。", "success")
            return redirect(url_for("admin.edit_unit", unit_id=unit.id))
    else:
        for errors in form.errors.values():
            flash(errors[0], "danger")
            break
    return redirect(url_for("admin.units"))


@bp.route("/units/<int:unit_id>", methods=["GET", "POST"])
def edit_unit(unit_id: int):
    unit = queries.get_row(Unit, unit_id)
    if unit is None:
        abort(404)
    form = UnitForm(obj=unit)
    if form.validate_on_submit():
        name = form.name.data.strip()
        problem = _name_taken(name, unit.id)
        if problem:
            form.name.errors.append(problem)
        else:
            diff = {f: {"old": getattr(unit, f), "new": v} for f, v in (("name", name), ("kind", form.kind.data))
                    if getattr(unit, f) != v}
            if diff:
                unit.name = name
                unit.kind = form.kind.data
                audit.append("unit_updated", user=_me(), details={"unit_id": unit.id, "changes": diff})
                db.session.commit()
                flash("单位信息已保存。", "success")
            else:
                flash("没有任何修改。", "info")
            return redirect(url_for("admin.edit_unit", unit_id=unit.id))
    users = db.session.scalars(select(User).where(User.unit_id == unit.id).order_by(User.role, User.username)).all()
    status = 400 if request.method == "POST" else 200
    return render_template("admin/unit_form.html", unit=unit, form=form, users=users), status


# ---------------------------------------------------------------- aliases

@bp.route("/aliases", methods=["GET", "POST"])
def aliases():
    form = AliasForm()
    form.unit_id.choices = _unit_choices()
    if request.method == "POST":
        if form.validate_on_submit():
            alias = form.alias.data.strip()
            unit = db.session.get(Unit, form.unit_id.data)
            if unit is None:
                flash("请选择单位。", "danger")
            elif db.session.scalar(select(UnitAlias).where(UnitAlias.alias == alias)) is not None:
                flash(f"别名“{alias}”已存在。", "danger")
            elif db.session.scalar(select(Unit).where(Unit.name == alias)) is not None:
                flash(f"“{alias}”本身就是一个单位的名称，不能作为别名。", "danger")
            else:
                row = UnitAlias(alias=alias, unit_id=unit.id)
                db.session.add(row)
                db.session.flush()
                audit.append("alias_added", user=_me(), details={
                    "alias_id": row.id, "alias": alias, "unit_id": unit.id, "unit": unit.name})
                db.session.commit()
                flash(f"已添加别名：“{alias}”归入“{unit.name}”。今后导入时按此归并。", "success")
        else:
            for errors in form.errors.values():
                flash(errors[0], "danger")
                break
        back = queries.parse_id(request.form.get("back"))
        if back:
            return redirect(url_for("admin.edit_unit", unit_id=back))
        return redirect(url_for("admin.aliases"))
    page = _page(select(UnitAlias).join(UnitAlias.unit).options(contains_eager(UnitAlias.unit))
                 .order_by(Unit.name, UnitAlias.alias))
    return render_template("admin/aliases.html", page=page, form=form)


@bp.route("/aliases/<int:alias_id>/delete", methods=["POST"])
def delete_alias(alias_id: int):
    row = queries.get_row(UnitAlias, alias_id)
    if row is None:
        abort(404)
    details = {"alias_id": row.id, "alias": row.alias, "unit_id": row.unit_id, "unit": row.unit.name}
    db.session.delete(row)
    audit.append("alias_removed", user=_me(), details=details)
    db.session.commit()
    flash(f"已删除别名“{details['alias']}”。", "success")
    back = queries.parse_id(request.form.get("back"))
    if back:
        return redirect(url_for("admin.edit_unit", unit_id=back))
    return redirect(url_for("admin.aliases"))
