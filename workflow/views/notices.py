"""通知: the office's record of every notice (read or not, and where each went),
and each user's own settings for the channels beyond the inbox."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from wtforms import BooleanField, StringField
from wtforms.validators import Length, Optional, ValidationError

from models import Delivery, Notification, Task, User
from workflow import notices, queries
from workflow.extensions import db
from workflow.vocabulary import Channel, DeliveryStatus, NotificationKind

from .forms import FlaskForm
from .helpers import commit_service, first_error, require
from .paging import WalkPage

bp = Blueprint("notices", __name__, url_prefix="/notices")

_EMAIL = re.compile(r"^[^@\s<>\"',;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


class SettingsForm(FlaskForm):
    email = StringField("电子邮箱", validators=[Optional(), Length(max=254, message="电子邮箱地址过长。")])
    notify_email = BooleanField("通知同时发到我的电子邮箱")
    notify_robot = BooleanField("通知同时推送到本单位工作群（群机器人）")

    def validate_email(self, field):
        if field.data and not _EMAIL.match(field.data):
            raise ValidationError("电子邮箱地址格式不正确，例如 zhangsan@example.gov.cn。")


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    user = current_user._get_current_object()
    form = SettingsForm(obj=user)
    if request.method == "POST":
        problem = first_error(form)
        if problem:
            flash(problem, "danger")
            return render_template("notices/settings.html", form=form, **_channels(user)), 400
        outcome = commit_service(lambda: notices.update_settings(
            user, email=form.email.data, notify_email=form.notify_email.data, notify_robot=form.notify_robot.data))
        if outcome.error is not None:
            flash(outcome.error.message, "danger")
        else:
            flash("通知设置已保存。" if outcome.value else "设置没有变化。", "success" if outcome.value else "info")
        return redirect(url_for("notices.settings"))
    return render_template("notices/settings.html", form=form, **_channels(user))


def _channels(user) -> dict:
    return {"mail_ready": notices.mail_configured(), "robot_ready": notices.robot_configured(user.unit),
            "unit": user.unit}


def _notices_by_ids(ids: list[int]) -> list:
    """The notices of a page (``ids``, newest first) with whom and which task each is about."""
    return db.session.scalars(
        select(Notification).where(Notification.id.in_(ids)).order_by(Notification.id.desc())
        .options(joinedload(Notification.user).joinedload(User.unit),
                 selectinload(Notification.task).selectinload(Task.item))).all()


def _walk(kind: str, read: str, status: str):
    """The ids of the notices shown, newest first, each filter by its index: a status through
    delivery (status, notification_id), read or unread through their partial indexes, a kind
    through (kind, id); none, the table's own order."""
    conditions = []
    if kind in NotificationKind.values():
        conditions.append(Notification.kind == kind)
    if read == "no":
        conditions.append(Notification.read_at.is_(None))
    elif read == "yes":
        conditions.append(Notification.read_at.is_not(None))
    if status in DeliveryStatus.values():
        walk = (select(Delivery.notification_id).where(Delivery.status == status)
                .group_by(Delivery.notification_id).order_by(Delivery.notification_id.desc()))
        if conditions:
            walk = walk.join(Notification, Notification.id == Delivery.notification_id).where(*conditions)
        return walk
    return select(Notification.id).where(*conditions).order_by(Notification.id.desc())


@bp.route("/")
@login_required
def log():
    """Every notice, newest first: who, what, read or not, and each outside delivery's fate."""
    require("notices.log")
    kind = request.args.get("kind") or ""
    read = request.args.get("read") or ""
    status = request.args.get("status") or ""
    walk = _walk(kind, read, status)
    # The ids walked newest first by one index (``walk``), then those rows (views/paging.py).
    page = WalkPage(walk, _notices_by_ids, current_app.config["PER_PAGE"])
    # The log only grows and is not audited (reading a notice, the worker's sending): its figures
    # cannot be kept against the audit head, so each is counted up to COUNT_LIMIT and shown as
    # "N 以上" beyond (each count walks an index and stops at the limit).
    limit = current_app.config["COUNT_LIMIT"]
    queries.show_capped_total(page, queries.count_up_to(walk, limit + 1), limit)
    ids = [n.id for n in page.items]
    deliveries: dict[int, dict[str, Delivery]] = {}
    for d in db.session.scalars(select(Delivery).where(Delivery.notification_id.in_(ids))):
        deliveries.setdefault(d.notification_id, {})[d.channel] = d
    totals = {status: queries.count_up_to(select(Delivery.id).where(Delivery.status == status), limit + 1)
              for status in DeliveryStatus.values()}
    unread = queries.count_up_to(select(Notification.id).where(Notification.read_at.is_(None))
                                 .order_by(Notification.id.desc()), limit + 1)
    return render_template("notices/log.html", page=page, deliveries=deliveries, totals=totals, unread=unread,
                           limit=limit,
                           kinds=NotificationKind.labels(), statuses=DeliveryStatus.labels(),
                           channels=Channel.outside(), args={"kind": kind, "read": read, "status": status},
                           mail_ready=notices.mail_configured())
