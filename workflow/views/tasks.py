"""Tasks: the home page, task lists, the task page."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from workflow.extensions import db

from .helpers import require

bp = Blueprint("tasks", __name__)


@bp.route("/")
def home():
    from models import Item, Plan, Task

    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    require("plan.view")
    plans = db.session.scalars(select(Plan).order_by(Plan.id.desc())).all()
    by_state = dict(db.session.execute(select(Task.state, func.count(Task.id)).group_by(Task.state)).all())
    items = db.session.scalar(select(func.count(Item.id)))
    return render_template("tasks/home.html", plans=plans, by_state=by_state, items=items)
