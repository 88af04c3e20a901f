"""The in-app inbox: my notifications, unread first."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from models import Notification
from workflow import queries, services

from .helpers import commit_service
from .paging import RowsPage
from .urls import get_row, safe_next

bp = Blueprint("inbox", __name__)


@bp.route("/inbox")
@login_required
def index():
    stmt = queries.inbox(current_user)
    page = RowsPage(stmt, current_app.config["PER_PAGE"], total=queries.count_of(stmt))
    return render_template("inbox/index.html", page=page)


@bp.route("/inbox/<int:notification_id>/read", methods=["POST"])
@login_required
def read(notification_id: int):
    note = get_row(Notification, notification_id)
    # Someone else's notification is answered as missing, not as forbidden.
    if note is None or note.user_id != current_user.id:
        abort(404)
    user = current_user._get_current_object()
    commit_service(lambda: services.mark_read(note, user))
    return redirect(safe_next(request.form.get("next")) or url_for("inbox.index"))


@bp.route("/inbox/read-all", methods=["POST"])
@login_required
def read_all():
    user = current_user._get_current_object()
    count = commit_service(lambda: services.mark_all_read(user)).value
    flash(f"已将 {count} 条消息标为已读。" if count else "没有未读消息。", "info")
    return redirect(url_for("inbox.index"))
