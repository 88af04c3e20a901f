"""Small helpers shared by views and templates."""
from __future__ import annotations

from flask import Flask, abort
from flask_login import current_user

from auth.permissions import may
from workflow.states import STATE_LABELS
from workflow.timeutil import format_local


def require(action: str, obj=None) -> None:
    if not may(current_user, action, obj):
        abort(403)


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.globals.update(may=lambda action, obj=None: may(current_user, action, obj),
                                 STATE_LABELS=STATE_LABELS)
    app.jinja_env.filters["localtime"] = format_local
    app.jinja_env.filters["state_label"] = lambda s: STATE_LABELS.get(s, s)
