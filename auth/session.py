"""How a session cookie becomes a user (Flask-Login's loader)."""
from __future__ import annotations

from workflow.extensions import db, login_manager

login_manager.login_view = "auth.login"
login_manager.login_message = "请先登录。"
login_manager.login_message_category = "warning"
# A stolen cookie used from elsewhere loses the session rather than keeping it.
login_manager.session_protection = "strong"


@login_manager.user_loader
def load_user(session_id: str):
    from models import User

    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    # After logout or a password change the version moved on: old cookies die.
    if user is None or user.session_version != version or not user.active:
        return None
    return user
