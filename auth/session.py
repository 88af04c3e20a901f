"""How a session cookie becomes a user (Flask-Login's loader), and when it stops.

A session ends, whatever the browser does with the cookie:

* SESSION_HOURS after sign-in (an absolute limit: using the session does not
  extend it; Flask's own PERMANENT_SESSION_LIFETIME only limits the time since
  the cookie was last sent, which slides with every request);
* after SESSION_IDLE_MINUTES without a request;
* on logout or a password change (``session_version``, checked by the loader);
* when it is used from another browser or client address than the one that
  signed in (SESSION_BIND), e.g. a copied cookie.

Flask-Login's own ``session_protection = "strong"`` is not used: it treats a
permanent session (all of ours) like "basic", which only marks it non-fresh,
and it takes the address from X-Forwarded-For, which any client can send. The
binding below uses ``request.remote_addr``, which ProxyFix sets from that
header only for the number of proxies the operator trusts (TRUSTED_PROXIES).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import time

from flask import current_app, flash, g, request, session
from flask_login import login_user, logout_user
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import joinedload

from models import Notification, User
from workflow import head_cache
from workflow.extensions import db, login_manager

from .blueprint import bp

login_manager.login_view = "auth.login"
login_manager.login_message = "请先登录。"
login_manager.login_message_category = "warning"
login_manager.session_protection = None   # see the module docstring: ours is below

# Our keys in the (signed) session cookie.
LOGIN_AT, SEEN, BINDING = "_luoshi_login_at", "_luoshi_seen", "_luoshi_bind"

EXPIRED = "登录已超过 {hours} 小时，为安全起见请重新登录。"
IDLE = "您已 {minutes} 分钟未操作，为安全起见已自动退出，请重新登录。"
MOVED = "检测到该登录会话在另一浏览器或网络地址上使用，为安全起见已结束该会话，请重新登录。"


@functools.cache
def _user_statements() -> tuple:
    """The user with the unit for an action; for a page also the unread count and the audit head
    (see ``load_user``). Built once: on every request they cost more to build than to run."""
    unread = select(func.count(Notification.id)).where(
        Notification.user_id == User.id, Notification.read_at.is_(None)).scalar_subquery()
    user_id = bindparam("user_id")
    return (select(User).where(User.id == user_id).options(joinedload(User.unit)),
            select(User, unread, *head_cache.head_columns()).where(User.id == user_id)
            .options(joinedload(User.unit)))


@login_manager.user_loader
def load_user(session_id: str):
    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    # Every request needs the user's unit (the header, the permissions); a page (GET) also shows the
    # unread count (the header) and reads the audit head (the kept figures): all with the user, one
    # query. A POST only acts and redirects: it counts nothing.
    if request.method in ("GET", "HEAD"):
        row = db.session.execute(_user_statements()[1], {"user_id": user_id}).first()
        if row is None:
            return None
        user, g.unread_inbox = row[0], row[1]
        head_cache.remember_request_head(row[2], row[3])
    else:
        user = db.session.scalar(_user_statements()[0], {"user_id": user_id})
        if user is None:
            return None
    # After logout or a password change the version moved on: old cookies die.
    if user.session_version != version or not user.active:
        return None
    return user


def _binding() -> str:
    """A keyed digest of what the session is bound to (not the address itself)."""
    mode = current_app.config.get("SESSION_BIND", "agent+address")
    parts = []
    if mode in ("agent", "agent+address"):
        parts.append(request.headers.get("User-Agent", ""))
    if mode == "agent+address":
        parts.append(request.remote_addr or "")
    key = current_app.config["SECRET_KEY"].encode("utf-8")
    return hmac.new(key, "\n".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def start_session(user) -> None:
    """Sign ``user`` in on a fresh session. Call only after the sign-in has been
    committed: from here on the response carries a signed-in cookie."""
    session.clear()
    session.permanent = True
    login_user(user)
    now = int(time.time())
    session[LOGIN_AT] = now
    session[SEEN] = now
    session[BINDING] = _binding()


def end_session() -> None:
    logout_user()
    session.clear()


def _ended_because(now: int) -> str | None:
    config = current_app.config
    hours = config["SESSION_HOURS"]
    login_at = session.get(LOGIN_AT)
    # A session without the stamp predates this check: it ends too.
    if not isinstance(login_at, int) or now - login_at >= hours * 3600 or now < login_at:
        return EXPIRED.format(hours=hours)
    idle = config["SESSION_IDLE_MINUTES"]
    seen = session.get(SEEN, login_at)
    if idle and isinstance(seen, int) and now - seen >= idle * 60:
        return IDLE.format(minutes=idle)
    if config.get("SESSION_BIND", "agent+address") != "none" and not hmac.compare_digest(
            str(session.get(BINDING, "")), _binding()):
        return MOVED
    return None


@bp.before_app_request
def _check_session():
    if "_user_id" not in session or request.endpoint == "static":
        return
    now = int(time.time())
    reason = _ended_because(now)
    if reason is not None:
        current_app.logger.info("session ended: %s (%s)", reason, request.remote_addr)
        end_session()
        # The message rides on the fresh, empty session to the login page.
        flash(reason, "warning")
        return
    session[SEEN] = now
