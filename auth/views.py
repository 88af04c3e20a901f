"""Login, logout, password change."""
from __future__ import annotations

import time
from datetime import timedelta

from workflow.timeutil import utcnow

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from workflow.extensions import db

from . import bp
from .forms import LoginForm, PasswordForm
from .passwords import hash_password, password_problem, verify_password

# Failures before each attempt is slowed, and the slowest it gets (seconds).
SLOW_AFTER = 2
MAX_DELAY = 2.0


def _audit(action: str, user=None, username: str | None = None, **details) -> None:
    from workflow import audit

    audit.append(action, user=user, username=username, details=details or None)


@bp.route("/login", methods=["GET", "POST"])
def login():
    from models import User

    if current_user.is_authenticated:
        return redirect(url_for("tasks.home"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        user = db.session.scalar(select(User).where(User.username == username))
        now = utcnow()
        if user is not None and user.locked_until and user.locked_until > now:
            minutes = int((user.locked_until - now).total_seconds() // 60) + 1
            _audit("login_locked", user=user)
            db.session.commit()
            flash(f"该账号因多次密码错误已被锁定，请 {minutes} 分钟后再试或联系办公室管理员。", "danger")
            return render_template("auth/login.html", form=form), 429
        if user is None or not user.active or not verify_password(user.password_hash, form.password.data):
            _record_failure(user, username)
            flash("用户名或密码错误。", "danger")
            return render_template("auth/login.html", form=form), 401
        user.failed_logins = 0
        user.locked_until = None
        session.clear()
        session.permanent = True
        login_user(user)
        _audit("login", user=user)
        db.session.commit()
        from workflow.views.helpers import safe_next

        return redirect(safe_next(request.args.get("next")) or url_for("tasks.home"))
    return render_template("auth/login.html", form=form)


def _record_failure(user, username: str) -> None:
    """Count the failure in the database (every worker sees it), slow the
    caller, and lock the account once the limit is reached."""
    from models import User

    if user is not None:
        # Increment in SQL so that concurrent failures are all counted.
        db.session.execute(
            User.__table__.update().where(User.id == user.id).values(failed_logins=User.failed_logins + 1))
        db.session.refresh(user)
        limit = current_app.config["LOGIN_MAX_FAILURES"]
        if user.failed_logins >= limit:
            user.locked_until = utcnow() + timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
            _audit("account_locked", user=user)
        failures = user.failed_logins
    else:
        failures = 0
    _audit("login_failed", user=user, username=username)
    db.session.commit()
    if failures > SLOW_AFTER and not current_app.testing:
        time.sleep(min(MAX_DELAY, 0.5 * (failures - SLOW_AFTER)))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    user = current_user._get_current_object()
    user.session_version += 1   # every copy of the cookie dies with this one
    _audit("logout", user=user)
    db.session.commit()
    logout_user()
    session.clear()
    flash("您已安全退出。", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    form = PasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if not verify_password(user.password_hash, form.current.data):
            form.current.errors.append("当前密码不正确。")
        elif problem := password_problem(form.new.data):
            form.new.errors.append(problem)
        else:
            user.password_hash = hash_password(form.new.data)
            user.session_version += 1
            _audit("password_changed", user=user)
            db.session.commit()
            logout_user()
            session.clear()
            flash("密码已修改，请使用新密码重新登录。", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/password.html", form=form)
