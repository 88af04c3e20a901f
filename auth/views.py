"""Login, logout, password change.

The sign-in policy (docs/security.md) locks out the attacker, not the victim:

* a client address may POST the login form LOGIN_CLIENT_LIMIT times (checked
  by Flask-Limiter before the view runs; a refused request writes nothing);
* a (client address, typed user name) pair that failed LOGIN_BACKOFF times
  waits until its window ends; other clients can still sign in to the same
  account, and the same answer is given for names that do not exist;
* when one account fails LOGIN_ALERT times from all clients together, every
  office administrator gets an inbox notification (once per window);
* only LOGIN_AUDIT_LIMIT failures per client address are written to the audit
  trail, with the typed name cleaned and cut to the column's length.

Every write of an attempt (counters, audit entry, notification) is committed
before the session cookie is touched: a database that refuses writes gives the
503 page (workflow/errors.py) and nobody is signed in.
"""
from __future__ import annotations

import math
import time

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from models import Role, User
from workflow import audit, notices
from workflow.demo import login_hint
from workflow.extensions import db
from workflow.text import clean_line
from workflow.vocabulary import NotificationKind
from workflow.views.urls import safe_next

from .blueprint import bp
from .forms import LoginForm, PasswordForm
from .passwords import hash_password, password_problem, verify_password, verify_password_or_dummy
from .ratelimit import account_key, client_address, limiter, limits_from
from .session import end_session, start_session

# Scopes of the counters (part of their keys).
BACKOFF, ALERT, AUDITED = "login-backoff", "login-alert", "login-audit"

FAILED = "用户名或密码错误。"
# The same words for a real and an unknown name: the pair (this client, the typed name) waits.
BACKOFF_MESSAGE = "该用户名在本机登录失败次数过多，请 {minutes} 分钟后再试；如忘记密码，请联系办公室管理员重置。"
CLIENT_MESSAGE = "本机（当前网络地址）登录尝试过于频繁，请 {minutes} 分钟后再试。"

_UNITS = {"second": "秒", "minute": "分钟", "hour": "小时", "day": "天", "month": "个月", "year": "年"}


def _audit(action: str, user=None, username: str | None = None, **details) -> None:
    audit.append(action, user=user, username=username, details=details or None)


def _login_page(form):
    return render_template("auth/login.html", form=form, demo_hint=login_hint())


def _minutes(reset_at: float) -> int:
    """Whole minutes until ``reset_at``, rounded up (Flask-Limiter rounds its
    reset time up to the next second already: that second is not a minute)."""
    seconds = int(reset_at - time.time())
    return max(1, math.ceil(seconds / 60))


def window_zh(item) -> str:
    """A limit's window in Chinese: "1 小时", "15 分钟"."""
    return f"{item.multiples} {_UNITS.get(item.GRANULARITY.name, item.GRANULARITY.name)}"


def _client_limit_message() -> str:
    current = limiter.current_limit
    return CLIENT_MESSAGE.format(minutes=_minutes(current.reset_at) if current else 1)


def _count(item, *identifiers) -> int:
    """Count one hit on a limit; the number of hits in its window so far."""
    return limiter.storage.incr(item.key_for(*identifiers), item.get_expiry())


def _backoff_reset(client: str, account: str) -> float | None:
    """When this (client, name) pair may try again, or None if it may now."""
    waits = []
    for item in limits_from(current_app.config["LOGIN_BACKOFF"]):
        if not limiter.limiter.test(item, BACKOFF, client, account):
            waits.append(limiter.limiter.get_window_stats(item, BACKOFF, client, account).reset_time)
    return max(waits) if waits else None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_CLIENT_LIMIT"], methods=["POST"],
               error_message=_client_limit_message)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("tasks.home"))
    form = LoginForm()
    if not form.validate_on_submit():
        if request.method == "POST":
            db.session.commit()   # the per-client count of this POST (nothing else was written)
        return _login_page(form)
    username = form.username.data.strip()
    client = client_address()
    account = account_key(username)
    reset_at = _backoff_reset(client, account)
    if reset_at is not None:
        # Refused before the password is looked at. Only the per-client count
        # of this POST is written: hammering a name that waits still uses up
        # the client's allowance.
        db.session.commit()
        flash(BACKOFF_MESSAGE.format(minutes=_minutes(reset_at)), "danger")
        return _login_page(form), 429, {
            "Retry-After": str(max(1, math.ceil(reset_at - time.time())))}

    user = db.session.scalar(select(User).where(User.username == username))
    # An unknown name costs the same scrypt work as a real one (no timing tell).
    password_ok = verify_password_or_dummy(user.password_hash if user is not None else None, form.password.data)
    if not (password_ok and user is not None and user.active):
        _record_failure(user, username, client, account)
        db.session.commit()
        flash(FAILED, "danger")
        return _login_page(form), 401

    for item in limits_from(current_app.config["LOGIN_BACKOFF"]):
        limiter.limiter.clear(item, BACKOFF, client, account)
    _audit("login", user=user)
    db.session.commit()          # on record first; only then signed in
    start_session(user)
    return redirect(safe_next(request.args.get("next")) or url_for("tasks.home"))


def _record_failure(user, username: str, client: str, account: str) -> None:
    """Count a failed attempt (in the caller's transaction) and tell the office
    when an account is being guessed at. The same statements run for an unknown
    name as for a real one, so that neither the time nor the answer differs."""
    config = current_app.config
    for item in limits_from(config["LOGIN_BACKOFF"]):
        _count(item, BACKOFF, client, account)
    for item in limits_from(config["LOGIN_ALERT"]):
        # Exactly at the threshold: once per window, however many follow.
        if _count(item, ALERT, account) == item.amount and user is not None:
            _alert_office(user, item)
    audited = [(item, _count(item, AUDITED, client)) for item in limits_from(config["LOGIN_AUDIT_LIMIT"])]
    if all(count <= item.amount for item, count in audited):
        details = {}
        if any(count == item.amount for item, count in audited):
            details["note"] = "此后本时段内来自该地址的登录失败不再逐条记录"
        # The typed name is attacker-chosen text: one clean line, no longer than the column.
        _audit("login_failed", user=user, username=clean_line(username)[:64], **details)


def _alert_office(user, item) -> None:
    window = window_zh(item)
    message = (f"账号“{user.display_name}（{user.username}）”在 {window} 内登录失败已达 {item.amount} 次，"
               f"可能有人在猜测其密码。该账号未被锁定，其他地址仍可正常登录；请与本人核实，必要时重置密码。")
    admins = db.session.scalars(select(User).where(User.role == Role.OFFICE_ADMIN, User.active.is_(True))).all()
    notices.send(admins, NotificationKind.LOGIN_ALERT, message)
    _audit("login_alert", user=user, failures=item.amount, window=window)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    user = current_user._get_current_object()
    user.session_version += 1   # every copy of the cookie dies with this one
    _audit("logout", user=user)
    db.session.commit()
    end_session()
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
            end_session()
            flash("密码已修改，请使用新密码重新登录。", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/password.html", form=form)
